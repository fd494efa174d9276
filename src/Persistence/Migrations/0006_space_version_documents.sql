-- FreeBind storage, version 6: a published space version's document (SpaceDefinition.ToJson: its
-- effective manifest and the SHA-256 of every file it names), written by `spaces publish` and
-- `reembed start`. A backfill worker reloads the version from it for fusion only: it reads the
-- projector files and takes the encoders' digests from here, so it needs no encoder file (tens of
-- GB with real exports) to re-fuse stored atoms. docs/reembedding.md.

CREATE TABLE space_version_documents (
    version_id integer     PRIMARY KEY REFERENCES space_versions (id) ON DELETE CASCADE,
    -- Kept as written (text, not jsonb): the version digest is recomputed from it and compared.
    document   text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
