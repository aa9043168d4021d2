import { isComposite, keyColumnsFrom, keyIs, keyLabel, keyOrder, keyValue, noRow, sameKey } from '../db/key-sql.ts';
import { ident, literal, isoUtc } from '../db/sql.ts';
import type { StepTarget } from '../spec/resolve.ts';

export interface DecisionTarget extends StepTarget {
  /** The decision relation, quoted: belay."decision_r1_s0", or a temporary table for trials. */
  relation: string;
}

/** Where a step's decision lives: in schema belay for a run, in the session's temporary schema for a trial. */
export function decisionRelation(runId: number | null, stepNo: number): string {
  return runId === null ? `pg_temp.${ident(`belay_decision_s${stepNo}`)}` : `belay.${ident(`decision_r${runId}_s${stepNo}`)}`;
}

/** The row type of a composite key's values in the decision: an empty table beside it, whose row type it is. */
export function decisionKeyType(runId: number | null, stepNo: number): string {
  return runId === null ? `pg_temp.${ident(`belay_decision_s${stepNo}_key`)}` : `belay.${ident(`decision_r${runId}_s${stepNo}_key`)}`;
}

/**
 * The key type of a composite key, made as an empty table of the key columns: its row type copies each
 * column's type, typmod and collation from the table, as CREATE TYPE written out by hand would have to.
 */
export function createKeyTypeSql(t: DecisionTarget, temp: boolean): string {
  return `CREATE ${temp ? 'TEMP ' : ''}TABLE ${t.keyType} AS SELECT ${keyOrder(t, 't')} FROM ${t.table} t WITH NO DATA`;
}

const n = (i: number) => `n${i}`;
const o = (i: number) => `o${i}`;
/** A key as JSON: a single key as itself (a number stays a number), a composite one as its text (a, b). */
const keyJson = (t: DecisionTarget, expr: string, wrap = true) => (isComposite(t) ? `to_jsonb(${expr}::text)` : wrap ? `to_jsonb(${expr})` : expr);

/** The types of the key and written columns are copied from the table itself (typmods, collations, domains). */
export function createDecisionSql(t: DecisionTarget, temp: boolean): string {
  return `CREATE ${temp ? 'TEMP ' : ''}TABLE ${t.relation} AS
SELECT ${keyValue(t, 't')} AS k, ${t.writes.map((c, i) => `t.${ident(c)} AS ${n(i)}`).join(', ')}, ${t.writes.map((c, i) => `t.${ident(c)} AS ${o(i)}`).join(', ')},
       0 AS round, NULL::text AS skipped, false AS missing
  FROM ${t.table} t WITH NO DATA`;
}

/** The decision, then a composite key's type (its column k depends on it): `keyType`, the type's table, if any. */
export const dropDecisionSql = (relation: string, keyType?: string): string[] => [
  `DROP TABLE IF EXISTS ${relation}`,
  ...(keyType ? [`DROP TABLE IF EXISTS ${keyType}`] : []),
];

/**
 * The rule's rows in key order. A set-based rule's rows come out in the order of its last sort (the flagship:
 * owner and slug), and each row's before-image was then read at a random place of the table; in key order
 * they are read along the key index, and the decision is laid out in the order the batches read it
 * (1,000,000 rows: the before-images 2.9 s at random, 0.9 s in order).
 */
function inKeyOrder(source: string, t: DecisionTarget): string {
  return `SELECT * FROM (\n${source}\n) r ORDER BY ${keyOrder(t, 'r')}`;
}

/**
 * The rule's rows that change something, with the rows' current values as before-images. A key the
 * table does not have is kept with missing = true (an error the caller reports). `source` is the rule,
 * a SELECT returning the key and the written columns under their own names; with a range, $1/$2 bound it.
 */
