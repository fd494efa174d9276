-- FreeBind storage, version 2: what live ingestion needs beyond version 1.
-- Schema reference for downstream readers: docs/querying.md; content rules: docs/events.md.

-- Every change of a space's versions (a new version, a state change, a removal) is announced on
-- this channel with the space name as payload, once per transaction (NOTIFY folds duplicates).
-- Workers LISTEN to it and re-read their write targets; they also poll, so a notification lost
-- while a worker was disconnected only delays the change, never loses it.
CREATE FUNCTION freebind_notify_space_versions() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('freebind_space_versions', CASE WHEN TG_OP = 'DELETE' THEN OLD.space ELSE NEW.space END);
    RETURN NULL;
END $$;

CREATE TRIGGER space_versions_notify
    AFTER INSERT OR UPDATE OR DELETE ON space_versions
    FOR EACH ROW EXECUTE FUNCTION freebind_notify_space_versions();

-- Content that cannot be fetched again, kept so that a re-embedding can re-encode the item: the
-- text of a text item, and inline `data` up to the worker's cap (Content:MaxStoredInlineBytes).
-- Items from a `uri` have no row here (they are fetched again). Written in the same transaction
-- as the item; an upsert replaces it (or removes it when the new content is not kept), and a
-- delete removes it with the item. `media.sha256` is the digest of exactly these bytes.
CREATE TABLE media_content (
    media_id text  PRIMARY KEY REFERENCES media (id) ON DELETE CASCADE,
    data     bytea NOT NULL
);
