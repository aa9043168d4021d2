// All SQL of a batched step, in one place. Parameters: $1 = lo, $2 = hi (inclusive, the key's type);
// $3 = run id, $4 = step number, $5 = batch number. Identifiers go through ident()/qualified().
import { ident, literal } from '../db/sql.ts';

export interface StepTarget {
  /** Quoted, qualified table name. */
  table: string;
  /** The table name as given in the spec (recorded in the undo log). */
  tableName: string;
  key: string;
  keyType: string;
  writes: readonly string[];
}

export function boundsSql(t: StepTarget, first: boolean): string {
  const k = ident(t.key);
  // Keyset walk, never OFFSET: sparse ids cost nothing and every batch reads only its own keys.
  // No min()/max(): they do not exist for every key type (uuid on PG 15).
  return `WITH s AS (SELECT ${k} AS k FROM ${t.table} ${first ? 'WHERE $1::text IS NULL' : `WHERE ${k} > $1::${t.keyType}`} ORDER BY ${k} LIMIT $2)
SELECT (SELECT k FROM s ORDER BY k LIMIT 1)::text AS lo, (SELECT k FROM s ORDER BY k DESC LIMIT 1)::text AS hi, (SELECT count(*) FROM s)::int AS n`;
}

export function countSql(t: StepTarget): string {
  return `SELECT count(*)::float8 AS n FROM ${t.table}`;
}

function jsonObject(alias: string, cols: readonly string[]): string {
  return `jsonb_build_object(${cols.map((c) => `${literal(c)}, ${alias}.${ident(c)}`).join(', ')})`;
}

/**
 * One statement that computes the projection, writes only the rows whose values change, and stores
 * before- and after-images in the undo log. The before-image is read in the UPDATE's own FROM and
 * returned by it, so every join is an index probe on the key (projection estimates are often 1 row,
 * and a join between two CTEs would then be a nested loop over both). The guard
 * `t.c IS NOT DISTINCT FROM s.old` makes the before-image exact under concurrency: a row changed by
 * another transaction after this statement's snapshot fails the re-check and is left alone.
 */
export function applyBatchSql(t: StepTarget, projection: string): string {
  const k = ident(t.key);
  const range = `BETWEEN $1::${t.keyType} AND $2::${t.keyType}`;
  const w = t.writes.map((c, i) => ({ col: ident(c), name: c, nw: ident(`belay_new_${i}`), old: ident(`belay_old_${i}`) }));
  const object = (key: string, pick: (x: (typeof w)[number]) => string) =>
    `jsonb_build_object(${literal(t.key)}, ${key}, ${w.map((x) => `${literal(x.name)}, ${pick(x)}`).join(', ')})`;
  return `WITH p AS (
${projection}
), u AS (
  UPDATE ${t.table} t SET ${w.map((x) => `${x.col} = s.${x.nw}`).join(', ')}
    FROM (SELECT p.${k} AS belay_key, ${w.map((x) => `p.${x.col} AS ${x.nw}, o.${x.col} AS ${x.old}`).join(', ')}
            FROM p JOIN ${t.table} o ON o.${k} = p.${k} WHERE o.${k} ${range}) s
   WHERE t.${k} = s.belay_key AND t.${k} ${range}
     AND (${w.map((x) => `t.${x.col} IS DISTINCT FROM s.${x.nw}`).join(' OR ')})
     AND ${w.map((x) => `t.${x.col} IS NOT DISTINCT FROM s.${x.old}`).join(' AND ')}
  RETURNING t.${k} AS belay_key, ${w.map((x) => `s.${x.old}, t.${x.col} AS ${x.nw}`).join(', ')}
), ins AS (
  INSERT INTO belay.undo (run_id, step_no, batch_no, table_name, key_column, columns, row_count, before, after)
  SELECT $3::bigint, $4::int, $5::int, ${literal(t.tableName)}, ${literal(t.key)}, ARRAY[${t.writes.map(literal).join(', ')}]::text[], count(*),
         coalesce(jsonb_agg(${object('u.belay_key', (x) => `u.${x.old}`)}), '[]'::jsonb),
         coalesce(jsonb_agg(${object('u.belay_key', (x) => `u.${x.nw}`)}), '[]'::jsonb)
    FROM u
  RETURNING row_count
)
SELECT (SELECT row_count FROM ins)::int AS changed,
       (SELECT count(*) - count(DISTINCT ${k}) FROM p)::int AS duplicate_keys,
       (SELECT count(*) FROM p WHERE ${k} NOT ${range} OR ${k} IS NULL)::int AS out_of_range`;
}

/** Wraps a step's in-batch verification: it may read `written`, the rows this batch wrote (after-image). */
export function verifyBatchSql(t: StepTarget, verify: string, limit = 100): string {
  return `WITH written AS (
  SELECT w.* FROM jsonb_populate_recordset(NULL::${t.table},
    (SELECT after FROM belay.undo WHERE run_id = $3::bigint AND step_no = $4::int AND batch_no = $5::int)) w
   WHERE w.${ident(t.key)} BETWEEN $1::${t.keyType} AND $2::${t.keyType}
)
SELECT * FROM (
${verify}
) AS violation LIMIT ${Number(limit)}`;
}

/** The checkpoint, committed in the same transaction as the batch. */
export const CHECKPOINT_SQL = `WITH b AS (
  INSERT INTO belay.batches (run_id, step_no, batch_no, lo, hi, rows_in_range, rows_changed, duration_ms, attempts)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING run_id
)
UPDATE belay.steps SET last_key = $5, rows_done = rows_done + $6, rows_changed = rows_changed + $7
 WHERE run_id = $1 AND step_no = $2`;

export const SET_TIMEOUTS_SQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`;

/** Before each later statement of a batch under a ceiling: what is left of it. */
export const SET_STATEMENT_TIMEOUT_SQL = `SELECT set_config('statement_timeout', $1, true)`;
