// All SQL of planning, calibration, temporary indexes and throttling, in one place.
// Identifiers go through ident()/qualified(); values are parameters.
import { ident } from '../db/sql.ts';

/** Estimated rows (reltuples, -1 = never analysed), heap and index bytes of one table ($1 = regclass text). */
export const TABLE_SIZE_SQL = `SELECT c.reltuples::float8 AS estimate,
       pg_table_size(c.oid)::float8 AS "tableBytes",
       pg_indexes_size(c.oid)::float8 AS "indexBytes"
  FROM pg_class c WHERE c.oid = to_regclass($1)`;

export function exactCountSql(table: string): string {
  return `SELECT count(*)::float8 AS n FROM ${table}`;
}

/** Every index definition of a table ($1 = oid), for the definition fingerprint. */
export const INDEX_DEFS_SQL = `SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS def
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = $1 ORDER BY i.relname`;

/** Every constraint definition of a table ($1 = oid): a new CHECK or FK changes the plan too. */
export const CONSTRAINT_DEFS_SQL = `SELECT conname AS name, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE conrelid = $1 ORDER BY conname`;

/** The key at a position of the table in key order (calibration picks a few; OFFSET is fine once). */
export function keyAtSql(table: string, key: string): string {
  return `SELECT ${ident(key)}::text AS k FROM ${table} ORDER BY ${ident(key)} OFFSET $1 LIMIT 1`;
}

export function explainSql(sql: string): string {
  return `EXPLAIN (FORMAT JSON) ${sql}`;
}

/** The schema a table lives in ($1 = regclass text): a temporary index is created beside it. */
export const TABLE_SCHEMA_SQL = `SELECT n.nspname AS schema FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1)`;

/** Whether an index exists and is valid ($1 = qualified index name as text). */
export const INDEX_VALID_SQL = `SELECT x.indisvalid AS valid FROM pg_index x WHERE x.indexrelid = to_regclass($1)`;

export function createIndexSql(opts: { schema: string; name: string; table: string; columns: string; where?: string; concurrently: boolean }): string {
  return `CREATE INDEX ${opts.concurrently ? 'CONCURRENTLY ' : ''}IF NOT EXISTS ${ident(opts.name)} ON ${opts.table} (${opts.columns})${opts.where ? ` WHERE ${opts.where}` : ''}`;
}

export function dropIndexSql(schema: string, name: string, concurrently: boolean): string {
  return `DROP INDEX ${concurrently ? 'CONCURRENTLY ' : ''}IF EXISTS ${ident(schema)}.${ident(name)}`;
}

export const GET_STATEMENT_TIMEOUT_SQL = `SELECT current_setting('statement_timeout') AS v`;
/** Session-level (not LOCAL): CREATE INDEX CONCURRENTLY runs outside any transaction. */
export const SET_STATEMENT_TIMEOUT_SQL = `SELECT set_config('statement_timeout', $1, false)`;

// --- throttle conditions (server only; PGlite has one session and no replicas) ---------------------

/** Sessions waiting for a lock on the table ($1 = regclass text), other than belay's own. */
export const LOCK_WAITERS_SQL = `SELECT count(*)::int AS n FROM pg_locks l
 WHERE NOT l.granted AND l.relation = to_regclass($1) AND l.pid <> pg_backend_pid()`;

/** The oldest open transaction in this database other than belay's own, in ms ($1 = limit in ms). */
export const OLD_TRANSACTIONS_SQL = `SELECT count(*)::int AS n,
       coalesce(max(extract(epoch FROM clock_timestamp() - xact_start) * 1000), 0)::float8 AS "oldestMs"
  FROM pg_stat_activity
 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
   AND backend_type = 'client backend'
   AND xact_start < clock_timestamp() - make_interval(secs => $1::float8 / 1000)`;

/** The worst replay lag over all replicas in ms (NULL when there are no replicas). */
export const REPLICATION_LAG_SQL = `SELECT count(*)::int AS replicas, max(extract(epoch FROM replay_lag) * 1000)::float8 AS "lagMs" FROM pg_stat_replication`;
