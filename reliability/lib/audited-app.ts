// The audited application of the load scenario: its schema and target lists (reliability/load/app-schema.sql),
// and what its audit log proves afterwards: every write still present, and the conflicts it made.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Db } from '../../src/db/connection.ts';
import type { Expected, Snapshot } from '../../examples/event-type-owner/reference.ts';
import { LOAD_DIR } from './pgbench.ts';

/** Installs the application's tables and fills its targets; returns the pgbench variables. */
export async function installApp(db: Db, snap: Snapshot, expected: Expected): Promise<Record<string, number>> {
  await db.exec(readFileSync(path.join(LOAD_DIR, 'app-schema.sql'), 'utf8'));
  const owned = new Map<number, string>();
  snap.eventTypes.id.forEach((_, i) => {
    const u = snap.eventTypes.userId[i];
    if (u !== null && u !== undefined && !owned.has(u)) owned.set(u, snap.eventTypes.slug[i]!);
  });
  const slugOf = new Map(snap.eventTypes.id.map((id, i) => [id, snap.eventTypes.slug[i]!]));
  const assign = expected.changed.map((id) => [id, expected.owner.get(id)!, slugOf.get(id)!] as const);
  const rename = assign.filter(([id, u]) => owned.has(u) && owned.get(u) !== slugOf.get(id)).map(([id, u]) => [id, owned.get(u)!] as const);
  const users = [...snap.users];
  await db.query(
    `INSERT INTO app_assign SELECT ordinality, id, owner, slug FROM unnest($1::int[], $2::int[], $3::text[]) WITH ORDINALITY AS t(id, owner, slug)`,
    [assign.map((a) => a[0]), assign.map((a) => a[1]), assign.map((a) => a[2])],
  );
  await db.query(`INSERT INTO app_rename SELECT ordinality, id, slug FROM unnest($1::int[], $2::text[]) WITH ORDINALITY AS t(id, slug)`, [
    rename.map((a) => a[0]),
    rename.map((a) => a[1]),
  ]);
  await db.query(`INSERT INTO app_user SELECT ordinality, id FROM unnest($1::int[]) WITH ORDINALITY AS t(id)`, [users]);
  await db.query('ANALYZE app_assign, app_rename, app_user');
  return {
    // the snapshot's rows are sorted by id
    lo: snap.eventTypes.id[0]!,
    hi: snap.eventTypes.id.at(-1)!,
    nassign: assign.length,
    nrename: Math.max(1, rename.length),
    nuser: users.length,
  };
}

export interface Kept {
  /** Audited writes (one per column or link written). */
  writes: number;
  /** Rows and columns the application wrote, each with its last written value, and how many hold it now. */
  finals: number;
  kept: number;
  problems: string[];
}

// The last audited write of each "EventType" column and of each link decides what the table must hold:
// writes to the same row serialize on its lock, and each logs itself after it has the lock, so seq orders them.
const KEPT_SQL = `
WITH col AS (
  SELECT DISTINCT ON (k, col) k, col, val FROM app_audit WHERE col IS NOT NULL ORDER BY k, col, seq DESC
), link AS (
  SELECT DISTINCT ON (k, b) k, b, op FROM app_audit WHERE op IN ('link-add', 'link-del') ORDER BY k, b, seq DESC
), judged AS (
  SELECT format('"EventType" %s.%s', c.k, c.col) AS what, c.val AS want,
         CASE c.col WHEN 'title' THEN e.title WHEN 'slug' THEN e.slug WHEN 'userId' THEN e."userId"::text END AS got, e.id IS NOT NULL AS present
    FROM col c LEFT JOIN "EventType" e ON e.id = c.k
  UNION ALL
  SELECT format('link (%s, %s)', l.k, l.b), l.op, CASE WHEN x."A" IS NULL THEN 'link-del' ELSE 'link-add' END, true
    FROM link l LEFT JOIN "_user_eventtype" x ON x."A" = l.k AND x."B" = l.b
)
SELECT (SELECT count(*) FROM app_audit)::int AS writes, count(*)::int AS finals,
       count(*) FILTER (WHERE present AND got IS NOT DISTINCT FROM want)::int AS kept,
       coalesce(jsonb_agg(format('%s: the application wrote %s, the table has %s', what, want, CASE WHEN present THEN coalesce(got, 'NULL') ELSE 'no row' END))
                FILTER (WHERE NOT present OR got IS DISTINCT FROM want), '[]') AS lost
  FROM judged`;

export async function writesKept(db: Db): Promise<Kept> {
  const r = (await db.query<{ writes: number; finals: number; kept: number; lost: string[] }>(KEPT_SQL)).rows[0]!;
  return { writes: r.writes, finals: r.finals, kept: r.kept, problems: r.lost.slice(0, 10) };
}

export interface SetMatch {
  made: number;
  reported: number;
  /** Keys in one set only. */
  missed: string[];
  extra: string[];
}

