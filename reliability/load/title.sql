-- a title update of any pre-existing event type
\set id random(:lo, :hi)
WITH u AS (UPDATE "EventType" SET title = 'app title ' || :client_id || '-' || txid_current() WHERE id = :id RETURNING id, title)
INSERT INTO app_audit (phase, op, k, col, val) SELECT :phase, 'title', id, 'title', title FROM u;
