// Trials: a step's batches run exactly as apply runs them (execute/batch.ts), each in a transaction that is
// always rolled back. The dry run and calibration are made of these: nothing they do survives, and they
// never hold more locks than one batch. The step's decision is made once for the trial, as a temporary
// table of the session; a step that follows plain-SQL steps (a column they add) is decided per batch,
// inside the batch's transaction, after those steps ran in it.
import type { Db } from '../db/connection.ts';
import { DbError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { resolveStep, type StepTarget } from '../spec/resolve.ts';
import { type Decision, explainDecision, makeDecision } from '../state/decision.ts';
import { isComposite } from '../db/key-sql.ts';
import { decisionKeyAtSql, decisionSampleSql, dropDecisionSql } from '../state/decision-sql.ts';
import { tableKeyAtSql } from './batch-sql.ts';
import { type BatchJob, type BatchOutcome, reject, runBatch } from './batch.ts';
import { replicaRoleGuards } from './user-triggers.ts';

export interface TrialOptions {
  /** Extra in-batch guards, as apply's controller lends them (pre-flight checks that protect writes). */
  guards?: (target: StepTarget) => ReadonlyArray<{ name: string; sql: string }>;
}

export interface TrialBatch {
  lo: string;
  hi: string;
  /** Decided rows in the range. */
  rows: number;
  changed: number;
  /** From BEGIN to the end of the in-batch checks (the batch's work, without COMMIT). */
  ms: number;
  /** In-batch checks that returned rows: those rows were left out and the batch run again. */
  verifyFailures: Array<{ name: string; count: number; sample: unknown[] }>;
  explain?: unknown;
  target: StepTarget;
}

export interface Trial {
  /** The step's decision (undefined when it is decided per batch, after earlier plain-SQL steps). */
  readonly decision: Decision | undefined;
  /** EXPLAIN of making the decision (the rule, or its first chunk), when it was made once. */
  readonly ruleExplain?: unknown;
  /** Runs the batch after `after` and rolls it back; null when no decided key is left. */
  batch(q: { after: string | null; size: number; explain?: boolean }): Promise<TrialBatch | null>;
  /** The decided key `offset` rows in (null past the end), to start a walk there; without a decision, the table's. */
  keyAt(offset: number): Promise<string | null>;
  /** Before → after of the first decided rows. */
  sample(limit: number): Promise<Array<{ key: unknown; before: Record<string, unknown>; after: Record<string, unknown> }>>;
  close(): Promise<void>;
}

/** Opens the trial of step `stepNo`: its decision made once (a temporary table), unless plain-SQL steps precede it. */
export async function openTrial(db: Db, m: LoadedMigration, stepNo: number, opts: TrialOptions = {}): Promise<Trial> {
  const step = m.spec.steps[stepNo] as BatchedStep;
  const priorSql = m.spec.steps.slice(0, stepNo).filter((s) => s.kind === 'sql');
  const runPrior = async () => {
    for (const prior of priorSql) {
      try {
        await db.exec(prior.up);
      } catch (err) {
        throw err instanceof DbError ? new DbError(err.message, err.server, { context: `step "${prior.name}" (run before "${step.name}")`, cause: err }) : err;
      }
    }
  };
  let decision: Decision | undefined;
  let ruleExplain: unknown;
  let target: StepTarget | undefined;
  if (priorSql.length === 0) {
    await db.query('BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    try {
      target = await resolveStep(db, step, stepNo);
      ruleExplain = await explainDecision(db, step, stepNo, target).catch(() => undefined);
      decision = await makeDecision(db, step, stepNo, target, { runId: null });
      await db.query('COMMIT');
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  }
  const jobOf = async (d: Decision, inTransaction: boolean): Promise<BatchJob> => ({
    db,
    runId: null,
    stepNo,
    decision: d,
    options: m.spec.options,
    commit: false,
    inTransaction,
    replicaRole: !!step.disableUserTriggers,
    checks: [
      ...(step.verify ? [{ name: `${step.name}.verify`, sql: step.verify }] : []),
      ...(opts.guards?.(d) ?? []),
      ...(await replicaRoleGuards(db, step, d)),
    ],
  });
  const failures = new Map<string, { name: string; count: number; sample: unknown[] }>();
  return {
    decision,
    ruleExplain,
    async keyAt(offset) {
      target ??= await resolveStep(db, step, stepNo);
      const sql = decision ? decisionKeyAtSql(decision.relation) : tableKeyAtSql(target.table, target);
      return (await db.query<{ k: string }>(sql, [offset])).rows[0]?.k ?? null;
    },
    async batch(q) {
      const verifyFailures: TrialBatch['verifyFailures'] = [];
      // a constraint violation halves the batch down to the row that breaks it, as apply does
      let size = q.size;
      for (;;) {
        let outcome: BatchOutcome;
        if (decision) {
          outcome = await runBatch(await jobOf(decision, false), { round: 0, after: q.after, size, batchNo: 1, attempt: 1, explain: q.explain });
        } else {
          // after plain-SQL steps: they run in the batch's transaction, then the decision is made in it too
          await db.query('BEGIN');
          try {
            await runPrior();
            target ??= await resolveStep(db, step, stepNo);
            const d = await makeDecision(db, step, stepNo, target, { runId: null });
            outcome = await runBatch(await jobOf(d, true), { round: 0, after: q.after, size, batchNo: 1, attempt: 1, explain: q.explain });
          } finally {
            await db.query('ROLLBACK').catch(() => undefined);
          }
        }
        if (outcome.kind === 'done') return null;
        if (outcome.kind === 'written') {
          return {
            lo: outcome.lo,
            hi: outcome.hi,
            rows: outcome.rows,
            changed: outcome.changed,
            ms: outcome.ms,
            verifyFailures,
            explain: outcome.explain,
            target: target ?? decision!,
          };
        }
        if (outcome.kind === 'violation') {
          if (!decision) throw outcome.error;
          if (outcome.rows > 1) {
            size = Math.max(1, Math.floor(Math.min(size, outcome.rows) / 2));
            continue;
          }
          const check = `constraint ${outcome.error.server.constraint ?? outcome.error.server.sqlstate}`;
          verifyFailures.push({ name: check, count: 1, sample: [{ key: outcome.lo, error: outcome.error.message, detail: outcome.error.server.detail }] });
          await reject(await jobOf(decision, false), [outcome.lo], `rejected:${check}`);
          size = q.size;
          continue;
        }
        // an in-batch check returned rows: as apply does, they are left out and the batch runs again
        verifyFailures.push({ name: outcome.check, count: outcome.keys.length || outcome.sample.length, sample: outcome.sample });
        const f = failures.get(outcome.check) ?? { name: outcome.check, count: 0, sample: [] };
        f.count += outcome.keys.length;
        failures.set(outcome.check, f);
        if (outcome.keys.length === 0 || !decision) {
          return { lo: outcome.lo, hi: outcome.hi, rows: 0, changed: 0, ms: 0, verifyFailures, target: target ?? decision! };
        }
        await reject(await jobOf(decision, false), outcome.keys, `rejected:${outcome.check}`);
      }
    },
    async sample(limit) {
      if (!decision || limit <= 0) return [];
      const r = await db.query<{ key: unknown; before: Record<string, unknown>; after: Record<string, unknown> }>(decisionSampleSql(decision, limit));
      return r.rows;
    },
    async close() {
      if (decision)
        for (const sql of dropDecisionSql(decision.relation, isComposite(decision) ? decision.keyType : undefined)) await db.query(sql).catch(() => undefined);
    },
  };
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
