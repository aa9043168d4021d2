// Every SQL text of the Prisma stage: the history table, the catalog, the snapshot, the predictions over
// modelled rows, locks and the deploy. Identifiers go through ident()/qualified(); values are parameters.
//
// A table's rows "after the statements so far" are one SELECT (see RowsSql) yielding "__rid" and "__rel"
// (the live row's ctid and table oid, NULL for rows the files insert) and every column under its current
// name. Each data statement of the files wraps the previous SELECT, so a prediction reads the live rows
// once, as the statement itself would.
import { ident, literal } from '../db/sql.ts';

export const PRISMA_LOCK_KEY = 72707369;
export const TRY_LOCK_SQL = `SELECT pg_try_advisory_lock(${PRISMA_LOCK_KEY}) AS got`;
export const UNLOCK_SQL = `SELECT pg_advisory_unlock(${PRISMA_LOCK_KEY})`;

export const SNAPSHOT_SQL = 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY';
/**
 * The statements a prediction stands for (index builds, constraint validation) sort and hash with
 * maintenance_work_mem; the probe gets as much, or its GROUP BY spills to disk where the build does not.
 */
export const PROBE_MEMORY_SQL = `SELECT set_config('work_mem', (greatest(pg_size_bytes(current_setting('work_mem')),
  pg_size_bytes(current_setting('maintenance_work_mem'))) / 1024)::text || 'kB', true)`;
export const SAVEPOINT_SQL = 'SAVEPOINT belay_prisma_probe';
export const ROLLBACK_TO_SQL = 'ROLLBACK TO SAVEPOINT belay_prisma_probe';
export const RELEASE_SQL = 'RELEASE SAVEPOINT belay_prisma_probe';
export const setSearchPathSql = (schema: string, local: boolean) => `SET ${local ? 'LOCAL ' : ''}search_path TO ${ident(schema)}`;
export const SHOW_SEARCH_PATH_SQL = `SELECT current_setting('search_path') AS path`;
export const restoreSearchPathSql = (path: string) => `SELECT set_config('search_path', ${literal(path)}, false)`;

// ---- _prisma_migrations -------------------------------------------------------------------------------

export const MIGRATIONS_TABLE_EXISTS_SQL = `SELECT to_regclass(format('%I.%I', $1::text, '_prisma_migrations')) IS NOT NULL AS "exists"`;

export const historySql = (schema: string) => `
SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count
  FROM ${ident(schema)}."_prisma_migrations"
 ORDER BY started_at`;

/** Tables other than the history in Prisma's schema: with any, Prisma will not initialise the history (P3005). */
export const OTHER_TABLES_SQL = `
SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND c.relname NOT IN ('_prisma_migrations', 'spatial_ref_sys')`;

/** The table exactly as Prisma's schema engine creates it (run with search_path set to the schema). */
export const CREATE_MIGRATIONS_TABLE_SQL = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

// The three writes Prisma makes per migration: started (id, checksum, started_at, name), one successful
// step (the whole script is one step), finished. logs and rolled_back_at stay NULL.
export const recordStartedSql = (schema: string) =>
  `INSERT INTO ${ident(schema)}."_prisma_migrations" (id, checksum, started_at, migration_name) VALUES ($1, $2, $3, $4)`;
export const recordStepSql = (schema: string) => `UPDATE ${ident(schema)}."_prisma_migrations" SET applied_steps_count = applied_steps_count + 1 WHERE id = $1`;
export const recordFinishedSql = (schema: string) => `UPDATE ${ident(schema)}."_prisma_migrations" SET finished_at = $2 WHERE id = $1`;

// ---- catalog ------------------------------------------------------------------------------------------

/** Tables, indexes, sequences, views of the schemas, with an index's validity. */
export const RELATIONS_SQL = `
SELECT n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, c.oid::int8::text AS oid, i.indisvalid AS valid,
       i.indrelid::int8::text AS "tableOid"
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_index i ON i.indexrelid = c.oid
 WHERE n.nspname = ANY ($1::text[])`;

/** Types of the schemas that a CREATE TYPE could collide with, and the labels of enums. */
export const TYPES_SQL = `
SELECT n.nspname AS schema, t.typname AS name, t.typtype::text AS kind,
       (SELECT array_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = ANY ($1::text[]) AND t.typtype IN ('e', 'd', 'b', 'r', 'm')
    OR (n.nspname = ANY ($1::text[]) AND t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')`;

