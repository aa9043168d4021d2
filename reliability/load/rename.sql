-- a slug rename of a row belay is about to write, to a slug its owner already has: belay's write collides
\set i random(1, :nrename)
WITH t AS (SELECT id, slug FROM app_rename WHERE i = :i),
u AS (UPDATE "EventType" e SET slug = t.slug FROM t WHERE e.id = t.id AND e."userId" IS NULL RETURNING e.id, e.slug)
INSERT INTO app_audit (phase, op, k, col, val, covered, held, decided)
SELECT :phase, 'rename', u.id, 'slug', u.slug, s.covered, s.held, s.decided FROM u, app_belay_state(u.id) s;