export function fillDecisionSql(t: DecisionTarget, source: string, opts: { round?: number; range?: boolean } = {}): string {
  const k = ident(t.key);
  const changed = t.writes.map((c) => `p.${ident(c)} IS DISTINCT FROM x.${ident(c)}`).join(' OR ');
  const round = opts.round ?? 0;
  const outside = opts.range ? ` OR p.${k} NOT BETWEEN $1::${t.keyType} AND $2::${t.keyType}` : '';
  return `INSERT INTO ${t.relation} (k, ${t.writes.map((_, i) => n(i)).join(', ')}, ${t.writes.map((_, i) => o(i)).join(', ')}, round, missing)
SELECT ${keyValue(t, 'p')}, ${t.writes.map((c) => `p.${ident(c)}`).join(', ')}, ${t.writes.map((c) => `x.${ident(c)}`).join(', ')}, ${round}, ${noRow(t, 'x')}${outside}
  FROM (${inKeyOrder(source, t)}) p LEFT JOIN ${t.table} x ON ${sameKey(t, 'x', 'p')}
 WHERE ${noRow(t, 'x')} OR ${changed}${outside}`;
}

/** A catch-up round: rows the rule gives now that are not decided (new rows), or were skipped because someone changed them first. */
export function catchUpSql(t: DecisionTarget, source: string, round: number, opts: { range?: boolean } = {}): string {
  const k = ident(t.key);
  const changed = t.writes.map((c) => `p.${ident(c)} IS DISTINCT FROM x.${ident(c)}`).join(' OR ');
  const range = opts.range ? ` AND p.${k} BETWEEN $1::${t.keyType} AND $2::${t.keyType}` : '';
  const cols = [...t.writes.map((_, i) => n(i)), ...t.writes.map((_, i) => o(i))];
  return `INSERT INTO ${t.relation} AS d (k, ${cols.join(', ')}, round, missing)
SELECT ${keyValue(t, 'p')}, ${t.writes.map((c) => `p.${ident(c)}`).join(', ')}, ${t.writes.map((c) => `x.${ident(c)}`).join(', ')}, ${round}, false
  FROM (${inKeyOrder(source, t)}) p JOIN ${t.table} x ON ${sameKey(t, 'x', 'p')}
 WHERE (${changed})${range}
   -- written or pending rows stay as decided; rows a check or a constraint rejected are not tried again
   AND NOT EXISTS (SELECT 1 FROM ${t.relation} w WHERE w.k = ${keyValue(t, 'p')} AND (w.skipped IS NULL OR w.skipped LIKE 'rejected:%'))
ON CONFLICT (k) DO UPDATE SET ${cols.map((c) => `${c} = EXCLUDED.${c}`).join(', ')}, round = EXCLUDED.round, skipped = NULL`;
}

/** The key is the decision's primary key: a rule that returns a key twice fails here (23505). */
export const decisionKeySql = (relation: string) => `ALTER TABLE ${relation} ADD PRIMARY KEY (k)`;

/**
 * Statistics of a fresh decision: without them the planner takes every filter on it as selective and the
 * next batch's range ("the next N keys after k") is found by reading every key after k, not N of them.
 */
export const analyzeDecisionSql = (relation: string) => `ANALYZE ${relation}`;

export const decisionProblemsSql = (relation: string) => `SELECT count(*) FILTER (WHERE missing)::int AS missing,
       (SELECT coalesce(jsonb_agg(k), '[]') FROM (SELECT k FROM ${relation} WHERE missing ORDER BY k LIMIT 10) s) AS sample
  FROM ${relation}`;

export const decisionCountSql = (relation: string, round?: number) =>
  `SELECT count(*)::float8 AS n FROM ${relation}${round === undefined ? '' : ` WHERE round = ${Number(round)}`}`;

/** The key range of the table, walked in chunks to decide a step that has only a range projection. */
export function tableChunkSql(t: StepTarget, first: boolean): string {
  const k = ident(t.key);
  return `WITH s AS (SELECT ${k} AS k FROM ${t.table} ${first ? 'WHERE $1::text IS NULL' : `WHERE ${k} > $1::${t.keyType}`} ORDER BY ${k} LIMIT $2)
SELECT (SELECT k FROM s ORDER BY k LIMIT 1)::text AS lo, (SELECT k FROM s ORDER BY k DESC LIMIT 1)::text AS hi`;
}