export const COLUMNS_SQL = `
SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
       pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;

export const PRIMARY_KEY_SQL = `
SELECT a.attname AS name FROM pg_index i
  JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
 WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.ord`;

/** Size on disk (heap and indexes) and the planner's row estimate. */
export const TABLE_SIZE_SQL = `
SELECT pg_table_size($1::oid)::float8 AS heap, pg_indexes_size($1::oid)::float8 AS indexes,
       greatest(c.reltuples, 0)::float8 AS rows FROM pg_class c WHERE c.oid = $1::oid`;

/** The valid unique indexes of a table: each key (a column name or an expression), predicate and NULLS NOT DISTINCT. */
export const UNIQUE_INDEXES_SQL = `
SELECT c.relname AS name, ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnkeyatts) k) AS keys,
       pg_get_expr(i.indpred, i.indrelid, true) AS "where", i.indnullsnotdistinct AS "nullsEqual"
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1::oid AND i.indisunique AND i.indisvalid ORDER BY c.relname`;

export const HAS_INPUT_IS_VALID_SQL = `SELECT to_regproc('pg_catalog.pg_input_is_valid') IS NOT NULL AS has`;

/** Reads about `pct` percent of a table's pages: the read rate of this server, for lock estimates. */
export const calibrateSql = (table: string, pct: number) => `SELECT count(*)::float8 AS n FROM ${table} TABLESAMPLE SYSTEM (${Number(pct.toFixed(4))})`;

/** Relation locks other sessions hold right now on the tables, with what those sessions are doing. */
export const LOCKS_NOW_SQL = `
SELECT l.relation::int8::text AS oid, l.mode, l.granted, a.pid, a.state, a.usename::text AS "user",
       a.application_name AS app, left(a.query, 200) AS query,
       extract(epoch FROM now() - a.xact_start)::float8 AS "xactSeconds"
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'relation' AND l.relation = ANY ($1::oid[]) AND l.pid <> pg_backend_pid()`;

// ---- modelled rows ------------------------------------------------------------------------------------

export const RID = '"__rid"';
export const REL = '"__rel"';

/** The live rows of a table: the start of every model. */
export function liveRowsSql(table: string, columns: readonly string[]): string {
  return `SELECT t.ctid AS ${RID}, t.tableoid AS ${REL}${columns.map((c) => `, t.${ident(c)}`).join('')} FROM ${table} t`;
}

/** No rows, with the columns typed (a table created by the files). */
export function emptyRowsSql(columns: ReadonlyArray<{ name: string; type: string }>): string {
  return `SELECT NULL::tid AS ${RID}, NULL::oid AS ${REL}${columns.map((c) => `, NULL::${c.type} AS ${ident(c.name)}`).join('')} WHERE false`;
}

/** `exprs` maps each output column to its expression over the previous rows, aliased `alias`. */
export function projectSql(prev: string, alias: string, exprs: ReadonlyArray<[string, string]>, where?: string): string {
  const cols = exprs.map(([name, e]) => `, ${e} AS ${ident(name)}`).join('');
  return `SELECT ${ident(alias)}.${RID}, ${ident(alias)}.${REL}${cols} FROM (${prev}) AS ${ident(alias)}${where ? ` WHERE ${where}` : ''}`;
}

/**
 * UPDATE … FROM: each previous row joined to at most one match (PostgreSQL updates a row once even when
 * the join matches it several times). `sets` maps a column to its new value over the joined rows.
 */
export function updateFromSql(
  prev: string,
  alias: string,
  columns: ReadonlyArray<{ name: string; type: string }>,
  sets: ReadonlyMap<string, string>,
  from: string,
  where: string | undefined,
): string {
  const a = ident(alias);
  const setList = [...sets].map(([c, e], i) => `, (${e})::${columns.find((x) => x.name === c)!.type} AS "__v${i}"`).join('');
  const matched = `SELECT DISTINCT ON (${a}.${REL}, ${a}.${RID}) ${a}.${RID}, ${a}.${REL}${setList} FROM (${prev}) AS ${a}, ${from}${where ? ` WHERE ${where}` : ''}`;
  const names = [...sets.keys()];
  const cols = columns
    .map((c) => {
      const i = names.indexOf(c.name);
      return i < 0 ? `, p.${ident(c.name)}` : `, CASE WHEN u.${RID} IS NULL THEN p.${ident(c.name)} ELSE u."__v${i}" END AS ${ident(c.name)}`;
    })
    .join('');
  return `SELECT p.${RID}, p.${REL}${cols} FROM (${prev}) AS p LEFT JOIN (${matched}) AS u ON u.${RID} = p.${RID} AND u.${REL} = p.${REL}`;
}

/** INSERT: the previous rows and the inserted ones, `values` yielding the given columns. */
export function insertSql(
  prev: string,
  columns: ReadonlyArray<{ name: string; type: string }>,
  given: readonly string[],
  values: string,
  defaults: ReadonlyMap<string, string>,
): string {
  const cols = columns
    .map((c) => {
      const e = given.includes(c.name) ? `ins.${ident(c.name)}` : (defaults.get(c.name) ?? 'NULL');
      return `, (${e})::${c.type}`;
    })
    .join('');
  return `${prev} UNION ALL SELECT NULL::tid, NULL::oid${cols} FROM (${values}) AS ins(${given.map(ident).join(', ')})`;
}

/**
 * Rows satisfying `where`, counted: a plain aggregate, which PostgreSQL runs in parallel (a window count
 * over the same rows would not). The sample is read only when there is something to show.
 */
export function countWhereSql(rows: string, alias: string, where: string): string {
  return `SELECT count(*)::float8 AS n FROM (${rows}) AS ${ident(alias)} WHERE ${where}`;
}

export function sampleWhereSql(rows: string, alias: string, show: readonly string[], where: string): string {
  const cols = show.length ? show.join(', ') : `${ident(alias)}.${RID}::text AS ctid`;
  return `SELECT ${cols} FROM (${rows}) AS ${ident(alias)} WHERE ${where} LIMIT $1`;
}

/** Key groups seen more than once: sample groups (largest first) with the totals of rows and groups. */
export function duplicatesSql(rows: string, alias: string, keys: readonly string[], where: string): string {
  const sel = keys.map((k, i) => `${k} AS "key${i + 1}"`).join(', ');
  const by = keys.map((_, i) => i + 1).join(', ');
  return `SELECT d.*, sum(d."rows") OVER ()::float8 AS "__n", count(*) OVER ()::float8 AS "__groups" FROM (
  SELECT ${sel}, count(*)::float8 AS "rows" FROM (${rows}) AS ${ident(alias)} WHERE ${where} GROUP BY ${by} HAVING count(*) > 1
) d ORDER BY d."rows" DESC LIMIT $1`;
}

/** Rows minus distinct hashes of their keys: 0 proves the keys distinct (see predictors/unique.ts). */
export function distinctShortfallSql(rows: string, alias: string, keys: readonly string[], where: string): string {
  return `SELECT (count(*) - count(DISTINCT hash_record_extended(ROW(${keys.join(', ')}), 0)))::float8 AS d FROM (${rows}) AS ${ident(alias)} WHERE ${where}`;
}

/** Child rows (alias c) with every key column set and no parent row with those values (MATCH SIMPLE). */
export function orphanWhere(parent: string, fk: readonly string[], pk: readonly string[]): string {
  const set = fk.map((c) => `c.${ident(c)} IS NOT NULL`).join(' AND ');
  const join = fk.map((c, i) => `p.${ident(pk[i]!)} = c.${ident(c)}`).join(' AND ');
  return `${set} AND NOT EXISTS (SELECT 1 FROM (${parent}) AS p WHERE ${join})`;
}

/** Evaluates `expr` for every row (count() must look at each value): an error means some row fails. */
export function evaluateAllSql(rows: string, alias: string, exprs: readonly string[], where?: string): string {
  return `SELECT ${exprs.map((e, i) => `count(${e}) AS "c${i}"`).join(', ')} FROM (${rows}) AS ${ident(alias)}${where ? ` WHERE ${where}` : ''}`;
}

/**
 * Tests every row in its own subtransaction (a PL/pgSQL block with an exception handler) without
 * aborting the snapshot. The conversion is evaluated inside the block from the row's fields (`expr` reads
 * them as r."column"), and assigning it to a variable of the target type applies the assignment cast that
 * ALTER COLUMN TYPE applies. Works on PostgreSQL 15 and PGlite; the count and up to `sample` rows (as
 * JSON) come back through two transaction-local settings.
 */
export function perRowCastSql(rows: string, alias: string, show: string, expr: string, type: string, sample: number): string {
  const q = `SELECT ${show} AS "__j", ${ident(alias)}.* FROM (${rows}) AS ${ident(alias)}`;
  return `DO $belay$
