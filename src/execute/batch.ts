// The one batch body. Apply, the dry run, the rehearsal and calibration all run a batch through here:
// one transaction (lock_timeout, the decided rows of one key range written where they still hold their
// before-image, the in-batch checks, the checkpoint with the transaction's xid), committed for a run,
// rolled back for a trial. So a dry run refuses exactly what apply refuses, at the same point.
import type { Db } from '../db/connection.ts';
import { DbError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import { CURRENT_XID_SQL, type DecisionTarget, nextRangeSql, rejectSql, WRITER_SQL, writeBatchSql } from '../state/decision-sql.ts';
import { CHECKPOINT_SQL, RANGE_CHECKPOINT_SQL } from '../state/runs.ts';
import { batchCheckSql, REPLICA_ROLE_SQL, SET_STATEMENT_TIMEOUT_SQL, SET_TIMEOUTS_SQL } from './batch-sql.ts';

/** What one batch runs against: the step's decision, its in-batch checks, and whether it commits. */
export interface BatchJob {
  db: Db;
  /** The run it belongs to; null for a trial (dry run, calibration): nothing is checkpointed. */
  runId: number | null;
  stepNo: number;
  decision: DecisionTarget;
  options: Migration['options'];
  /** The step's verify and the guards lent by the checks: SQL over `written` that returns offending rows. */
  checks: ReadonlyArray<{ name: string; sql: string }>;
  /** false: the batch is rolled back at the end (a trial). */
  commit: boolean;
  /** Inside a caller's transaction (--single): no BEGIN/COMMIT of its own. */
  inTransaction?: boolean;
  /** The step's write fence (its table), cleared for the rows a batch writes. */
  fence?: string;
  /** The step's disableUserTriggers: the batch runs under session_replication_role = replica. */
  replicaRole?: boolean;
}

export interface BatchRequest {
  round: number;
  /** The batch starts after this key (null: at the first decided key of the round). */
  after: string | null;
  /** A worker's range (execute/workers.ts): no key after this one (null or absent: to the round's last). */
  upper?: string | null;
  /** A worker's number: its range's checkpoint commits with the batch. */
  worker?: number;
  size: number;
  batchNo: number;
  /** Called at the checkpoint for the batch's number (workers share a counter); absent: batchNo. */
  takeBatchNo?: () => number;
  attempt: number;
  /** The time left for each statement, as a statement_timeout (the ceiling); undefined: the spec's. */
  timeout?: () => string;
  /** Also EXPLAIN (FORMAT JSON) the write (calibration: the plan of a batch). */
  explain?: boolean;
}

export type BatchOutcome =
  /** No decided key is left in the round after `after`. */
  | { kind: 'done' }
  | {
      kind: 'written';
      lo: string;
      hi: string;
      rows: number;
      changed: number;
      skipped: number;
      skippedSample: unknown[];
      /** BEGIN to the end of the checks: what the batch size scales. */
      ms: number;
      /** BEGIN to COMMIT (or ROLLBACK) returned: how long the batch held its row locks. */
      heldMs: number;
      xid: string;
      explain?: unknown;
    }
  /** An in-batch check returned rows: the batch was rolled back; these keys are to be left out and the batch run again. */
  | { kind: 'rejected'; lo: string; hi: string; check: string; keys: string[]; sample: unknown[] }
  /** The write broke a constraint (a concurrent write, or a row the pre-flight could not foresee): rolled back. */
  | { kind: 'violation'; lo: string; hi: string; rows: number; error: DbError };

/** Runs one batch. Errors (lock timeouts, constraint violations, the ceiling's cancel) are thrown after the rollback. */
export async function runBatch(job: BatchJob, req: BatchRequest): Promise<BatchOutcome> {
  const { db, decision: d, options: o } = job;
  const own = !job.inTransaction;
  const t0 = performance.now();
  const timeout = req.timeout ?? (() => `${o.statementTimeoutMs}ms`);
  if (own) await db.query('BEGIN');
  let ended = false;
  const end = async (commit: boolean) => {
    ended = true;
    if (own) await db.query(commit ? 'COMMIT' : 'ROLLBACK');
  };
  try {
    // lock_timeout, not only statement_timeout: a slow batch is fine, a blocked one is not
    await db.query(SET_TIMEOUTS_SQL, [`${o.lockTimeoutMs}ms`, timeout()]);
    if (job.replicaRole) await db.query(REPLICA_ROLE_SQL);
    // belay's own writes are not fenced
    if (job.runId !== null) await db.query(WRITER_SQL, [String(job.runId)]);
    const bounded = req.upper !== undefined && req.upper !== null;
    const b = (
      await db.query<{ lo: string | null; hi: string | null; n: number }>(
        nextRangeSql(d, bounded),
        bounded ? [req.after, req.size, req.round, req.upper] : [req.after, req.size, req.round],
      )
    ).rows[0]!;
    if (b.n === 0 || b.lo === null || b.hi === null) {
      await end(false);
      return { kind: 'done' };
    }
    const { lo, hi } = b;
    const params = [lo, hi, req.round];
    const write = writeBatchSql(d, job.fence);
    let explain: unknown;
    if (req.explain) {
      const e = await db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) ${write}`, params);
      const v = Object.values(e.rows[0]!)[0];
      explain = typeof v === 'string' ? JSON.parse(v) : v;
    }
    let w: { rows: number; changed: number; skipped: number; sample: unknown[] };
    try {
      w = (await db.query<typeof w>(write, params)).rows[0]!;
    } catch (err) {
      // integrity constraint violations (class 23): the caller splits the batch down to the row that breaks it
      if (!(err instanceof DbError) || !err.server.sqlstate?.startsWith('23')) throw err;
      await end(false);
      return { kind: 'violation', lo, hi, rows: b.n, error: err };
    }
    for (const c of job.checks) {
      if (req.timeout) await db.query(SET_STATEMENT_TIMEOUT_SQL, [timeout()]);
      const v = await db.query<Record<string, unknown>>(batchCheckSql(d, c.sql), params);
      if (v.rows.length === 0) continue;
      await end(false);
      const sample = v.rows.slice(0, 10).map(({ belay_key: _, ...r }) => r);
      return { kind: 'rejected', lo, hi, check: c.name, keys: keysOf(v.rows, d.key), sample };
    }
    const ms = performance.now() - t0;
    const xid = (await db.query<{ xid: string }>(CURRENT_XID_SQL)).rows[0]!.xid;
    if (job.runId !== null && job.commit) {
      if (req.timeout) await db.query(SET_STATEMENT_TIMEOUT_SQL, [timeout()]);
      const batchNo = req.takeBatchNo?.() ?? req.batchNo;
      await db.query(CHECKPOINT_SQL, [job.runId, job.stepNo, batchNo, lo, hi, w.rows, w.changed, ms, req.attempt, req.round, xid, w.skipped]);
      if (req.worker !== undefined) await db.query(RANGE_CHECKPOINT_SQL, [job.runId, job.stepNo, req.round, req.worker, hi]);
    }
    await end(job.commit);
    return {
      kind: 'written',
      lo,
      hi,
      rows: w.rows,
      changed: w.changed,
      skipped: w.skipped,
      skippedSample: w.sample,
      ms,
      heldMs: performance.now() - t0,
      xid,
      explain,
    };
  } catch (err) {
    if (!ended && own) await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** The keys of the rows a check returned (its `key` column or the table's key column); [] when they carry none. */
function keysOf(rows: ReadonlyArray<Record<string, unknown>>, key: string): string[] {
  const out: string[] = [];
  for (const r of rows) {
    const k = r.belay_key ?? r[key] ?? r.key;
    if (k === undefined || k === null) return [];
    out.push(String(k));
  }
  return out;
}

/** Leaves decided rows out of the step, with the reason (committed on its own, outside any batch). */
export async function reject(job: BatchJob, keys: readonly string[], reason: string): Promise<void> {
  if (job.inTransaction) return;
  await job.db.query('BEGIN');
  try {
    await job.db.query(rejectSql(job.decision), [keys, reason]);
    await job.db.query('COMMIT');
  } catch (err) {
    await job.db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
