// Every SQL statement of the backup stage: copies, checksums, state rows, restore merge, file COPY.
// Identifiers arrive already quoted (qualified()/ident()); values are $n parameters.
import { ident } from '../db/sql.ts';

/** The schema that holds every in-database copy; created with belay's state (state/schema.ts), owner-only. */
export { BACKUP_SCHEMA } from '../state/schema.ts';

/** PostgreSQL truncates identifiers longer than 63 bytes; a longer copy name is shortened with a hash. */
export const MAX_IDENT_BYTES = 63;

/** A REPEATABLE READ snapshot: the copy and both checksums see the same rows, whatever others write meanwhile. */
export const BEGIN_SNAPSHOT_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ';

/** The copy itself: no indexes, no constraints, same columns and types, in the caller's snapshot. */
export const copyTableSql = (copy: string, source: string) => `CREATE TABLE ${copy} AS TABLE ${source}`;

/** The second session: read-only, in the exported snapshot (must come first in its transaction). */
export const BEGIN_READER_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';

/**
 * The reader runs beside the copy on a 2-core machine: one process, so it takes the core the copy leaves
 * idle instead of slowing the copy down with parallel workers.
 */
export const READER_SERIAL_SQL = 'SET LOCAL max_parallel_workers_per_gather = 0';

export const sizeSql = (copy: string) => `SELECT pg_total_relation_size('${copy.replace(/'/g, "''")}'::regclass)::float8 AS bytes`;

export const dropCopySql = (copy: string) => `DROP TABLE IF EXISTS ${copy}`;

/**
 * Live columns in order, with their DDL type; generated columns are flagged (restore cannot write them), and
 * identity columns GENERATED ALWAYS (an INSERT gives them back with OVERRIDING SYSTEM VALUE, an UPDATE cannot).
 */
