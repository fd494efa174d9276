-- FreeBind storage, version 1. Applied once, inside one transaction, by MigrationRunner.
-- Schema reference for downstream readers: docs/querying.md.

CREATE EXTENSION IF NOT EXISTS vector;

-- One row per media item, keyed by the event's media id (the Kafka key).
CREATE TABLE media (
    id          text        PRIMARY KEY,
    tenant      text        NOT NULL,
    modality    text        NOT NULL CHECK (modality IN ('image', 'audio', 'text')),
    source      text        NOT NULL,
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_tenant_idx ON media (tenant);
-- Identical content (same bytes) is found by digest, so it is encoded once.
CREATE INDEX media_sha256_idx ON media (sha256, modality);

CREATE TABLE spaces (
    name        text        PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A space version is one manifest (experts, projectors, bonds, factors), named by its content digest.
-- Its vectors live in their own table (table_name) so versions never mix and can be dropped whole.
CREATE TABLE space_versions (
    id           integer     GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    space        text        NOT NULL REFERENCES spaces (name),
    digest       text        NOT NULL,
    dimension    integer     NOT NULL CHECK (dimension BETWEEN 1 AND 2000), -- HNSW on vector: at most 2000 dims
    manifest     jsonb       NOT NULL,
    state        text        NOT NULL DEFAULT 'building' CHECK (state IN ('building', 'active', 'retired')),
    table_name   text        GENERATED ALWAYS AS ('embeddings_v' || id) STORED UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    retired_at   timestamptz,
    UNIQUE (space, digest)
);
-- At most one active version per space: queries never see two.
CREATE UNIQUE INDEX space_versions_one_active ON space_versions (space) WHERE state = 'active';

-- Expert embeddings ("atoms") per media item. Kept so that a change of factors or projectors is a
-- re-fusion without the encoders. The column is an unconstrained pgvector `vector` (not vector(n),
-- not real[]): experts differ in width (1024/768/512), storage is the same 4 bytes a dimension as
-- real[] with a smaller header and no null bitmap, it travels as the same binary type as the
-- embeddings, and distances can still be computed in SQL when checking an expert.
CREATE TABLE atoms (
    media_id     text        NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    expert       text        NOT NULL,
    model_digest text        NOT NULL,
    embedding    vector      NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (media_id, expert, model_digest)
);

-- Label vocabularies per tenant, loaded from files by the CLI.
CREATE TABLE tag_vocabularies (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant     text        NOT NULL,
    name       text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name)
);

CREATE TABLE tag_labels (
    vocabulary_id bigint NOT NULL REFERENCES tag_vocabularies (id) ON DELETE CASCADE,
    label         text   NOT NULL,
    PRIMARY KEY (vocabulary_id, label)
);

-- Label prompts embedded in a space version, per modality (prompt templates differ by modality).
CREATE TABLE tag_label_embeddings (
    space_version_id integer NOT NULL REFERENCES space_versions (id) ON DELETE CASCADE,
    vocabulary_id    bigint  NOT NULL,
    label            text    NOT NULL,
    modality         text    NOT NULL CHECK (modality IN ('image', 'audio', 'text')),
    embedding        vector  NOT NULL,
    PRIMARY KEY (space_version_id, vocabulary_id, label, modality),
    FOREIGN KEY (vocabulary_id, label) REFERENCES tag_labels (vocabulary_id, label) ON DELETE CASCADE
);

-- Tags follow the space version that scored them.
CREATE TABLE media_tags (
    media_id         text    NOT NULL REFERENCES media (id) ON DELETE CASCADE,
    space_version_id integer NOT NULL REFERENCES space_versions (id) ON DELETE CASCADE,
    vocabulary_id    bigint  NOT NULL,
    label            text    NOT NULL,
    score            real    NOT NULL,
    PRIMARY KEY (media_id, space_version_id, vocabulary_id, label),
    FOREIGN KEY (vocabulary_id, label) REFERENCES tag_labels (vocabulary_id, label) ON DELETE CASCADE
);
CREATE INDEX media_tags_label_idx ON media_tags (space_version_id, vocabulary_id, label);

-- The active version of a space, or an error: the one place queries resolve a space name.
CREATE FUNCTION freebind_active_version(space_name text)
RETURNS space_versions
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v space_versions;
BEGIN
    SELECT * INTO v FROM space_versions WHERE space = space_name AND state = 'active';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'space "%" has no active version', space_name USING ERRCODE = 'no_data_found';
    END IF;
    RETURN v;
END $$;

-- k nearest neighbours (cosine) of `query` in the ACTIVE version of a space, optionally one tenant's.
-- Dynamic SQL because each version has its own table; the ORDER BY matches the HNSW index.
-- hnsw.ef_search is raised to k (it caps the result size) and, with a tenant filter, iterative
-- index scans keep going until k rows pass the filter; both only for the calling transaction.
CREATE FUNCTION freebind_search(space_name text, query vector, k integer DEFAULT 10, tenant_filter text DEFAULT NULL)
RETURNS TABLE (media_id text, distance double precision, similarity double precision,
               tenant text, modality text, metadata jsonb, space_version integer, space_digest text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v space_versions;
BEGIN
    v := freebind_active_version(space_name);
    IF vector_dims(query) <> v.dimension THEN
        RAISE EXCEPTION 'query has % dimensions, space "%" has %', vector_dims(query), space_name, v.dimension
            USING ERRCODE = 'data_exception';
    END IF;
    IF k < 1 OR k > 1000 THEN
        RAISE EXCEPTION 'k must be between 1 and 1000, got %', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM set_config('hnsw.ef_search', greatest(k, 40)::text, true);
    IF tenant_filter IS NOT NULL THEN
        PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
    END IF;
    RETURN QUERY EXECUTE format(
        'WITH nearest AS MATERIALIZED (
             SELECT e.media_id, e.embedding <=> $1 AS distance
             FROM %I e %s
             ORDER BY e.embedding <=> $1
             LIMIT $2)
         SELECT n.media_id, n.distance, 1 - n.distance, m.tenant, m.modality, m.metadata, %s, %L
         FROM nearest n JOIN media m ON m.id = n.media_id
         ORDER BY n.distance, n.media_id',
        v.table_name,
        CASE WHEN tenant_filter IS NULL THEN '' ELSE 'JOIN media f ON f.id = e.media_id WHERE f.tenant = $3' END,
        v.id, v.digest)
    USING query, k, tenant_filter;
END $$;
