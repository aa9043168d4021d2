// The flagship: backfill "EventType"."userId" from Prisma's implicit join table "_user_eventtype"
// ("A" = EventType id, "B" = users id) while the unique index ("userId", "slug") already exists.
// Written only with belay's public spec API. Policies: --param ambiguous=skip|lowest (default skip).
import { defineMigration, type MigrationParams } from '../../src/index.ts';

export default function eventTypeOwner(params: MigrationParams) {
  const ambiguous = params.ambiguous ?? 'skip';
  if (ambiguous !== 'skip' && ambiguous !== 'lowest') {
    throw new Error(`ambiguous must be "skip" or "lowest", got "${ambiguous}"`);
  }
  for (const k of Object.keys(params)) if (k !== 'ambiguous') throw new Error(`unknown parameter "${k}" (known: ambiguous)`);
  // links needed for an owner: exactly one valid link (skip) or at least one, lowest user id (lowest)
  const owns = ambiguous === 'skip' ? 'count(*) = 1' : 'count(*) >= 1';

  // An eligible row's owner, computed from valid links only (the user exists; the event type is the row).
  const ownerOf = (id: string) => `(SELECT CASE WHEN ${owns} THEN min(l."B") END
      FROM "_user_eventtype" l JOIN users u ON u.id = l."B" WHERE l."A" = ${id})`;

  // Whole-table classification used by the pre-flight checks and the post-run verification: one chain of
  // set operations (an aggregate, a window, a hash join), no per-row look-ups. outcome holds every personal
  // event type; owner is NULL where it gets none.
  const classified = `
    WITH valid AS (
      SELECT l."A" AS id, count(*) AS links, min(l."B") AS lowest
        FROM "_user_eventtype" l JOIN users u ON u.id = l."B"
       GROUP BY l."A"
    ), eligible AS (
      SELECT e.id, e.slug, coalesce(v.links, 0) AS links,
             CASE WHEN ${ambiguous === 'skip' ? 'v.links = 1' : 'v.links >= 1'} THEN v.lowest END AS owner
        FROM "EventType" e LEFT JOIN valid v ON v.id = e.id
       WHERE e."userId" IS NULL AND e."teamId" IS NULL
    ), grouped AS (
      SELECT c.*, count(*) OVER w AS same_slug,
             CASE WHEN c.id = min(c.id) OVER w THEN max(c.id) OVER w ELSE min(c.id) OVER w END AS twin
        FROM eligible c
      WINDOW w AS (PARTITION BY c.owner, c.slug)
    ), outcome AS (
      -- the unique index allows one owned row per (userId, slug): the join adds no rows
      SELECT c.id, c.slug, c.owner, c.links,
             x.id AS owned_twin, CASE WHEN c.owner IS NOT NULL AND c.same_slug > 1 THEN c.twin END AS eligible_twin
        FROM grouped c
        LEFT JOIN "EventType" x ON x."userId" = c.owner AND x.slug = c.slug AND x.id <> c.id
    )`;

  return defineMigration({
    id: 'event-type-owner',
    purpose:
      'Backfill "EventType"."userId" from the implicit Prisma join table "_user_eventtype" for personal event types ' +
      '(no user and no team yet). An event type with exactly one valid link gets that user as its owner. Orphan links, ' +
      'event types without a valid link or with several, and rows whose (userId, slug) would collide with the existing ' +
      `unique index are reported and left unchanged (ambiguous policy: ${ambiguous}).`,
    tables: ['EventType', '_user_eventtype', 'users'],
    checks: [
      {
        kind: 'orphans', code: 'ORPHAN_LINK_USER', severity: 'warn', table: '_user_eventtype', column: 'B',
        references: { table: 'users', column: 'id' },
        message: 'links to a user that does not exist (never used)',
        fix: 'Delete these links or restore the users; belay ignores them either way.',
      },
      {
        kind: 'orphans', code: 'ORPHAN_LINK_EVENT_TYPE', severity: 'warn', table: '_user_eventtype', column: 'A',
        references: { table: 'EventType', column: 'id' },
        message: 'links from an event type that does not exist (never used)',
        fix: 'Delete these links; belay ignores them.',
      },
      {
        // One pass sorts every personal event type into its category (one query instead of four).
        kind: 'classify', code: 'PERSONAL_EVENT_TYPES',
        sql: `${classified}
          SELECT CASE WHEN o.links = 0 THEN 'unowned'
                      WHEN o.owned_twin IS NOT NULL OR o.eligible_twin IS NOT NULL THEN 'slug-conflict'
                      WHEN o.links > 1 THEN 'ambiguous'
                      ELSE 'assign' END AS category,
                 o.id, o.slug, o.links, o.owner AS "userId", coalesce(o.owned_twin, o.eligible_twin) AS "conflictsWith",
                 CASE WHEN o.owned_twin IS NOT NULL THEN 'owned' WHEN o.eligible_twin IS NOT NULL THEN 'eligible' END AS "with"
            FROM outcome o
           ORDER BY o.id`,
        categories: [
          // changes: these are the rows the run writes (post-run verification expects exactly as many)
          { value: 'assign', code: 'ASSIGN', severity: 'info', changes: true, message: 'event types with exactly one valid link that will get that user as owner' },
          {
            value: 'unowned', code: 'UNOWNED', severity: 'warn', message: 'personal event types without any valid link: stay without owner',
            fix: 'Link them to a user in "_user_eventtype" or assign them by hand.',
          },
          ambiguous === 'skip'
            ? {
                value: 'ambiguous', code: 'AMBIGUOUS', severity: 'warn', message: 'event types linked to several users: stay without owner',
                fix: 'Decide the owner by hand, or run with --param ambiguous=lowest.',
              }
            : { value: 'ambiguous', code: 'AMBIGUOUS', severity: 'info', changes: true, message: 'event types linked to several users: will get the lowest user id' },
          {
            value: 'slug-conflict', code: 'SLUG_CONFLICT', severity: 'warn',
            message: 'the owner would have two event types with the same slug: none of them changes (conflictsWith: the other row, with: owned or eligible)',
            fix: 'Rename one of the slugs, then run the migration again.',
          },
        ],
      },
      {
        kind: 'sql', code: 'INCONSISTENT_OWNER', severity: 'warn',
        message: 'event types whose userId is set but is not among their valid links (never written)',
        sql: `SELECT e.id, e.slug, e."userId", array_agg(l."B" ORDER BY l."B") AS "linkedUsers"
                FROM "EventType" e JOIN "_user_eventtype" l ON l."A" = e.id JOIN users u ON u.id = l."B"
               WHERE e."userId" IS NOT NULL
               GROUP BY e.id, e.slug, e."userId"
              HAVING NOT bool_or(l."B" = e."userId") ORDER BY e.id`,
        fix: 'Check these rows by hand: the owner and the links disagree.',
      },
      { kind: 'unique-after', code: 'UNIQUE_USER_SLUG', severity: 'error', step: 'assign-owner', index: 'EventType_userId_slug_key' },
    ],
    steps: [
      {
        kind: 'batched',
        name: 'assign-owner',
        table: 'EventType',
        writes: ['userId'],
        // The key range is repeated on the join table: Postgres does not carry it across the join.
        projection: `
          WITH cand AS (
            SELECT e.id, e.slug, min(l."B") AS owner
              FROM "EventType" e
              JOIN "_user_eventtype" l ON l."A" = e.id AND l."A" BETWEEN $1 AND $2
              JOIN users u ON u.id = l."B"
             WHERE e.id BETWEEN $1 AND $2 AND e."userId" IS NULL AND e."teamId" IS NULL
             GROUP BY e.id, e.slug
            HAVING ${owns}
          )
          SELECT c.id, c.owner AS "userId" FROM cand c
           WHERE NOT EXISTS (SELECT 1 FROM "EventType" x WHERE x."userId" = c.owner AND x.slug = c.slug AND x.id <> c.id)
             -- another personal event type going to the same owner with the same slug, in any batch. It links to
             -- that owner, so look through the owner's few links: a slug like "30min" is shared by thousands of
             -- rows. IS NOT DISTINCT FROM (slug is NOT NULL, so it means =) keeps the planner off the slug index.
             AND NOT EXISTS (SELECT 1 FROM "_user_eventtype" l2 JOIN "EventType" e2 ON e2.id = l2."A"
                              WHERE l2."B" = c.owner AND l2."A" <> c.id
                                AND e2.slug IS NOT DISTINCT FROM c.slug AND e2."userId" IS NULL AND e2."teamId" IS NULL
                                AND ${ownerOf('e2.id')} = c.owner)`,
        // The same rule for the whole table at once (the pre-flight's unique-after prediction): a twin is
        // another candidate with the same owner and slug, so candidates are grouped instead of looked up
        // one by one. belay dry-run checks that this yields exactly what the batches write.
        wholeTableProjection: `
          WITH valid AS (
            -- the owner as a value that is NULL when there is none: the planner estimates "owner IS NOT NULL"
            -- well and "count(*) = 1" not at all (a few thousand rows of 775,000 at 1M), which made it look
            -- every row up through nested loops
            SELECT l."A" AS id, CASE WHEN ${owns} THEN min(l."B") END AS owner
              FROM "_user_eventtype" l JOIN users u ON u.id = l."B"
             GROUP BY l."A"
          ), cand AS (
            SELECT e.id, e.slug, v.owner, count(*) OVER (PARTITION BY v.owner, e.slug) AS same
              FROM "EventType" e JOIN valid v ON v.id = e.id
             WHERE e."userId" IS NULL AND e."teamId" IS NULL AND v.owner IS NOT NULL
          )
          SELECT c.id, c.owner AS "userId" FROM cand c
           WHERE c.same = 1
             AND NOT EXISTS (SELECT 1 FROM "EventType" x WHERE x."userId" = c.owner AND x.slug = c.slug AND x.id <> c.id)`,
        // Inside every batch, before commit: each written owner is the row's valid link, the row is personal.
        verify: `
          SELECT w.id, w."userId", e."teamId", 'owner is not the valid link of a personal event type' AS problem
            FROM written w JOIN "EventType" e ON e.id = w.id
           WHERE e."teamId" IS NOT NULL OR ${ownerOf('w.id')} IS DISTINCT FROM w."userId"`,
      },
    ],
    verify: [
      {
        name: 'no-missed-rows',
        message: 'personal event types that should have an owner by now',
        sql: `${classified} SELECT id, slug, owner FROM outcome WHERE owner IS NOT NULL AND owned_twin IS NULL AND eligible_twin IS NULL`,
      },
      {
        name: 'owners-exist',
        message: 'event types owned by a user that does not exist',
        sql: `SELECT e.id, e."userId" FROM "EventType" e WHERE e."userId" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e."userId")`,
      },
    ],
    abort: [
      { when: 'verification-failed', action: 'rollback' },
      { when: 'batch-slower-than-ms', threshold: 30_000, action: 'pause' },
    ],
    monitor: [
      {
        name: 'owner-deleted', alertAbove: 0, message: 'event types whose owner was deleted',
        sql: `SELECT e.id, e."userId" FROM "EventType" e WHERE e."userId" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e."userId")`,
      },
      {
        // `written` (monitoring only): the rows this run assigned. The planted pre-existing inconsistent
        // rows are reported by the pre-flight; the window watches what the run wrote.
        name: 'new-inconsistencies', alertAbove: 0, message: 'event types the run assigned whose owner is no longer their valid link',
        sql: `SELECT w.id, w."userId" AS assigned, e."userId" AS now FROM written w JOIN "EventType" e ON e.id = w.id
               WHERE ${ownerOf('w.id')} IS DISTINCT FROM e."userId"`,
      },
    ],
  });
}
