-- FreeBind storage, version 3: the full lifecycle of a space version and the records of the
-- re-embedding verify gate. Schema reference for downstream readers: docs/querying.md.
--
--   building ──► ready ──► active ──► retired ──► dropped
--      │           │                  (kept for rollback until retain_until, then its table is dropped)
--      └───────────┴──► cancelled | failed   (table dropped; the active version is untouched)
--
-- A version has a table (embeddings_v{id}) exactly while it is building, ready, active or retired.
-- Every transition runs in SpaceVersionLifecycle (src/Persistence/Spaces) under a lock on the space row.

ALTER TABLE space_versions DROP CONSTRAINT space_versions_state_check;
ALTER TABLE space_versions ADD CONSTRAINT space_versions_state_check
    CHECK (state IN ('building', 'ready', 'active', 'retired', 'dropped', 'cancelled', 'failed'));

ALTER TABLE space_versions
    ADD COLUMN ready_at     timestamptz,
    -- Until when a retired version is kept (and still written by live ingestion) so that a rollback is exact.
    ADD COLUMN retain_until timestamptz,
    -- When the table went (dropped, cancelled, failed) and why, in one sentence.
    ADD COLUMN ended_at     timestamptz,
    ADD COLUMN end_reason   text,
    -- The version this one replaced when it was cut over: the target of its rollback.
    ADD COLUMN previous_id  integer REFERENCES space_versions (id);

ALTER TABLE space_versions ADD CONSTRAINT space_versions_retired_retention
    CHECK (state <> 'retired' OR (retired_at IS NOT NULL AND retain_until IS NOT NULL));
ALTER TABLE space_versions ADD CONSTRAINT space_versions_ended
    CHECK (state NOT IN ('dropped', 'cancelled', 'failed') OR ended_at IS NOT NULL);

-- Items a re-embedding run could not write into its new version, each with a reason (the verify
-- gate counts them as accounted for; `reembed status` prints them by reason).
CREATE TABLE reembed_failures (
    run_id      uuid        NOT NULL,
    media_id    text        NOT NULL,
    reason      text        NOT NULL,
    detail      text        NOT NULL DEFAULT '',
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, media_id)
);

-- The storage side of a run's verify gate: coverage, HNSW recall against an exact scan, and the
-- end-to-end sample recompute (filled by the saga). `passed` is derived, never written.
CREATE TABLE reembed_verifications (
    run_id              uuid             PRIMARY KEY,
    version_id          integer          NOT NULL REFERENCES space_versions (id),
    baseline_version_id integer          REFERENCES space_versions (id),
    live_items          bigint           NOT NULL CHECK (live_items >= 0),
    covered             bigint           NOT NULL CHECK (covered >= 0),
    failed              bigint           NOT NULL CHECK (failed >= 0),
    missing             bigint           NOT NULL CHECK (missing >= 0),
    missing_sample      text[]           NOT NULL DEFAULT '{}',  -- a few missing media ids, to look into
    recall_queries      integer          NOT NULL CHECK (recall_queries >= 0),
    recall_k            integer          NOT NULL CHECK (recall_k >= 1),
    recall              double precision CHECK (recall BETWEEN 0 AND 1),
    recall_min          double precision CHECK (recall_min BETWEEN 0 AND 1),
    recall_required     double precision NOT NULL CHECK (recall_required BETWEEN 0 AND 1),
    sample_items        integer          CHECK (sample_items >= 0),
    sample_mismatches   integer          CHECK (sample_mismatches >= 0),
    sample_max_error    double precision,
    passed              boolean          GENERATED ALWAYS AS (
        missing = 0
        AND (recall_queries = 0 OR recall >= recall_required)
        AND sample_items IS NOT NULL AND sample_mismatches = 0) STORED,
    verified_at         timestamptz      NOT NULL DEFAULT now()
);

