-- an owner assignment on a row belay is about to write (or has written): its owner by the rule, belay's value
\set i random(1, :nassign)
WITH t AS (SELECT id, owner, slug FROM app_assign WHERE i = :i),
u AS (
  UPDATE "EventType" e SET "userId" = t.owner FROM t
   WHERE e.id = t.id
     -- a rename gives the row a slug its owner has: the unique index would refuse the assignment. A condition
     -- on the row itself, so that it is checked again on the row a concurrent rename left (an anti-join is not)
     AND e.slug = t.slug
     AND NOT EXISTS (SELECT 1 FROM "EventType" x WHERE x."userId" = t.owner AND x.slug = e.slug AND x.id <> e.id)
  RETURNING e.id, e."userId")
INSERT INTO app_audit (phase, op, k, col, val, covered, held, decided)
SELECT :phase, 'assign', u.id, 'userId', u."userId"::text, s.covered, s.held, s.decided FROM u, app_belay_state(u.id) s;
