// All SQL of the post-run verification and of its records, in one place. Identifiers go through ident()/qualified().
import { ident, literal } from '../db/sql.ts';

/** Rows the run wrote and that were not rolled back, per table, from the undo log. */
export const ROWS_CHANGED_SQL = `SELECT table_name AS "table", coalesce(sum(row_count), 0)::int AS n
  FROM belay.undo WHERE run_id = $1 AND rolled_back_at IS NULL GROUP BY table_name ORDER BY table_name`;

/**
 * Rows the run wrote whose written columns no longer hold the value the run wrote (or that are gone).
 * $1 run id, $2 table name as recorded in the undo log.
 */
export function writesHeldSql(table: string, key: string, columns: readonly string[], limit: number): string {
  const k = ident(key);
  const differs = columns.map((c) => `t.${ident(c)} IS DISTINCT FROM a.${ident(c)}`).join(' OR ');
  return `WITH a AS (
  SELECT x.* FROM belay.undo u, jsonb_populate_recordset(NULL::${table}, u.after) x
   WHERE u.run_id = $1 AND u.table_name = $2 AND u.rolled_back_at IS NULL
), bad AS (
  SELECT a.${k} AS key, ${columns.map((c) => `a.${ident(c)} AS ${ident(`written.${c}`)}, t.${ident(c)} AS ${ident(`now.${c}`)}`).join(', ')},
         t.${k} IS NULL AS deleted
    FROM a LEFT JOIN ${table} t ON t.${k} = a.${k}
   WHERE t.${k} IS NULL OR ${differs}
)
SELECT (SELECT count(*) FROM bad)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM bad ORDER BY key LIMIT ${Number(limit)}) s) AS sample`;
}

/** A spec verify query (offending rows), counted and sampled. Also the monitor's checks. */
export function countedSql(sql: string, limit: number): string {
  return `WITH f AS (
${sql}
)
SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample`;
}

/**
 * A batched step's in-batch verification, re-run over every row the run wrote in that step against the
 * current data: \`written\` is the rows as written (after-images), $1/$2 the lowest and highest written key.
 * $1 lo, $2 hi, $3 run id, $4 step number.
 */
export function stepVerifySql(table: string, key: string, keyType: string, verify: string, limit: number): string {
  return `WITH written AS (
  SELECT x.* FROM belay.undo u, jsonb_populate_recordset(NULL::${table}, u.after) x
   WHERE u.run_id = $3::bigint AND u.step_no = $4::int AND u.rolled_back_at IS NULL
     AND x.${ident(key)} BETWEEN $1::${keyType} AND $2::${keyType}
), f AS (
${verify}
)
SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample`;
}

/** The lowest and highest key a step wrote ($1 run, $2 step), as text, compared in the key's own type. */
export function writtenRangeSql(table: string, key: string): string {
  return `SELECT min(x.${ident(key)})::text AS lo, max(x.${ident(key)})::text AS hi
  FROM belay.undo u, jsonb_populate_recordset(NULL::${table}, u.after) x
 WHERE u.run_id = $1 AND u.step_no = $2 AND u.rolled_back_at IS NULL`;
}

/** Unique indexes of the tables (oids in $1) that are not valid (a failed CREATE INDEX CONCURRENTLY, a broken rebuild). */
export const INVALID_UNIQUE_SQL = `SELECT i.indexrelid::regclass::text AS index, i.indrelid::regclass::text AS "table"
  FROM pg_index i WHERE i.indrelid = ANY($1::oid[]) AND i.indisunique AND NOT i.indisvalid ORDER BY 1`;

/** Foreign keys, checks and (PostgreSQL 18) NOT NULL constraints on or into the tables (oids in $1) still NOT VALID. */
export const UNVALIDATED_SQL = `SELECT c.conname AS name, c.conrelid::regclass::text AS "table", c.contype::text AS type
  FROM pg_constraint c
 WHERE (c.conrelid = ANY($1::oid[]) OR c.confrelid = ANY($1::oid[])) AND c.contype IN ('f', 'c', 'n') AND NOT c.convalidated
 ORDER BY 2, 1`;