// ---- the decision as the pre-flight reads it: the rows the step will write, as a projection -------------

/** The decided rows under the table's own names (the whole-table form a check embeds), $1/$2 unused. */
export function decidedRowsSql(t: DecisionTarget): string {
  return `SELECT ${keyColumnsFrom(t, 'd.k')}, ${t.writes.map((c, i) => `d.${n(i)} AS ${ident(c)}`).join(', ')}
  FROM ${t.relation} d WHERE d.skipped IS NULL AND ($1::${t.keyType} IS NOT NULL OR $2::${t.keyType} IS NULL)`;
}

/** Expected changes: every decided row, before → after, the first `limit` in key order. */
export function decisionSampleSql(t: DecisionTarget, limit: number): string {
  return `SELECT d.k AS key, jsonb_build_object(${t.writes.map((c, i) => `${literal(c)}, d.${o(i)}`).join(', ')}) AS before,
       jsonb_build_object(${t.writes.map((c, i) => `${literal(c)}, d.${n(i)}`).join(', ')}) AS after
  FROM ${t.relation} d WHERE d.skipped IS NULL ORDER BY d.k LIMIT ${Number(limit)}`;
}

// ---- the batch: one key range of decided rows, written in one transaction -----------------------------

/**
 * The next range of decided rows to write: after $1 (NULL = from the start), at most $2 keys of round $3;
 * bounded (a worker's key range): none after $4.
 */
export function nextRangeSql(t: DecisionTarget, bounded = false): string {
  const upper = bounded ? ` AND k <= $4::${t.keyType}` : '';
  return `WITH s AS (
  SELECT k FROM ${t.relation} WHERE round = $3 AND skipped IS NULL AND ($1::text IS NULL OR k > $1::${t.keyType})${upper} ORDER BY k LIMIT $2
)
SELECT (SELECT k FROM s ORDER BY k LIMIT 1)::text AS lo, (SELECT k FROM s ORDER BY k DESC LIMIT 1)::text AS hi, (SELECT count(*) FROM s)::int AS n`;
}

/**
 * Splits what is left of round $1 (the keys after $2; NULL: all) into at most $3 key ranges of as many rows
 * each: the last key of each, in key order (the last range is left open at its top).
 */
export function splitRangesSql(t: DecisionTarget): string {
  return `SELECT ${isComposite(t) ? '(array_agg(k ORDER BY k DESC))[1]' : 'max(k)'}::text AS hi FROM (
  SELECT k, ntile($3::int) OVER (ORDER BY k) AS w FROM ${t.relation} WHERE round = $1 AND skipped IS NULL AND ($2::text IS NULL OR k > $2::${t.keyType})
) s GROUP BY w ORDER BY w`;
}

/** The decided rows of a range that are to be written (round $3, keys in [$1, $2]). */
function batchRows(t: DecisionTarget): string {
  return `SELECT * FROM ${t.relation} WHERE round = $3 AND skipped IS NULL AND k BETWEEN $1::${t.keyType} AND $2::${t.keyType}`;
}

/**
 * Writes one range: each decided row whose written columns still hold their before-image gets its new
 * values; a row someone changed since the decision (or deleted) is not written and is marked skipped.
 * The re-check runs on the newest row version (READ COMMITTED re-evaluates it after a concurrent write),
 * so what is written always replaces exactly its before-image. $1/$2 range, $3 round.
 */
