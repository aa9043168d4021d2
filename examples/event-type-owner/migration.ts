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
  // The rule, each part written once: a link is valid when its user exists (its event type is the row);
  // an eligible row is personal and unowned; its owner is its one valid link (or the lowest, by policy).
  const validLinks = (where = 'true') => `SELECT l."A" AS id, count(*) AS links, min(l."B") AS lowest
        FROM "_user_eventtype" l JOIN users u ON u.id = l."B" WHERE ${where} GROUP BY l."A"`;
  const ownerOf = (v: string) => `CASE WHEN ${ambiguous === 'skip' ? `${v}.links = 1` : `${v}.links >= 1`} THEN ${v}.lowest END`;
  const eligible = (e: string) => `${e}."userId" IS NULL AND ${e}."teamId" IS NULL`;

  // Every personal event type with its owner and its twins: one chain of set operations (an aggregate, a
  // window, a hash join), no per-row look-ups. The decision, the classification and the verification read it.
  // twin: another personal event type that would go to the same owner with the same slug (eligible_twin), or
  // one the owner already has (owned_twin); the unique index allows one owned row per (userId, slug).
  const classified = `
    WITH valid AS (${validLinks()}
    ), eligible AS (
      SELECT e.id, e.slug, coalesce(v.links, 0) AS links, ${ownerOf('v')} AS owner
        FROM "EventType" e LEFT JOIN valid v ON v.id = e.id
       WHERE ${eligible('e')}
    ), grouped AS (
      SELECT c.*, count(*) OVER w AS same_slug,
             CASE WHEN c.id = min(c.id) OVER w THEN max(c.id) OVER w ELSE min(c.id) OVER w END AS twin
        FROM eligible c
      WINDOW w AS (PARTITION BY c.owner, c.slug)
    ), outcome AS (
      SELECT c.id, c.slug, c.owner, c.links,
             x.id AS owned_twin, CASE WHEN c.owner IS NOT NULL AND c.same_slug > 1 THEN c.twin END AS eligible_twin
        FROM grouped c
        LEFT JOIN "EventType" x ON x."userId" = c.owner AND x.slug = c.slug AND x.id <> c.id
    )`;

  // The owner the rule gives the rows of `written` today, from their own links only (in-batch and monitor checks).
  const ownerNow = (w: string) => `(SELECT ${ownerOf('v')} FROM (${validLinks(`l."A" = ${w}.id`)}) v)`;

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
        kind: 'orphans',
        code: 'ORPHAN_LINK_USER',
        severity: 'warn',
        table: '_user_eventtype',
        column: 'B',
        references: { table: 'users', column: 'id' },
        message: 'links to a user that does not exist (never used)',
        fix: 'Delete these links or restore the users; belay ignores them either way.',
      },
      {
        kind: 'orphans',
        code: 'ORPHAN_LINK_EVENT_TYPE',
        severity: 'warn',
        table: '_user_eventtype',
        column: 'A',
        references: { table: 'EventType', column: 'id' },
        message: 'links from an event type that does not exist (never used)',
        fix: 'Delete these links; belay ignores them.',
      },
      {
        // One pass sorts every personal event type into its category (one query instead of four).
        kind: 'classify',
        code: 'PERSONAL_EVENT_TYPES',
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
          {
            value: 'assign',
            code: 'ASSIGN',
            severity: 'info',
            changes: true,
            message: 'event types with exactly one valid link that will get that user as owner',
          },
          {
            value: 'unowned',
            code: 'UNOWNED',
            severity: 'warn',
            message: 'personal event types without any valid link: stay without owner',
            fix: 'Link them to a user in "_user_eventtype" or assign them by hand.',
          },
          ambiguous === 'skip'
            ? {
                value: 'ambiguous',
                code: 'AMBIGUOUS',
                severity: 'warn',
                message: 'event types linked to several users: stay without owner',
                fix: 'Decide the owner by hand, or run with --param ambiguous=lowest.',
              }
            : {
                value: 'ambiguous',
                code: 'AMBIGUOUS',
                severity: 'info',
                changes: true,
                message: 'event types linked to several users: will get the lowest user id',
              },
          {
            value: 'slug-conflict',
            code: 'SLUG_CONFLICT',
            severity: 'warn',
            message: 'the owner would have two event types with the same slug: none of them changes (conflictsWith: the other row, with: owned or eligible)',
            fix: 'Rename one of the slugs, then run the migration again.',
          },
        ],
      },
      {
        kind: 'sql',
        code: 'INCONSISTENT_OWNER',
        severity: 'warn',
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
        // decided once, set-based: the rows that get an owner (no twin anywhere in the table)
        decide: `${classified} SELECT id, owner AS "userId" FROM outcome WHERE owner IS NOT NULL AND owned_twin IS NULL AND eligible_twin IS NULL`,
        // Inside every batch, before commit: each written owner is the row's valid link, the row is personal.
        verify: `
          SELECT w.id, w."userId", w."teamId", 'owner is not the valid link of a personal event type' AS problem
            FROM written w
           WHERE w."teamId" IS NOT NULL OR ${ownerNow('w')} IS DISTINCT FROM w."userId"`,
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
        name: 'owner-deleted',
        alertAbove: 0,
        message: 'event types whose owner was deleted',
        sql: `SELECT e.id, e."userId" FROM "EventType" e WHERE e."userId" IS NOT NULL AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = e."userId")`,
      },
      {
        // `written` (monitoring only): the rows this run assigned. The planted pre-existing inconsistent
        // rows are reported by the pre-flight; the window watches what the run wrote.
        name: 'new-inconsistencies',
        alertAbove: 0,
        message: 'event types the run assigned whose owner is no longer their valid link',
        sql: `SELECT w.id, w."userId" AS assigned, e."userId" AS now FROM written w JOIN "EventType" e ON e.id = w.id
               WHERE ${ownerNow('w')} IS DISTINCT FROM e."userId"`,
      },
    ],
  });
}
