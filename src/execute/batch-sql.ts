// The session settings of a batch's transaction, in one place (the statements on the decision and on
// belay's tables are in state/: decision-sql.ts and runs.ts).
import { isComposite, type KeyShape, keyOrder, keyValue } from '../db/key-sql.ts';
import { ident, literal } from '../db/sql.ts';
import { type DecisionTarget, writtenCte } from '../state/decision-sql.ts';
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
export function foreignKeyGuardSql(fk: ForeignKeyFact, key: KeyShape): string {
  const w = fk.childColumns.map((c) => `w.${ident(c)}`);
  const match = fk.parentColumns.map((p, i) => `p.${ident(p)} = ${w[i]}`).join(' AND ');
  return `SELECT ${keyOrder(key, 'w')} FROM written w
 WHERE ${w.map((c) => `${c} IS NOT NULL`).join(' AND ')}
   AND NOT EXISTS (SELECT 1 FROM ${fk.parent.sqlName} p WHERE ${match})`;
}

/** The table's key `$1` rows in, in key order (a trial after plain-SQL steps has no decision to walk yet). */
export const tableKeyAtSql = (table: string, key: KeyShape) =>
  `SELECT ${keyValue(key, 'x')}::text AS k FROM ${table} x ORDER BY ${keyOrder(key, 'x')} OFFSET $1 LIMIT 1`;

/**
 * An in-batch check over the rows the batch wrote ($1/$2 range, $3 round). Its rows are read as they are
 * for a single-column key; for a composite one, with the key's text (a, b) built by the server from the
 * key columns the check returned (by name, in their own types), NULL when it did not return them all.
 */
export function batchCheckSql(d: DecisionTarget, check: string): string {
  const names = `ARRAY[${d.keyColumns.map(literal).join(', ')}]`;
  const columns = isComposite(d)
    ? `violation.*, CASE WHEN to_jsonb(violation) ?& ${names} THEN jsonb_populate_record(NULL::${d.keyType}, to_jsonb(violation))::text END AS belay_key`
    : '*';
  return `WITH ${writtenCte(d)}\nSELECT ${columns} FROM (\n${check}\n) AS violation LIMIT 1000`;
}
