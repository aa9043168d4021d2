// One batch of a step run exactly as apply runs it (same SQL, undo log, in-batch verification), inside a
// transaction that is always ROLLED BACK. Calibration and the dry run are made of these: nothing they do
// survives, and they never hold more locks than one batch.
import type { Db } from '../db/connection.ts';
import { applyBatchSql, boundsSql, SET_TIMEOUTS_SQL, verifyBatchSql } from './batch-sql.ts';
import { DbError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { INSERT_TRIAL_RUN_SQL, TRIAL_DIGEST_SQL, TRIAL_RUN_ID } from './trial-sql.ts';
import { type StepTarget, resolveStep } from '../spec/resolve.ts';

export interface TrialOptions {
  /** Keyset position: the batch starts after this key (null = the first key). */
  after: string | null;
  size: number;
  /** Before → after pairs to keep from the undo log (0 = none). */
  sampleRows?: number;
  /** Also EXPLAIN (FORMAT JSON) the batch's statement (no ANALYZE: it is not run twice). */
  explain?: boolean;
  /** Extra in-batch guards, as apply's controller lends them (pre-flight checks that protect writes). */
  guards?: (target: StepTarget) => ReadonlyArray<{ name: string; sql: string }>;
}

export interface TrialBatch {
  lo: string;
  hi: string;
  rows: number;
  changed: number;
  /** From the bounds query to the end of the in-batch verification (the batch's work, without COMMIT). */
  ms: number;
  verifyFailures: Array<{ name: string; count: number; sample: unknown[] }>;
  sample: Array<{ key: unknown; before: Record<string, unknown>; after: Record<string, unknown> }>;
  explain?: unknown;
  target: StepTarget;
  /** Count and hash sum of the after-images written (compared with wholeTableProjection by the dry run). */
  digest: { rows: number; sum: string };
}

/**
 * Runs the batch of step `stepNo` that starts after `opts.after`, then rolls it back. Plain-SQL steps
 * declared before the step run first inside the same transaction (a column they add exists); the
 * effects of earlier batched steps are not seen. Returns null when no key is left.
 */
export async function trialBatch(db: Db, m: LoadedMigration, stepNo: number, opts: TrialOptions): Promise<TrialBatch | null> {
  const step = m.spec.steps[stepNo] as BatchedStep;
  const o = m.spec.options;
  await db.query('BEGIN');
  try {
    for (const prior of m.spec.steps.slice(0, stepNo)) {
      if (prior.kind !== 'sql') continue;
      try {
        await db.exec(prior.up);
      } catch (err) {
        throw err instanceof DbError ? new DbError(err.message, err.server, { context: `step "${prior.name}" (run before "${step.name}")`, cause: err }) : err;
      }
    }
    // a scratch run record: the undo log's foreign keys need one; it is rolled back with the batch
    await db.query(INSERT_TRIAL_RUN_SQL, [m.spec.id, m.checksum, JSON.stringify(m.spec), m.spec.steps.map((s) => s.name), m.spec.steps.map((s) => s.kind)]);
    const runId = TRIAL_RUN_ID;
    const t = await resolveStep(db, step, stepNo);
    const t0 = performance.now();
    await db.query(SET_TIMEOUTS_SQL, [`${o.lockTimeoutMs}ms`, `${o.statementTimeoutMs}ms`]);
    const first = opts.after === null;
    const b = await db.query<{ lo: string | null; hi: string | null; n: number }>(boundsSql(t, first), [opts.after, opts.size]);
    const { lo, hi, n } = b.rows[0]!;
    if (n === 0 || lo === null || hi === null) return null;
    const sql = applyBatchSql(t, step.projection);
    const params = [lo, hi, runId, stepNo, 1];
    let explain: unknown;
    if (opts.explain) {
      const e = await db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) ${sql}`, params);
      const v = Object.values(e.rows[0]!)[0];
      explain = typeof v === 'string' ? JSON.parse(v) : v;
    }
    const r = await db.query<{ changed: number }>(sql, params);
    const verifyFailures: TrialBatch['verifyFailures'] = [];
    const checks = [...(step.verify ? [{ name: `${step.name}.verify`, sql: step.verify }] : []), ...(opts.guards?.(t) ?? [])];
    for (const c of checks) {
      const v = await db.query(verifyBatchSql(t, c.sql), params);
      if (v.rows.length > 0) verifyFailures.push({ name: c.name, count: v.rows.length, sample: v.rows.slice(0, 10) });
    }
    const ms = performance.now() - t0;
    let sample: TrialBatch['sample'] = [];
    if (opts.sampleRows) {
      const u = await db.query<{ before: Record<string, unknown>[] | null; after: Record<string, unknown>[] | null }>(
        `SELECT before, after FROM belay.undo WHERE run_id = $1 AND step_no = $2 AND batch_no = 1`, [runId, stepNo],
      );
      const before = u.rows[0]?.before ?? [];
      const after = new Map((u.rows[0]?.after ?? []).map((a) => [String(a[t.key]), a]));
      sample = before.slice(0, opts.sampleRows).map((bf) => ({ key: bf[t.key], before: bf, after: after.get(String(bf[t.key])) ?? {} }));
    }
    const digest = (await db.query<{ rows: number; sum: string }>(TRIAL_DIGEST_SQL, [runId, stepNo])).rows[0]!;
    return { lo, hi, rows: n, changed: Number(r.rows[0]!.changed), ms, verifyFailures, sample, explain, target: t, digest };
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}

/** The cost of one COMMIT that writes (WAL flush): added once per batch to estimates. Median of 3. */
export async function commitCostMs(db: Db): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await db.query('BEGIN');
    await db.query('SELECT txid_current()');
    await db.query('COMMIT');
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1]!;
}