-- How far the new version moved from the one it replaces, per modality.
CREATE TABLE reembed_drift (
    run_id        uuid             NOT NULL REFERENCES reembed_verifications (run_id) ON DELETE CASCADE,
    modality      text             NOT NULL CHECK (modality IN ('image', 'audio', 'text')),
    items         bigint           NOT NULL CHECK (items >= 0),  -- items present in both versions
    mean_cosine   double precision,                              -- NULL when the versions differ in width
    queries       integer          NOT NULL CHECK (queries >= 0),
    top_k         integer          NOT NULL CHECK (top_k >= 1),
    top_k_overlap double precision CHECK (top_k_overlap BETWEEN 0 AND 1),
    PRIMARY KEY (run_id, modality)
);

-- k nearest neighbours (cosine) in one given version, whatever its state while it has a table:
-- the verify gate searches a version before it is served, and an operator can preview one during a
-- run. With exact = true the scan is exhaustive (the ORDER BY expression is one the HNSW index cannot
-- serve): the ground truth of the gate's recall check. Otherwise as freebind_search (ef_search raised
-- to k, iterative scans with a tenant filter, for the calling transaction only).
CREATE FUNCTION freebind_search_version(version_id integer, query vector, k integer DEFAULT 10,
                                        tenant_filter text DEFAULT NULL, exact boolean DEFAULT false)
RETURNS TABLE (media_id text, distance double precision, similarity double precision,
               tenant text, modality text, metadata jsonb, space_version integer, space_digest text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v space_versions;
BEGIN
    SELECT * INTO v FROM space_versions sv WHERE sv.id = version_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'space version % does not exist', version_id USING ERRCODE = 'no_data_found';
    END IF;
    IF v.state NOT IN ('building', 'ready', 'active', 'retired') THEN
        RAISE EXCEPTION 'space version % of "%" is %: its vectors are gone', version_id, v.space, v.state
            USING ERRCODE = 'no_data_found';
    END IF;
    IF vector_dims(query) <> v.dimension THEN
        RAISE EXCEPTION 'query has % dimensions, space "%" has %', vector_dims(query), v.space, v.dimension
            USING ERRCODE = 'data_exception';
    END IF;
    IF k < 1 OR k > 1000 THEN
        RAISE EXCEPTION 'k must be between 1 and 1000, got %', k USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT exact THEN
        PERFORM set_config('hnsw.ef_search', greatest(k, 40)::text, true);
        IF tenant_filter IS NOT NULL THEN
            PERFORM set_config('hnsw.iterative_scan', 'relaxed_order', true);
        END IF;
    END IF;
    RETURN QUERY EXECUTE format(
        'WITH nearest AS MATERIALIZED (
             SELECT e.media_id, e.embedding <=> $1 AS distance
             FROM %I e %s
             ORDER BY %s
             LIMIT $2)
         SELECT n.media_id, n.distance, 1 - n.distance, m.tenant, m.modality, m.metadata, %s, %L
         FROM nearest n JOIN media m ON m.id = n.media_id
         ORDER BY n.distance, n.media_id',
        v.table_name,
        CASE WHEN tenant_filter IS NULL THEN '' ELSE 'JOIN media f ON f.id = e.media_id WHERE f.tenant = $3' END,
        CASE WHEN exact THEN '(e.embedding <=> $1) + 0, e.media_id' ELSE 'e.embedding <=> $1' END,
        v.id, v.digest)
    USING query, k, tenant_filter;
END $$;

-- freebind_search now resolves the active version and delegates, so both functions answer alike.
-- The version is resolved once: a cut-over committing meanwhile leaves this call on the old version
-- (its table is kept while retired), so an answer never mixes versions and never fails in between.
CREATE OR REPLACE FUNCTION freebind_search(space_name text, query vector, k integer DEFAULT 10, tenant_filter text DEFAULT NULL)
RETURNS TABLE (media_id text, distance double precision, similarity double precision,
               tenant text, modality text, metadata jsonb, space_version integer, space_digest text)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY SELECT * FROM freebind_search_version((freebind_active_version(space_name)).id, query, k, tenant_filter);
END $$;