// Conflicts the application made, from its audit log, against what belay reported. A write of "userId" on a row
// belay had written and not yet rolled back (held) must be a rollback conflict; one on a decided row before its
// batch (not covered, not already rejected; the batch then came) must make the batch skip it as changed. Rows the application wrote
// before the decision are not decided. $1: the operations, $2: the reason of the skip, $3: its batch must have come.
const MATCH_SQL = `
WITH made_after AS (SELECT DISTINCT k FROM app_audit WHERE col = 'userId' AND held),
reported_after AS (
  SELECT DISTINCT x::int AS k FROM belay.batches b, jsonb_array_elements_text(coalesce(b.conflicts->'changed', '[]') || coalesce(b.conflicts->'deleted', '[]')) x
   WHERE b.run_id = 1 AND b.step_no = 0
), made_before AS (
  SELECT DISTINCT a.k FROM app_audit a JOIN belay.decision_r1_s0 d ON d.k = a.k
   WHERE a.op = ANY($1::text[]) AND NOT a.covered AND (a.decided IS NULL OR a.decided NOT LIKE 'rejected:%')
     -- its batch came (an abort trigger may have ended the run before); a row a batch left out is outside its range
     AND (NOT $3 OR EXISTS (SELECT 1 FROM belay.batches b WHERE b.run_id = 1 AND b.step_no = 0 AND b.round = d.round AND d.k BETWEEN b.lo::int AND b.hi::int))
), reported_before AS (SELECT k FROM belay.decision_r1_s0 WHERE skipped LIKE $2)
SELECT (SELECT count(*) FROM made_after)::int AS made_after, (SELECT count(*) FROM reported_after)::int AS reported_after,
       (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM (SELECT k FROM made_after EXCEPT SELECT k FROM reported_after) s) AS missed_after,
       (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM (SELECT k FROM reported_after EXCEPT SELECT k FROM made_after) s) AS extra_after,
       (SELECT count(*) FROM made_before)::int AS made_before, (SELECT count(*) FROM reported_before)::int AS reported_before,
       (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM (SELECT k FROM made_before EXCEPT SELECT k FROM reported_before) s) AS missed_before,
       (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM (SELECT k FROM reported_before EXCEPT SELECT k FROM made_before) s) AS extra_before`;

interface MatchRow {
  made_after: number;
  reported_after: number;
  missed_after: number[];
  extra_after: number[];
  made_before: number;
  reported_before: number;
  missed_before: number[];
  extra_before: number[];
}

const match = (made: number, reported: number, missed: number[], extra: number[]): SetMatch => ({
  made,
  reported,
  missed: missed.map(String),
  extra: extra.map(String),
});

/**
 * Rollback conflicts (held writes of "userId") and rows skipped as changed (earlier writes): both exact. Renames:
 * a decided row renamed before its batch collides only if its owner by the rule then has that slug, which link
 * edits change, so only one way is exact: every row left out on the unique index was renamed before its batch.
 */
export async function conflictMatch(db: Db): Promise<{ rollback: SetMatch; skipped: SetMatch; renamed: SetMatch }> {
  const owner = (await db.query<MatchRow>(MATCH_SQL, [['assign', 'transfer'], 'changed', true])).rows[0]!;
  const slug = (await db.query<MatchRow>(MATCH_SQL, [['rename'], 'rejected:constraint%', false])).rows[0]!;
  return {
    rollback: match(owner.made_after, owner.reported_after, owner.missed_after, owner.extra_after),
    skipped: match(owner.made_before, owner.reported_before, owner.missed_before, owner.extra_before),
    renamed: match(slug.made_before, slug.reported_before, [], slug.extra_before),
  };
}

// Rows belay skipped because the rule, evaluated again, no longer gave them the decided owner: each must have
// had an application write to what the rule reads about it: its own links, title or slug, or a row that shares
// its slug (a rename to it, a link edit of it) and so may become its twin. One way only (the rule is belay's).
const RULE_CHANGED_SQL = `
WITH r AS (SELECT k FROM belay.decision_r1_s0 WHERE skipped = 'changed:rule'),
touched AS (
  SELECT r.k FROM r JOIN "EventType" e ON e.id = r.k
   WHERE EXISTS (SELECT 1 FROM app_audit a WHERE a.k = r.k AND a.op IN ('link-add', 'link-del', 'rename', 'assign', 'transfer'))
      OR EXISTS (SELECT 1 FROM app_audit a WHERE a.op = 'rename' AND a.val = e.slug)
      OR EXISTS (SELECT 1 FROM app_audit a JOIN "EventType" x ON x.id = a.k WHERE a.op IN ('link-add', 'link-del', 'assign', 'transfer') AND x.slug = e.slug)
)
SELECT (SELECT count(*) FROM r)::int AS reported, (SELECT count(*) FROM touched)::int AS made,
       (SELECT coalesce(jsonb_agg(k ORDER BY k), '[]') FROM (SELECT k FROM r EXCEPT SELECT k FROM touched) s) AS extra`;

export async function ruleChangedMatch(db: Db): Promise<SetMatch> {
  const r = (await db.query<{ reported: number; made: number; extra: number[] }>(RULE_CHANGED_SQL)).rows[0]!;
  return match(r.made, r.reported, [], r.extra);
}

/** Rows the batches left out for each reason (changed, rejected by a check or the unique index). */
export async function skippedByReason(db: Db): Promise<Record<string, number>> {
  const r = await db.query<{ skipped: string; n: number }>(
    `SELECT skipped, count(*)::int AS n FROM belay.decision_r1_s0 WHERE skipped IS NOT NULL GROUP BY 1 ORDER BY 1`,
  );
  return Object.fromEntries(r.rows.map((x) => [x.skipped, x.n]));
}

/** Audited writes per operation and phase. */
export async function writesByOp(db: Db): Promise<Record<string, number>> {
  const r = await db.query<{ op: string; n: number }>(`SELECT op, count(*)::int AS n FROM app_audit GROUP BY 1 ORDER BY 1`);
  return Object.fromEntries(r.rows.map((x) => [x.op, x.n]));
}
