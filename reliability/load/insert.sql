-- a new personal event type with one link: a row belay's catch-up round decides and writes
\set u random(1, :nuser)
WITH e AS (INSERT INTO "EventType" (title, slug) VALUES ('app insert', 'app-' || txid_current()) RETURNING id, title, slug),
l AS (INSERT INTO "_user_eventtype" ("A", "B") SELECT e.id, (SELECT id FROM app_user WHERE i = :u) FROM e RETURNING "A", "B")
INSERT INTO app_audit (phase, op, k, b, col, val)
SELECT :phase, 'insert', id, NULL::int, 'title', title FROM e
UNION ALL SELECT :phase, 'insert', id, NULL, 'slug', slug FROM e
UNION ALL SELECT :phase, 'link-add', "A", "B", NULL::text, NULL::text FROM l;