export const COLUMNS_SQL = `
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attgenerated <> '' AS generated, a.attidentity = 'a' AS "alwaysIdentity"
  FROM pg_attribute a
 WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

export const PRIMARY_KEY_SQL = `
SELECT a.attname AS name FROM pg_index i
  JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::regclass AND i.indisprimary ORDER BY k.ord`;

// --- restore ---------------------------------------------------------------------------------

/** Blocks writers (readers go on) while a table is restored; SHARE ROW EXCLUSIVE conflicts with itself too. */
export const lockSql = (table: string) => `LOCK TABLE ${table} IN SHARE ROW EXCLUSIVE MODE`;

/** Enabled user triggers (not FK/internal ones): restore disables them so audit or updatedAt triggers cannot alter restored rows. */
export const USER_TRIGGERS_SQL = `
SELECT tgname AS name, tgenabled AS enabled FROM pg_trigger
 WHERE tgrelid = $1::regclass AND NOT tgisinternal AND tgenabled <> 'D' ORDER BY tgname`;

export const setTriggerSql = (table: string, trigger: string, enabled: string) => {
  const mode = enabled === 'D' ? 'DISABLE' : enabled === 'A' ? 'ENABLE ALWAYS' : enabled === 'R' ? 'ENABLE REPLICA' : 'ENABLE';
  return `ALTER TABLE ${table} ${mode} TRIGGER ${ident(trigger)}`;
};

const keyJoin = (key: readonly string[], a: string, b: string) => key.map((k) => `${a}.${ident(k)} = ${b}.${ident(k)}`).join(' AND ');

/** The three statements of a restore, run in the foreign keys' order (restore-order.ts): deletes children first, the rest parents first. */
export interface RestoreStatements {
  /** Rows the backup does not have. */
  delete: string;
  /** Rows put back: inserted, then (with a key) overwritten where they differ. */
  write: string[];
}

/**
 * With a primary key, restore is a merge on the key, so rows that did not change are not touched
 * and foreign keys that reference the table see no DELETE of a row that is still wanted:
 * delete rows added since the backup, insert rows deleted since, overwrite rows that differ (after the
 * insert, so that a row may point again at a row of its own table that comes back).
 */
export const restoreMergeSql = (
  table: string,
  from: string,
  key: readonly string[],
  cols: readonly string[],
  alwaysIdentity: readonly string[] = [],
): RestoreStatements => {
  // an UPDATE may not set an identity column GENERATED ALWAYS (428C9); the checksum after the restore tells if one differed
  const nonKey = cols.filter((c) => !key.includes(c) && !alwaysIdentity.includes(c));
  const list = cols.map(ident).join(', ');
  return {
    delete: `DELETE FROM ${table} s WHERE NOT EXISTS (SELECT 1 FROM ${from} c WHERE ${keyJoin(key, 'c', 's')})`,
    write: [
      // OVERRIDING SYSTEM VALUE: identity columns GENERATED ALWAYS get back their old values
      `INSERT INTO ${table} (${list}) OVERRIDING SYSTEM VALUE
       SELECT ${cols.map((c) => `c.${ident(c)}`).join(', ')} FROM ${from} c
        WHERE NOT EXISTS (SELECT 1 FROM ${table} s WHERE ${keyJoin(key, 'c', 's')})`,
      ...(nonKey.length === 0
        ? []
        : [
            `UPDATE ${table} s SET (${nonKey.map(ident).join(', ')}) = ROW(${nonKey.map((c) => `c.${ident(c)}`).join(', ')})
           FROM ${from} c WHERE ${keyJoin(key, 'c', 's')} AND s::text IS DISTINCT FROM c::text`,
          ]),
    ],
  };
};

/** Without a key there is no row identity: replace every row. */
export const restoreReplaceSql = (table: string, from: string, cols: readonly string[]): RestoreStatements => ({
  delete: `DELETE FROM ${table}`,
  write: [`INSERT INTO ${table} (${cols.map(ident).join(', ')}) OVERRIDING SYSTEM VALUE SELECT ${cols.map(ident).join(', ')} FROM ${from}`],
});

/** Foreign keys between the tables of $1 (qualified names), with the tables as 1-based positions in $1. */
export const FOREIGN_KEYS_AMONG_SQL = `
WITH t AS (SELECT to_regclass(n) AS oid, ord FROM unnest($1::text[]) WITH ORDINALITY u(n, ord))
SELECT c.conname AS name, ch.ord::int AS child, pa.ord::int AS parent, c.condeferrable AS deferrable
  FROM pg_constraint c JOIN t ch ON ch.oid = c.conrelid JOIN t pa ON pa.oid = c.confrelid
 WHERE c.contype = 'f' AND c.conparentid = 0
 ORDER BY c.conname`;

/**
 * Tables outside $1 that a DELETE from the tables of $1 changes through ON DELETE CASCADE / SET NULL / SET
 * DEFAULT, followed as far as the cascades go (UNION stops at a cycle).
 */
export const CASCADE_REACHABLE_SQL = `
WITH RECURSIVE given AS (SELECT to_regclass(n)::oid AS oid FROM unnest($1::text[]) n),
r(oid) AS (
  SELECT oid FROM given
  UNION
  SELECT c.conrelid FROM pg_constraint c JOIN r ON c.confrelid = r.oid WHERE c.contype = 'f' AND c.confdeltype IN ('c', 'n', 'd')
)
SELECT r.oid::regclass::text AS name FROM r WHERE r.oid NOT IN (SELECT oid FROM given) ORDER BY 1`;

const rowKey = (key: readonly string[], alias: string) =>
  key.length > 0 ? `jsonb_build_object(${key.map((c) => `${literalName(c)}, ${alias}.${ident(c)}`).join(', ')})` : `to_jsonb(${alias}::text)`;

/** Every row of a table by its key (the whole row without one), to compare after a trial restore. */
export const snapshotRowsSql = (name: string, table: string, key: readonly string[]) =>
  `CREATE TEMP TABLE ${ident(name)} ON COMMIT DROP AS SELECT ${rowKey(key, 't')} AS k, t::text AS r FROM ${table} t`;

/** The rows of a snapshot that are gone from the table, and those whose values differ now (SET NULL / SET DEFAULT). */
export const snapshotDiffSql = (name: string, table: string, key: readonly string[]) => `
SELECT count(*) FILTER (WHERE a.k IS NULL)::float8 AS deleted, count(*) FILTER (WHERE a.k IS NOT NULL)::float8 AS changed,
       coalesce(jsonb_agg(b.k ORDER BY b.k::text) FILTER (WHERE a.k IS NULL), '[]') AS "deletedKeys",
       coalesce(jsonb_agg(b.k ORDER BY b.k::text) FILTER (WHERE a.k IS NOT NULL), '[]') AS "changedKeys"
  FROM ${ident(name)} b LEFT JOIN (SELECT ${rowKey(key, 't')} AS k, t::text AS r FROM ${table} t) a ON a.k = b.k
 WHERE a.k IS NULL OR a.r <> b.r`;

/** Deferrable constraints are checked at COMMIT from here on (in this transaction only). */
export const DEFER_ALL_SQL = 'SET CONSTRAINTS ALL DEFERRED';

/** Keys listed of the rows a restore deletes: all of them, up to this many (the count is exact). */
export const MAX_LISTED = 100_000;

/** What a restore would do, with a key: rows added since (deleted by restore; every key), changed, and deleted since (re-inserted). */
export const previewKeyedSql = (table: string, from: string, key: readonly string[]) => {
  const k = (alias: string) => `json_build_object(${key.map((c) => `${literalName(c)}, ${alias}.${ident(c)}`).join(', ')})`;
  return `
