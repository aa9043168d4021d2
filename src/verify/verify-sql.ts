// All SQL of the post-run verification and of its records, in one place. Identifiers go through ident()/qualified().
import { isComposite, type KeyShape } from '../db/key-sql.ts';
import { ident, literal } from '../db/sql.ts';

/** A spec verify query (offending rows), counted and sampled. Also the monitor's checks. */
export function countedSql(sql: string, limit: number): string {
  return `WITH f AS (
${sql}
)
SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample`;
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

/** A check counted and sampled, with `written` (the rows the run wrote, as `writtenRows` selects them) available. */
export function writtenCountedSql(sql: string, writtenRows: string, limit: number, keyType: string): string {
  // $1/$2: a batch's key range in the batches, here every decided key; the WHERE types them when sql does not use them
  return `WITH written AS (
${writtenRows}
), f AS (
${sql}
)
SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample
 WHERE ($1::${keyType} IS NOT NULL OR $2::${keyType} IS NULL)`;
}

/**
 * Of a verify query's rows: how many, how many carry the key column(s), how many of those are rows the run
 * wrote (`written`: k). A composite key's row is recognised by its columns, read back as the key's type.
 */
export function offendingWrittenSql(sql: string, written: string, key: KeyShape): string {
  const composite = isComposite(key);
  const has = composite ? `to_jsonb(f) ?& ARRAY[${key.keyColumns.map(literal).join(', ')}]` : `to_jsonb(f) ? ${literal(key.key)}`;
  const value = composite ? `jsonb_populate_record(NULL::${key.keyType}, to_jsonb(f))::text` : `(to_jsonb(f) ->> ${literal(key.key)})`;
  return `WITH f AS (
${sql}
), w AS (${written})
SELECT count(*)::int AS n, count(*) FILTER (WHERE ${has})::int AS keyed,
       count(*) FILTER (WHERE ${has} AND ${value} IN (SELECT w.k::text FROM w))::int AS mine
  FROM f`;
}