DECLARE r record; v ${type}; bad bigint := 0; seen jsonb := '[]';
BEGIN
  FOR r IN EXECUTE ${literal(q)} LOOP
    BEGIN
      v := ${expr};
    EXCEPTION WHEN others THEN
      bad := bad + 1;
      IF bad <= ${sample} THEN seen := seen || jsonb_build_array(r."__j" || jsonb_build_object('error', SQLERRM)); END IF;
    END;
  END LOOP;
  PERFORM set_config('belay.prisma_bad', bad::text, true), set_config('belay.prisma_sample', seen::text, true);
END $belay$`;
}
export const PER_ROW_RESULT_SQL = `SELECT current_setting('belay.prisma_bad')::float8 AS n, current_setting('belay.prisma_sample')::jsonb AS sample`;

/** Rows whose text the type's input function rejects (PostgreSQL 16 and later). */
export function inputInvalidWhere(expr: string, type: string): string {
  return `${expr} IS NOT NULL AND NOT pg_input_is_valid((${expr})::text, ${literal(type)})`;
}

// ---- deploy -------------------------------------------------------------------------------------------

export const setLockTimeoutSql = (ms: number, local: boolean) => `SET ${local ? 'LOCAL ' : ''}lock_timeout = ${Math.max(0, Math.round(ms))}`;
export const RESET_LOCK_TIMEOUT_SQL = 'RESET lock_timeout';
export const INDEX_VALID_SQL = `SELECT i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`;
export const dropIndexConcurrentlySql = (qualifiedName: string) => `DROP INDEX CONCURRENTLY IF EXISTS ${qualifiedName}`;

// ---- a large DELETE in keyset batches (batched-delete.ts): every deleted row kept in an undo table --------

/** $1 = the table (regclass text). What makes a batched DELETE unsafe: rows others delete or change with it, or rows it could not put back. */
export const DELETE_HAZARDS_SQL = `SELECT
  EXISTS (SELECT 1 FROM pg_constraint c WHERE c.contype = 'f' AND c.confrelid = $1::regclass AND c.confdeltype IN ('c', 'n', 'd')) AS cascades,
  EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = $1::regclass AND NOT t.tgisinternal AND (t.tgtype & 8) <> 0) AS triggers,
  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '') AS generated,
  EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = $1::regclass) AS inherited,
  EXISTS (SELECT 1 FROM pg_rewrite w WHERE w.ev_class = $1::regclass AND w.rulename <> '_RETURN') AS rules`;

/** $1 = the undo table (regclass text): an earlier, interrupted deploy may have left one, with the rows it deleted. */
export const UNDO_EXISTS_SQL = `SELECT to_regclass($1) IS NOT NULL AS "exists"`;
export const undoRowsSql = (undo: string) => `SELECT count(*)::int AS n FROM ${undo}`;

export const createUndoSql = (undo: string, table: string) => `CREATE TABLE ${undo} AS SELECT * FROM ${table} WITH NO DATA`;

/**
 * One batch: up to `limit` rows of the DELETE's condition past the last key, deleted and kept in the undo table in
 * one statement; returns how many and the last key. `after` false: the first batch (no lower bound).
 */
export function deleteBatchSql(d: { table: string; relation: string; key: string; where?: string }, undo: string, limit: number, after: boolean): string {
  const k = ident(d.key);
  const cond = [d.where ? `(${d.where})` : null, after ? `${k} > $1` : null].filter(Boolean).join(' AND ');
  return `WITH gone AS (
  DELETE FROM ${d.table} AS belay_d WHERE belay_d.${k} IN (SELECT ${k} FROM ${d.relation}${cond ? ` WHERE ${cond}` : ''} ORDER BY ${k} LIMIT ${Number(limit)})
  RETURNING belay_d.*
), kept AS (INSERT INTO ${undo} SELECT * FROM gone RETURNING ${k})
SELECT count(*)::int AS n, (array_agg(${k} ORDER BY ${k} DESC))[1]::text AS last FROM kept`; // no max(uuid) in PostgreSQL 15
}

/** Puts the deleted rows back (identity values as they were). */
export const restoreDeletedSql = (table: string, undo: string) => `INSERT INTO ${table} OVERRIDING SYSTEM VALUE SELECT * FROM ${undo}`;
export const dropUndoSql = (undo: string) => `DROP TABLE ${undo}`;