SELECT kind, count(*)::float8 AS n, (array_agg(k ORDER BY k::text))[1:CASE WHEN kind = 'added' THEN ${MAX_LISTED} ELSE 10 END] AS sample FROM (
  SELECT 'added' AS kind, ${k('s')}::jsonb AS k FROM ${table} s WHERE NOT EXISTS (SELECT 1 FROM ${from} c WHERE ${keyJoin(key, 'c', 's')})
  UNION ALL
  SELECT 'changed', ${k('s')}::jsonb FROM ${table} s JOIN ${from} c ON ${keyJoin(key, 'c', 's')} WHERE s::text IS DISTINCT FROM c::text
  UNION ALL
  SELECT 'deleted', ${k('c')}::jsonb FROM ${from} c WHERE NOT EXISTS (SELECT 1 FROM ${table} s WHERE ${keyJoin(key, 'c', 's')})
) d GROUP BY kind`;
};

/** Without a key: rows only in the table (removed by restore) and only in the backup (put back), as multisets. */
export const previewMultisetSql = (table: string, from: string) => `
SELECT 'added' AS kind, count(*)::float8 AS n FROM (SELECT s::text FROM ${table} s EXCEPT ALL SELECT c::text FROM ${from} c) a
UNION ALL
SELECT 'deleted', count(*)::float8 FROM (SELECT c::text FROM ${from} c EXCEPT ALL SELECT s::text FROM ${table} s) b`;

/** Serial/identity sequences owned by the table's columns. */
export const OWNED_SEQUENCES_SQL = `
SELECT a.attname AS "column", s.oid::regclass::text AS seq
  FROM pg_depend d JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE d.refobjid = $1::regclass AND d.deptype IN ('a', 'i')`;

/** Never moves a sequence back (ids handed out since may live elsewhere); only forward past the restored rows. */
export const bumpSequenceSql = (table: string, column: string, seq: string) =>
  `SELECT setval('${seq.replace(/'/g, "''")}'::regclass, m) FROM (SELECT max(${ident(column)})::bigint AS m FROM ${table}) x
    WHERE m IS NOT NULL AND m > (SELECT last_value FROM ${seq})`;

// --- files -----------------------------------------------------------------------------------

/** PostgreSQL's text COPY format: one line per row, so a file's line count is its row count. */
export const copyOutSql = (copy: string) => `COPY ${copy} TO STDOUT`;
export const copyInSql = (table: string) => `COPY ${table} FROM STDIN`;

/** A session-local table to load a file into (verify, restore from file): the columns recorded at backup time. */
export const createStagingSql = (name: string, cols: ReadonlyArray<{ name: string; type: string }>) =>
  `CREATE TEMP TABLE ${ident(name)} (${cols.map((c) => `${ident(c.name)} ${c.type}`).join(', ')}) ON COMMIT DROP`;

function literalName(name: string): string {
  return `'${name.replace(/'/g, "''")}'`;
}
