// Order-independent table checksums, independent of the session's text settings.
//
// Each column is hashed by a function chosen for its type (column i with seed i, so the same value in
// two columns hashes differently); a row's hash is the XOR of its columns' hashes, mixed once more by
// hashint8extended so that the sum over rows notices two rows swapping a value; the checksum is that sum.
// Types whose hash tells every two distinct values apart (integers, bool, dates, times, uuid, enums,
// text) are hashed as they are (or as an exact integer). Every other column goes through its text form
// under the pinned settings, so values that compare equal but print differently (numeric 1.0 and 1.00,
// jsonb numbers, -0 and 0, '1 day' and '24 hours') still give different checksums. jsonb has a hash
// function, but it is built for hash joins, not as a fingerprint: '[[1], 2]' and '[[1, 2]]' hash alike,
// so jsonb goes through text too. Text is hashed under COLLATE "C": a nondeterministic collation would
// hash 'a' and 'A' alike.
// Why not sum(hashtextextended(t::text, 0)) as before: printing every row as text (record_out) made one
// read of the flagship table at 1,000,000 rows cost 0.63 s; this costs 0.31 s (parallel, same machine).
import { type Db, transaction } from './connection.ts';
import { ident, pinnedSettingsSql } from './sql.ts';

export interface TableChecksum {
  rows: number;
  /** Sum of the rows' hashes as text (see checksumSql): equal sets of rows give equal sums, in any order. */
  checksum: string;
}

/** One live column and the expression that hashes it (see columnHash). */
export interface ChecksumColumn {
  name: string;
  /** pg_catalog base type name, or 'enum'; '' for anything else (hashed through text). */
  kind: string;
}

/** Hash functions of types whose hash is exact, by pg_catalog type name; `x` is the column, `k` the seed. */
const NATIVE: Readonly<Record<string, (x: string, k: number) => string>> = Object.freeze({
  int2: (x, k) => `hashint2extended(${x}, ${k})`,
  int4: (x, k) => `hashint4extended(${x}, ${k})`,
  int8: (x, k) => `hashint8extended(${x}, ${k})`,
  oid: (x, k) => `hashoidextended(${x}, ${k})`,
  bool: (x, k) => `hashint4extended(${x}::int4, ${k})`,
  time: (x, k) => `time_hash_extended(${x}, ${k})`,
  timestamp: (x, k) => `timestamp_hash_extended(${x}, ${k})`,
  // the distance from PostgreSQL's own epoch is the stored microsecond count: exact, and cheaper than
  // AT TIME ZONE. PostgreSQL 15 refuses to subtract infinities: those two values go through text.
  timestamptz: (x, k) =>
    `CASE WHEN isfinite(${x}) THEN interval_hash_extended(${x} - timestamptz '2000-01-01 00:00:00+00', ${k}) ELSE hashtextextended(${x}::text, ${k}) END`,
  date: (x, k) => `CASE WHEN isfinite(${x}) THEN hashint4extended(${x} - date '2000-01-01', ${k}) ELSE hashtextextended(${x}::text, ${k}) END`,
  uuid: (x, k) => `uuid_hash_extended(${x}, ${k})`,
  enum: (x, k) => `hashenumextended(${x}, ${k})`,
  text: (x, k) => `hashtextextended(${x}::text COLLATE "C", ${k})`,
  varchar: (x, k) => `hashtextextended(${x}::text COLLATE "C", ${k})`,
  // bpchar::text drops trailing spaces; its output function keeps them
  bpchar: (x, k) => `hashtextextended(textin(bpcharout(${x})) COLLATE "C", ${k})`,
});

/**
 * Live columns in order with the kind that picks their hash. A domain counts as its base type one
 * level down (a domain over bpchar must keep its trailing spaces); deeper domains go through text.
 */
export const CHECKSUM_COLUMNS_SQL = `
SELECT a.attname AS name,
       CASE WHEN b.typtype = 'e' THEN 'enum'
            WHEN b.typnamespace = 'pg_catalog'::regnamespace AND b.typname = ANY ($2::text[]) THEN b.typname::text
            ELSE '' END AS kind
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

export async function checksumColumns(db: Db, sqlName: string): Promise<ChecksumColumn[]> {
  const r = await db.query<ChecksumColumn>(CHECKSUM_COLUMNS_SQL, [sqlName, Object.keys(NATIVE).filter((k) => k !== 'enum')]);
  return r.rows.map((c) => ({ name: c.name, kind: c.kind }));
}

/** The hash of one column with seed k, 0 for NULL (the functions are strict). */
export function columnHash(c: ChecksumColumn, k: number, alias = 't'): string {
  const x = `${alias}.${ident(c.name)}`;
  const native = NATIVE[c.kind];
  return `coalesce(${native ? native(x, k) : `hashtextextended(${x}::text COLLATE "C", ${k})`}, 0)`;
}

/**
 * Row count and checksum of `table` (already quoted) read through `columns`: run it after
 * pinnedSettingsSql() in the same transaction. Any table with the same column names and types gives the
 * same checksum for the same rows (a backup's copy, its file loaded into a temporary table).
 */
export function checksumSql(table: string, columns: readonly ChecksumColumn[]): string {
  const row = columns.length === 0 ? '0::int8' : columns.map((c, i) => columnHash(c, i + 1)).join(' # ');
  return `SELECT count(*)::float8 AS rows, coalesce(sum(hashint8extended(${row}, 0)), 0)::text AS checksum FROM ${table} t`;
}

/** Checksums `table` read through `columns` in the caller's transaction (settings already pinned). */
export async function checksumWith(db: Db, table: string, columns: readonly ChecksumColumn[]): Promise<TableChecksum> {
  const r = await db.query<{ rows: number; checksum: string }>(checksumSql(table, columns));
  return { rows: Number(r.rows[0]!.rows), checksum: r.rows[0]!.checksum };
}

/** Checksums one table through its own columns, in the caller's transaction (settings already pinned). */
export async function checksumInTransaction(db: Db, sqlName: string): Promise<TableChecksum> {
  return checksumWith(db, sqlName, await checksumColumns(db, sqlName));
}

/** Checksums one table (sqlName must already be quoted, e.g. from qualified()) in its own transaction. */
export async function checksumTable(db: Db, sqlName: string, method: ChecksumMethod = 'typed'): Promise<TableChecksum> {
  return transaction(db, async () => {
    await db.exec(pinnedSettingsSql());
    return checksumByMethod(db, sqlName, method);
  });
}

/**
 * How a recorded checksum was computed: 'typed' is checksumSql; 'text' is sum(hashtextextended(t::text, 0)),
 * what belay recorded for backups before the typed checksum: those are still verified and restored by it.
 */
export type ChecksumMethod = 'typed' | 'text';

/** The checksum of `method`, in the caller's transaction (settings already pinned). */
export async function checksumByMethod(db: Db, sqlName: string, method: ChecksumMethod): Promise<TableChecksum> {
  if (method === 'typed') return checksumInTransaction(db, sqlName);
  const r = await db.query<{ rows: number; checksum: string }>(
    `SELECT count(*)::float8 AS rows, coalesce(sum(hashtextextended(t::text, 0)), 0)::text AS checksum FROM ${sqlName} t`,
  );
  return { rows: Number(r.rows[0]!.rows), checksum: r.rows[0]!.checksum };
}