export function writeBatchSql(t: DecisionTarget, fence?: string): string {
  return `WITH d AS (
  ${batchRows(t)}
), u AS (
  UPDATE ${t.table} t SET ${t.writes.map((c, i) => `${ident(c)} = d.${n(i)}`).join(', ')}
    FROM d
   WHERE ${keyIs(t, 't', 'd.k')} AND ${t.writes.map((c, i) => `t.${ident(c)} IS NOT DISTINCT FROM d.${o(i)}`).join(' AND ')}
  RETURNING ${keyValue(t, 't')} AS k
), s AS (
  -- EXCEPT is a hashed set operation whatever the estimates (a fresh decision has no statistics): an
  -- anti-join of d with u was planned as a nested loop, quadratic in the batch size
  UPDATE ${t.relation} x SET skipped = 'changed'
    FROM (SELECT k FROM d EXCEPT SELECT k FROM u) z
   WHERE x.k = z.k
  RETURNING x.k
)${
    fence
      ? `, f AS (
  DELETE FROM ${fence} x USING u WHERE x.k = u.k
)`
      : ''
  }
SELECT (SELECT count(*) FROM d)::int AS rows, (SELECT count(*) FROM u)::int AS changed, (SELECT count(*) FROM s)::int AS skipped,
       (SELECT coalesce(jsonb_agg(${keyJson(t, 'k', false)}), '[]') FROM (SELECT k FROM s ORDER BY k LIMIT 20) z) AS sample`;
}

/** `written`, as an in-batch check reads it: the table's rows this batch wrote, after the write. */
export function writtenCte(t: DecisionTarget): string {
  return `written AS (
  SELECT t.* FROM ${t.table} t JOIN (${batchRows(t)}) d ON ${keyIs(t, 't', 'd.k')}
)`;
}

/** Marks decided rows as not written, with the reason ($1 keys as text, $2 reason). Committed on its own. */
export function rejectSql(t: DecisionTarget): string {
  return `UPDATE ${t.relation} SET skipped = $2 WHERE k = ANY($1::text[]::${t.keyType}[]) AND skipped IS NULL`;
}

/**
 * Of decided keys ($1, or $3 with a range rule's $1/$2), those for which the rule, evaluated now, no longer
 * gives the decided values (another value, or no row): the data changed since the decision.
 */
export function ruleChangedSql(t: DecisionTarget, source: string, range: boolean): string {
  const keys = range ? '$3' : '$1';
  const same = t.writes.map((c, i) => `p.${ident(c)} IS NOT DISTINCT FROM d.${n(i)}`).join(' AND ');
  return `SELECT d.k::text AS k FROM ${t.relation} d
 WHERE d.k = ANY(${keys}::text[]::${t.keyType}[])
   AND NOT EXISTS (SELECT 1 FROM (${source}) p WHERE ${keyIs(t, 'p', 'd.k')} AND ${same})`;
}

/** Rejected rows whose rule now gives another answer: skipped as changed (what the rule reads changed), a catch-up round may decide them again. */
export function reclassifyChangedSql(t: DecisionTarget): string {
  return `UPDATE ${t.relation} SET skipped = 'changed:rule' WHERE k = ANY($1::text[]::${t.keyType}[]) AND (skipped IS NULL OR skipped LIKE 'rejected:%')`;
}

/** The transaction's id: every row version a batch writes carries it as xmin (rollback's fence). */
export const CURRENT_XID_SQL = `SELECT pg_current_xact_id()::text AS xid`;

// ---- after the run: what was written, what was skipped -------------------------------------------------

/** Rows written by the run's committed batches: the decided rows of their ranges that were not skipped. */
export function writtenRowsSql(t: DecisionTarget, runId: number, stepNo: number, rolledBack = false): string {
  return `SELECT d.*, b.batch_no, b.xid FROM belay.batches b JOIN ${t.relation} d
    ON d.round = b.round AND d.skipped IS NULL AND d.k BETWEEN b.lo::${t.keyType} AND b.hi::${t.keyType}
 WHERE b.run_id = ${Number(runId)} AND b.step_no = ${Number(stepNo)}${rolledBack ? '' : ' AND b.rolled_back_at IS NULL'}`;
}

