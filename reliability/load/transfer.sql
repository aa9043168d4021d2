-- a transfer that re-saves the owner the row already has (the same value written again)
\set i random(1, :nassign)
WITH u AS (
  UPDATE "EventType" e SET "userId" = e."userId"
   WHERE e.id = (SELECT id FROM app_assign WHERE i = :i) AND e."userId" IS NOT NULL
  RETURNING e.id, e."userId")
INSERT INTO app_audit (phase, op, k, col, val, covered, held, decided)
SELECT :phase, 'transfer', u.id, 'userId', u."userId"::text, s.covered, s.held, s.decided FROM u, app_belay_state(u.id) s;
