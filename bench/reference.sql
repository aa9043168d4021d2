-- The reference a user compares belay with: the flagship's whole contract (DESIGN.md, "The flagship")
-- written set-based, as a careful user would write it without belay. Temp tables for the valid links,
-- the candidates and the conflicts, then one UPDATE … FROM. No batches and no undo: every row it
-- assigns stays locked until COMMIT. Default policies: ambiguous = skip, slug conflict = skip.
-- Runs with psql alone: psql -v ON_ERROR_STOP=1 -f bench/reference.sql <database>
BEGIN;

-- 2. A link is valid when its user exists (its event type must exist too: the join with "EventType"
--    below drops links whose "A" is gone). Per event type: how many valid links, and the lowest user.
CREATE TEMP TABLE valid_links ON COMMIT DROP AS
SELECT l."A" AS id, count(*) AS links, min(l."B") AS owner
  FROM "_user_eventtype" l
  JOIN users u ON u.id = l."B"
 GROUP BY l."A";

-- 1, 3, 4, 6. Eligible rows (no user, no team) with exactly one valid link: that user is the owner.
--    No valid link (unowned) or several (ambiguous): not a candidate, stays NULL.
CREATE TEMP TABLE candidates ON COMMIT DROP AS
SELECT e.id, e.slug, v.owner
  FROM "EventType" e
  JOIN valid_links v ON v.id = e.id
 WHERE e."userId" IS NULL AND e."teamId" IS NULL AND v.links = 1;
ANALYZE candidates;

-- 5. Slug conflicts, each with the row it conflicts with: the owner already has an event type with
--    that slug (team or not: the unique index covers every row), or two candidates would give the same
--    owner the same slug (then none of them changes).
CREATE TEMP TABLE conflicts ON COMMIT DROP AS
SELECT c.id, min(x.id) AS conflicts_with, 'owned' AS kind
  FROM candidates c
  JOIN "EventType" x ON x."userId" = c.owner AND x.slug = c.slug
 GROUP BY c.id
UNION ALL
SELECT c.id, min(o.id), 'eligible'
  FROM candidates c
  JOIN candidates o ON o.owner = c.owner AND o.slug = c.slug AND o.id <> c.id
 GROUP BY c.id;
ANALYZE conflicts;

-- 3, 5, 7. One statement writes "userId" of every candidate without a conflict, and nothing else.
UPDATE "EventType" e
   SET "userId" = c.owner
  FROM candidates c
 WHERE e.id = c.id
   AND NOT EXISTS (SELECT 1 FROM conflicts k WHERE k.id = c.id);

-- 5. The report of the conflicts (the other reports change nothing and are left out: this is the limit).
SELECT kind, count(*) AS rows FROM conflicts GROUP BY kind ORDER BY kind;

COMMIT;