/** Rows the run wrote that no longer hold what it wrote (or are gone). */
export function writesHeldSql(t: DecisionTarget, runId: number, stepNo: number, limit: number, fence?: string): string {
  const differs = t.writes.map((c, i) => `x.${ident(c)} IS DISTINCT FROM w.${n(i)}`).join(' OR ');
  // belay never deletes, and the fence records every other writer of a written column: those rows are the
  // application's doing; a row that differs with no fence entry is not (without a fence, nothing can tell)
  const others = `${noRow(t, 'x')}${fence ? ` OR EXISTS (SELECT 1 FROM ${fence} f WHERE f.k = w.k)` : ''}`;
  return `WITH w AS (${writtenRowsSql(t, runId, stepNo)}), bad AS (
  SELECT w.k AS key, ${t.writes.map((c, i) => `w.${n(i)} AS ${ident(`written.${c}`)}, x.${ident(c)} AS ${ident(`now.${c}`)}`).join(', ')}, ${noRow(t, 'x')} AS deleted,
         (${others}) AS "byOthers"
    FROM w LEFT JOIN ${t.table} x ON ${keyIs(t, 'x', 'w.k')}
   WHERE ${noRow(t, 'x')} OR ${differs}
)
SELECT (SELECT count(*) FROM bad WHERE NOT "byOthers")::int AS n,
       (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM bad WHERE NOT "byOthers" ORDER BY key LIMIT ${Number(limit)}) s) AS sample,
       (SELECT count(*) FROM bad WHERE "byOthers")::int AS "othersN",
       (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM bad WHERE "byOthers" ORDER BY key LIMIT ${Number(limit)}) s) AS "othersSample"`;
}

/** How many keys a step's fence recorded: writes of a written column by anyone but belay since its first batch. */
export const fenceCountSql = (fence: string) => `SELECT count(*)::int AS n FROM ${fence}`;

/** Rows of one batch that someone wrote after it (a newer row version than the batch's), or deleted. */
export function changedSinceSql(t: DecisionTarget): string {
  return `SELECT count(*)::int AS n FROM (${batchRows(t)}) d LEFT JOIN ${t.table} x ON ${keyIs(t, 'x', 'd.k')}
 WHERE ${noRow(t, 'x')} OR x.xmin <> $4::xid8::xid`;
}

/**
 * Locks the rows of one batch before its restore is decided ($1/$2 range, $3 round): a writer still in
 * flight finishes first (and is seen in the fence), one that comes later waits for the rollback to commit.
 */
export function lockBatchRowsSql(t: DecisionTarget): string {
  return `SELECT count(*)::int AS n FROM (SELECT 1 FROM ${t.table} x JOIN (${batchRows(t)}) d ON ${keyIs(t, 'x', 'd.k')} FOR UPDATE OF x) z`;
}

/** What the run decided, wrote and skipped, per step (report, result). */
export function decisionTotalsSql(t: DecisionTarget, runId: number, stepNo: number): string {
  return `SELECT (SELECT count(*) FROM ${t.relation})::int AS decided,
       (SELECT count(*) FROM (${writtenRowsSql(t, runId, stepNo, true)}) w)::int AS written,
       (SELECT count(*) FROM ${t.relation} WHERE skipped LIKE 'changed%')::int AS "skippedChanged",
       (SELECT count(*) FROM ${t.relation} WHERE skipped LIKE 'rejected:%')::int AS rejected,
       (SELECT coalesce(jsonb_agg(s), '[]') FROM (SELECT k AS key, skipped AS reason FROM ${t.relation} WHERE skipped IS NOT NULL ORDER BY k LIMIT 50) s) AS "skippedSample",
       (SELECT coalesce(max(round), 0) FROM ${t.relation})::int AS rounds`;
}

// ---- rollback: the before-images back, only on the row versions the batch wrote ----------------------

