-- Re-embedding runs: the state of the MassTransit saga that re-embeds a space's archive
-- (src/Consumers/Reembedding), stored by FreeBind.Persistence.Sagas.SagaStore. docs/reembedding.md.

CREATE TABLE reembedding_runs (
    correlation_id uuid        PRIMARY KEY,  -- the run id, derived from the space and the target version
    version        integer     NOT NULL CHECK (version > 0), -- optimistic concurrency: bumped by every update
    current_state  text        NOT NULL,
    -- The space while the run is in progress, NULL once it ended: at most one run per space at a
    -- time, even when two starts race (the loser's insert fails and it is refused on retry).
    exclusive_key  text,
    data           jsonb       NOT NULL,     -- the rest of the saga state (progress, failures by reason, drift report)
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX reembedding_runs_exclusive_key ON reembedding_runs (exclusive_key);
CREATE INDEX reembedding_runs_space_idx ON reembedding_runs ((data->>'Space'), created_at DESC);
