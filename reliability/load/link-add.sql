-- a link edit: a user linked to any pre-existing event type (one belay decided to write, or any other)
\set id random(:lo, :hi)
\set u random(1, :nuser)
WITH l AS (
  INSERT INTO "_user_eventtype" ("A", "B")
  SELECT e.id, (SELECT id FROM app_user WHERE i = :u) FROM "EventType" e WHERE e.id = :id
  ON CONFLICT DO NOTHING RETURNING "A", "B")
INSERT INTO app_audit (phase, op, k, b) SELECT :phase, 'link-add', "A", "B" FROM l;