/**
 * Restores one committed batch ($1/$2 its range, $3 round, $4 its xid, $5 force, $6 run id). A row is put
 * back only while its current version is the one the batch wrote (its xmin is the batch's xid, or a
 * later step's rollback in this run restored it): anyone's later write, of any value, makes it a
 * conflict. --force overwrites changed rows; a deleted row cannot be brought back and is listed apart.
 */
export function restoreBatchSql(t: DecisionTarget, fence?: string): string {
  // with a fence: untouched unless someone wrote a written column since; without: the row version the batch wrote
  const ours = fence
    ? `NOT EXISTS (SELECT 1 FROM ${fence} f WHERE f.k = d.k)`
    : `(x.xmin = $4::xid8::xid OR x.xmin IN (SELECT rollback_xid::xid FROM belay.batches WHERE run_id = $6 AND rollback_xid IS NOT NULL))`;
  return `WITH d AS (
  ${batchRows(t)}
), r AS (
  UPDATE ${t.table} x SET ${t.writes.map((c, i) => `${ident(c)} = d.${o(i)}`).join(', ')}
    FROM d
   WHERE ${keyIs(t, 'x', 'd.k')} AND ($5::boolean OR ${ours}) AND ($4::text IS NOT NULL OR $6::bigint IS NOT NULL)
  RETURNING ${keyValue(t, 'x')} AS k
), left_alone AS (
  SELECT d.k, ${noRow(t, 'x')} AS deleted FROM d LEFT JOIN r ON r.k = d.k LEFT JOIN ${t.table} x ON ${keyIs(t, 'x', 'd.k')} WHERE r.k IS NULL
)
SELECT (SELECT count(*) FROM r)::int AS restored,
       (SELECT coalesce(jsonb_agg(${keyJson(t, 'k')} ORDER BY k), '[]') FROM left_alone WHERE NOT deleted) AS changed,
       (SELECT coalesce(jsonb_agg(${keyJson(t, 'k')} ORDER BY k), '[]') FROM left_alone WHERE deleted) AS deleted`;
}

/** The rows of one batch with their before-images, each value as its text form (the standalone rollback script). */
export function batchImagesSql(t: DecisionTarget, b: { lo: string; hi: string; round: number }): string {
  return `SELECT k::text AS k, ${t.writes.map((_, i) => `${o(i)}::text AS ${o(i)}`).join(', ')} FROM ${t.relation}
  WHERE round = ${Number(b.round)} AND skipped IS NULL AND k BETWEEN ${literal(b.lo)}::${t.keyType} AND ${literal(b.hi)}::${t.keyType} ORDER BY k`;
}

// ---- belay.decisions: the registry of decisions, with their size and checksum --------------------------

export const INSERT_DECISION_SQL = `INSERT INTO belay.decisions (run_id, step_no, relation, table_name, key_column, key_type, columns, row_count, first_rows, checksum)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9)
ON CONFLICT (run_id, step_no) DO UPDATE SET relation = EXCLUDED.relation, row_count = EXCLUDED.row_count, first_rows = EXCLUDED.first_rows, checksum = EXCLUDED.checksum,
  decided_at = clock_timestamp(), status = 'live'`;

export const ADD_ROUND_SQL = `UPDATE belay.decisions SET rounds = rounds + 1, row_count = row_count + $3 WHERE run_id = $1 AND step_no = $2`;

export const GET_DECISION_SQL = `SELECT relation, table_name AS "tableName", key_column AS "keyColumn", key_type AS "keyType", columns,
       row_count::float8 AS rows, first_rows::float8 AS "firstRows", checksum, rounds, status, fence, ${isoUtc('decided_at')} AS "decidedAt"
  FROM belay.decisions WHERE run_id = $1 AND step_no = $2`;

/** Decided rows a run left unchanged (changed by someone since, or rejected by a check or a constraint). */
export const skippedCountSql = (relation: string) => `SELECT count(*)::int AS n FROM ${relation} WHERE skipped IS NOT NULL`;

