// All SQL of the cleanup stage (temporary indexes), in one place. Identifiers go through ident()/qualified().
import { ident } from '../db/sql.ts';

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
