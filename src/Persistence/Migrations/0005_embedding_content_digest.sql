-- FreeBind storage, version 5: every vector row records the content it was computed from.
-- Schema reference for downstream readers: docs/querying.md.
--
-- Why: a worker that has not yet seen a new building version (its target set refreshes by NOTIFY
-- and polling) may update an item's content and write only the active version, after the backfill
-- already wrote the building version's row from the old content. That row is not missing, it is
-- stale. With the digest of the content on the row, the catch-up pass and the verify gate find it
-- (content_sha256 differs from media.sha256) and a backfill write may replace exactly such rows.

-- Fills content_sha256 from the item's media row as it is in the writing transaction: a live write
-- updates media first, a backfill write holds it FOR SHARE, so the digest is the one the vector
-- was computed from.
CREATE FUNCTION freebind_embedding_content() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.content_sha256 := (SELECT m.sha256 FROM media m WHERE m.id = NEW.media_id);
    RETURN NEW;
END $$;

-- Tables of existing versions (new ones are created with the column and trigger by SpaceCatalog).
-- Their rows keep NULL: unknown, taken as current (only a backfill can leave a stale row).
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT table_name FROM space_versions WHERE state IN ('building', 'ready', 'active', 'retired') LOOP
        IF to_regclass(quote_ident(t)) IS NOT NULL THEN
            EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS content_sha256 text', t);
            EXECUTE format('CREATE TRIGGER embedding_content BEFORE INSERT OR UPDATE OF embedding ON %I '
                           'FOR EACH ROW EXECUTE FUNCTION freebind_embedding_content()', t);
        END IF;
    END LOOP;
END $$;