/** The lowest and highest decided key (a step's verify reads $1/$2 as the range it checks). */
export const decisionRangeSql = (relation: string) =>
  `SELECT (SELECT k FROM ${relation} ORDER BY k LIMIT 1)::text AS lo, (SELECT k FROM ${relation} ORDER BY k DESC LIMIT 1)::text AS hi`;

/** The first round's decided key `$1` rows in, in key order (where calibration starts a walk). */
export const decisionKeyAtSql = (relation: string) => `SELECT k::text AS k FROM ${relation} WHERE round = 0 ORDER BY k OFFSET $1 LIMIT 1`;

export const LIVE_DECISIONS_SQL = `SELECT step_no AS "stepNo", relation, fence, (extract(epoch FROM decided_at) * 1000)::float8 AS "decidedMs"
  FROM belay.decisions WHERE run_id = $1 AND status = 'live' ORDER BY step_no`;

export const MARK_DECISION_DROPPED_SQL = `UPDATE belay.decisions SET status = 'dropped' WHERE run_id = $1 AND step_no = $2`;

/** Has the step committed a batch? A decision that wrote nothing may be made again. */
export const STEP_HAS_BATCHES_SQL = `SELECT EXISTS (SELECT 1 FROM belay.batches WHERE run_id = $1 AND step_no = $2) AS has`;

/** The SQL types of k, o0, o1 … of a decision ($1 its relation, $2 written columns), with a collation where not the type's own. */
export const DECISION_TYPES_SQL = `SELECT format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation THEN ' COLLATE ' || quote_ident(cn.nspname) || '.' || quote_ident(c.collname) ELSE '' END AS type
  FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
  LEFT JOIN pg_collation c ON c.oid = a.attcollation LEFT JOIN pg_namespace cn ON cn.oid = c.collnamespace
 WHERE a.attrelid = to_regclass($1) AND (a.attname = 'k' OR a.attname IN (SELECT 'o' || g FROM generate_series(0, $2::int - 1) g))
 ORDER BY a.attnum`;

/**
 * The rows the run wrote as it wrote them: the written columns hold the values written, the other columns
 * their current values; a row deleted since is there too, with only its key and written values (monitoring).
 */
export function writtenAsWrittenSql(t: DecisionTarget, runId: number, stepNo: number, columns: readonly string[]): string {
  const list = columns.map((c) => {
    if (c === t.key) return `w.k AS ${ident(c)}`;
    if (isComposite(t) && t.keyColumns.includes(c)) return `(w.k).${ident(c)} AS ${ident(c)}`;
    const i = t.writes.indexOf(c);
    return i >= 0 ? `w.${n(i)} AS ${ident(c)}` : `x.${ident(c)}`;
  });
  return `SELECT ${list.join(', ')} FROM (${writtenRowsSql(t, runId, stepNo)}) w LEFT JOIN ${t.table} x ON ${keyIs(t, 'x', 'w.k')}`;
}

/** Rows the run's batches wrote and did not roll back. $1 run. */
export const RUN_ROWS_WRITTEN_SQL = `SELECT coalesce(sum(rows_changed), 0)::float8 AS n FROM belay.batches WHERE run_id = $1 AND rolled_back_at IS NULL`;

/** The keys a run's step wrote (any batch, rolled back or not), as text. */
export function writtenKeysSql(t: DecisionTarget, runId: number, stepNo: number): string {
  return `SELECT w.k::text AS k FROM (${writtenRowsSql(t, runId, stepNo, true)}) w`;
}

/**
 * Rows of a table that differ from its backup copy (changed, added or deleted since) and whose key this run
 * never wrote: other people's changes that a restore from backup would lose. `written`: the run's keys as text.
 */
