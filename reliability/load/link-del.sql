-- a link edit: the highest link of any pre-existing event type removed
\set id random(:lo, :hi)
WITH y AS (SELECT "A", "B" FROM "_user_eventtype" WHERE "A" = :id ORDER BY "B" DESC LIMIT 1),
l AS (DELETE FROM "_user_eventtype" x USING y WHERE x."A" = y."A" AND x."B" = y."B" RETURNING x."A", x."B")
INSERT INTO app_audit (phase, op, k, b) SELECT :phase, 'link-del', "A", "B" FROM l;
