// The session settings of a batch's transaction, in one place (the statements on the decision and on
// belay's tables are in state/: decision-sql.ts and runs.ts).
import { ident } from '../db/sql.ts';
import type { ForeignKeyFact } from '../db/catalog-facts.ts';

/**
 * lock_timeout and statement_timeout for this transaction only, and an asynchronous COMMIT: the batch's row
 * locks are released without waiting for the WAL flush (a flush stalled by a busy disk held them for
 * 1.8 s at 1M rows). Safe for a batch: its write and its checkpoint are one transaction, so a server crash
 * can only lose both (the resume writes that range again), and any later synchronous commit, belay's own
 * or the application's, flushes it first.
 */
export const SET_TIMEOUTS_SQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true),
       set_config('synchronous_commit', 'off', true)`;

/** Before each later statement of a batch under a ceiling: what is left of it. */
export const SET_STATEMENT_TIMEOUT_SQL = `SELECT set_config('statement_timeout', $1, true)`;

/** disableUserTriggers: ordinary (ENABLE) user triggers and the foreign keys' own triggers do not fire in this transaction. */
export const REPLICA_ROLE_SQL = `SET LOCAL session_replication_role = replica`;

/**
 * Under session_replication_role = replica the server no longer checks a foreign key from the table: the
 * batch checks it itself (MATCH SIMPLE: a NULL column means no reference), over the rows it wrote.
 */
export function foreignKeyGuardSql(fk: ForeignKeyFact, key: string): string {
  const w = fk.childColumns.map((c) => `w.${ident(c)}`);
  const match = fk.parentColumns.map((p, i) => `p.${ident(p)} = ${w[i]}`).join(' AND ');
  return `SELECT w.${ident(key)} FROM written w
 WHERE ${w.map((c) => `${c} IS NOT NULL`).join(' AND ')}
   AND NOT EXISTS (SELECT 1 FROM ${fk.parent.sqlName} p WHERE ${match})`;
}

/** The table's key `$1` rows in, in key order (a trial after plain-SQL steps has no decision to walk yet). */
export const tableKeyAtSql = (table: string, key: string) => `SELECT ${ident(key)}::text AS k FROM ${table} ORDER BY ${ident(key)} OFFSET $1 LIMIT 1`;