/** Re-validates a NOT VALID constraint: SHARE UPDATE EXCLUSIVE, so reads and writes go on meanwhile. */
export function validateConstraintSql(table: string, name: string): string {
  return `ALTER TABLE ${table} VALIDATE CONSTRAINT ${ident(name)}`;
}

/** NULLs in a column the spec says must be NOT NULL after the run. */
export function nullsSql(table: string, column: string, key: string | undefined, limit: number): string {
  const pick = key ? `${ident(key)} AS key` : 'ctid::text AS row';
  return `SELECT (SELECT count(*) FROM ${table} WHERE ${ident(column)} IS NULL)::int AS n,
       (SELECT jsonb_agg(s) FROM (SELECT ${pick} FROM ${table} WHERE ${ident(column)} IS NULL LIMIT ${Number(limit)}) s) AS sample`;
}

/** The key range of a table, for bucketing the untouched-column checksum. */
export function keyRangeSql(table: string, key: string): string {
  return `SELECT min(${ident(key)})::text AS lo, max(${ident(key)})::text AS hi FROM ${table}`;
}

export interface BucketSpec {
  key?: string;
  /** Integer key bounds (as text, bigint-safe) and bucket width; absent = one bucket over the whole table. */
  lo?: string;
  hi?: string;
  width?: string;
}

/**
 * Order-independent checksum of the columns the run does not write, per key bucket. Rows above the
 * key's maximum at baseline time are left out, so rows inserted later (a growing table) do not count.
 * Run with PINNED_TEXT_SETTINGS set locally.
 */
export function untouchedChecksumSql(table: string, columns: readonly string[], b: BucketSpec): string {
  const row = `hashtextextended(row(${columns.map((c) => `t.${ident(c)}`).join(', ')})::text, 0)`;
  if (b.key === undefined || b.lo === undefined || b.hi === undefined || b.width === undefined) {
    return `SELECT 0::text AS b, count(*)::float8 AS n, coalesce(sum(${row}), 0)::text AS sum FROM ${table} t`;
  }
  const k = `t.${ident(b.key)}`;
  const [lo, hi, width] = [BigInt(b.lo), BigInt(b.hi), BigInt(b.width)].map(String);
  return `SELECT div(${k}::numeric - ${lo}, ${width})::text AS b, count(*)::float8 AS n, coalesce(sum(${row}), 0)::text AS sum
  FROM ${table} t WHERE ${k} <= ${hi} GROUP BY 1`;
}

// --- records (state schema version 6) ---

export const INSERT_ROUND_SQL = `INSERT INTO belay.verifications (run_id, source, ok, duration_ms, alerts)
  VALUES ($1, $2, $3, $4, $5) RETURNING id::int AS id, at::text AS at`;

export const INSERT_RESULT_SQL = `INSERT INTO belay.verification_results
  (verification_id, run_id, name, kind, result, count, threshold, message, sample, error)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)`;

export const ROUNDS_SQL = `SELECT v.id::int AS id, v.source, v.at::text AS at, v.ok, v.duration_ms::float8 AS "durationMs", v.alerts,
       coalesce((SELECT jsonb_agg(jsonb_build_object('name', r.name, 'kind', r.kind, 'result', r.result, 'count', r.count,
                 'threshold', r.threshold, 'message', r.message, 'sample', r.sample, 'error', r.error) ORDER BY r.seq)
                   FROM belay.verification_results r WHERE r.verification_id = v.id), '[]'::jsonb) AS checks
  FROM belay.verifications v WHERE v.run_id = $1 AND ($2::text IS NULL OR v.source = $2) ORDER BY v.id`;

/**
 * A monitor check counted and sampled, with `written` available: the rows the run wrote to `table` (after-images,
 * not rolled back), so that a check can watch what the run changed rather than the whole table.
 */
export function writtenCountedSql(sql: string, table: string, tableName: string, runId: number, limit: number): string {
  return `WITH written AS (
  SELECT x.* FROM belay.undo u, jsonb_populate_recordset(NULL::${table}, u.after) x
   WHERE u.run_id = ${Number(runId)} AND u.table_name = ${literal(tableName)} AND u.rolled_back_at IS NULL
), f AS (
${sql}
)
SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample`;
}