export function othersChangesSql(table: string, copy: string, keyColumns: readonly string[], written: string): string {
  const key = { key: keyLabel(keyColumns), keyColumns, keyType: 'text' };
  // a composite key as the text of its row, the form the decisions' keys print in
  const k = (alias: string) => (isComposite(key) ? keyValue(key, alias) : `${alias}.${ident(keyColumns[0]!)}`);
  return `WITH w AS (
${written}
), d AS (
  SELECT coalesce(${isComposite(key) ? `CASE WHEN ${noRow(key, 't')} THEN ${k('c')} ELSE ${k('t')} END` : `${k('t')}, ${k('c')}`})::text AS k FROM ${table} t FULL JOIN ${copy} c ON ${sameKey(key, 'c', 't')}
   WHERE ${noRow(key, 't')} OR ${noRow(key, 'c')} OR to_jsonb(t) <> to_jsonb(c)
)
SELECT count(*)::int AS n, coalesce((array_agg(d.k ORDER BY d.k))[1:10], '{}') AS sample
  FROM d WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.k = d.k)`;
}

// ---- the write fence: who wrote a written column after belay did, during the run and the monitoring window -----

/** The fence of a step: a table of keys, and the trigger that fills it when anyone but belay writes a written column. */
export function fenceNames(runId: number, stepNo: number): { table: string; fn: string; trigger: string } {
  return {
    table: `belay.${ident(`fence_r${runId}_s${stepNo}`)}`,
    fn: `belay.${ident(`fence_r${runId}_s${stepNo}`)}`,
    trigger: ident(`belay_fence_r${runId}_s${stepNo}`),
  };
}

export const LOCK_TIMEOUT_SQL = `SELECT set_config('lock_timeout', $1, true)`;

/** belay's own writes say who they are, so that its fence does not count them. */
export const WRITER_SQL = `SELECT set_config('belay.writer', $1, true)`;

/**
 * Creates the fence: UPDATE OF the written columns fires on any statement that sets them (the same value
 * included), by any role (the function runs as belay's), except belay's own writes of this run: the WHEN
 * is evaluated as the row is written, so belay's batches queue no trigger event at all (no cost per row).
 */
export function createFenceSql(t: DecisionTarget, runId: number, stepNo: number): string[] {
  const f = fenceNames(runId, stepNo);
  return [
    `CREATE TABLE IF NOT EXISTS ${f.table} (k ${'%KEYTYPE%'} PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())`.replace('%KEYTYPE%', t.keyType),
    `CREATE OR REPLACE FUNCTION ${f.fn}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fence$
BEGIN
  INSERT INTO ${f.table} (k) VALUES (${keyValue(t, 'NEW')}) ON CONFLICT (k) DO UPDATE SET at = EXCLUDED.at;
  RETURN NULL;
END $fence$`,
    `REVOKE ALL ON FUNCTION ${f.fn}() FROM PUBLIC`,
    `DROP TRIGGER IF EXISTS ${f.trigger} ON ${t.table}`,
    `CREATE TRIGGER ${f.trigger} AFTER UPDATE OF ${t.writes.map(ident).join(', ')} ON ${t.table} FOR EACH ROW
  WHEN (current_setting('belay.writer', true) IS DISTINCT FROM ${literal(String(runId))}) EXECUTE FUNCTION ${f.fn}()`,
  ];
}

export function dropFenceSql(t: { table: string }, runId: number, stepNo: number): string[] {
  const f = fenceNames(runId, stepNo);
  return [`DROP TRIGGER IF EXISTS ${f.trigger} ON ${t.table}`, `DROP FUNCTION IF EXISTS ${f.fn}()`, `DROP TABLE IF EXISTS ${f.table}`];
}

export const SET_FENCE_SQL = `UPDATE belay.decisions SET fence = $3 WHERE run_id = $1 AND step_no = $2`;

/** The lowest and highest of some decided keys ($1, text), in the key's own order (no min(uuid) in PostgreSQL 15). */
export const keysRangeSql = (t: DecisionTarget) =>
  `SELECT (array_agg(k ORDER BY k))[1]::text AS lo, (array_agg(k ORDER BY k DESC))[1]::text AS hi FROM (SELECT unnest($1::text[]::${t.keyType}[]) AS k) s`;
