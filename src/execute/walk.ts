// One walker over a round of a step's decision: keyset batches from its last key to the end of its range,
// each through execute/batch.ts (one transaction with its checkpoint), sized, capped by the ceiling and
// steered by the run's controllers. A single-worker run has one walker on the run's connection; with
// --workers N (execute/workers.ts) N walkers share one tally, each on its own connection and key range.
import type { Db } from '../db/connection.ts';
import { withRetry } from '../db/retry.ts';
import { AbortedError, serverFields, VerificationError } from '../errors.ts';
import type { BatchedStep, Migration } from '../spec/define.ts';
import type { StepTarget } from '../spec/resolve.ts';
import { changedSinceDecision } from '../state/decision.ts';
import { tell } from '../state/events.ts';
import { RANGE_DONE_SQL } from '../state/runs.ts';
import type { BatchController, BatchRecord, RunContext } from '../contract.ts';
import { type BatchJob, reject, runBatch } from './batch.ts';

/**
 * Halvings of one batch after it ran past the ceiling before it runs once without it: from 10,000 rows,
 * 6 halvings reach 156. A batch that still runs past the ceiling then lifts it for its walker, for
 * CEILING_LIFT_MS.
 */
export const MAX_CEILING_SPLITS = 6;
/**
 * How long a lifted ceiling stays off. Not for good: what made the smallest batch slow may pass (a lock
 * held for a while by another session). If it does not (a scan per batch), coming back costs
 * MAX_CEILING_SPLITS cancelled attempts every two minutes, about 1 % of the run at a 200 ms target.
 */
export const CEILING_LIFT_MS = 120_000;

/** What every walker of one step shares. */
export interface StepRun {
  ctx: RunContext;
  step: BatchedStep;
  stepNo: number;
  target: StepTarget;
  ctl: BatchController;
  options: Migration['options'];
  /** --single: inside the run's one transaction (no ceiling, no retries, a rejection fails the run). */
  inTx: boolean;
  maxRejected: number;
  round: number;
  /** batchNo: the highest batch number taken so far (numbers run on across rounds and workers). */
  tally: { batchNo: number; rowsDone: number; changed: number; skipped: number; rejected: number; total: number };
  /** Runs afterBatch: one at a time when several walkers share the run's connection and the controllers' tallies. */
  serial: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Set by the first walker that fails: the others stop after the batch they are in. */
  stop: { error?: unknown };
  /** Rejected keys not yet tested against the rule evaluated again (retestRejected), shared by the walkers. */
  untested: string[];
}

/**
 * Rows for which the rule itself, evaluated now, no longer gives the decided value were changed since the
 * decision (a link edited, a slug renamed by the application): they become skipped as changed, not rejected,
 * a catch-up round may decide them again, and only the rest count against maxRejected.
 */
export async function retestRejected(s: StepRun, job: BatchJob, batchNo: number): Promise<void> {
  const keys = s.untested.splice(0);
  const changed = await changedSinceDecision(job.db, s.step, s.stepNo, job.decision, keys);
  s.tally.rejected -= changed.length;
  s.tally.skipped += changed.length;
  if (changed.length)
    await tell(job.db, s.ctx.emit, { type: 'rows-skipped', runId: s.ctx.runId, step: s.step.name, batchNo, count: changed.length, keys: changed.slice(0, 20) });
}

/** One walker's own state: its connection (in job.db), where it is, its range's top, its size and ceiling. */
export interface Walker {
  job: BatchJob;
  last: string | null;
  /** The last key of its range (null: the round's last). */
  upper: string | null;
  /** Its number in the round's stored split (undefined: the single walker, checkpointed in steps.last_key). */
  worker?: number;
  size: number;
  splits: number;
  liftedUntil: number;
  /** The batch number its next commit uses: taken at its first checkpoint, kept until one commits. */
  pending?: number;
  /** Its size before a constraint violation split it down to the offending row. */
  sizeBeforeSplit?: number;
}

export function walker(job: BatchJob, at: { last: string | null; upper?: string | null; worker?: number; size: number }): Walker {
  return { job, last: at.last, upper: at.upper ?? null, worker: at.worker, size: at.size, splits: 0, liftedUntil: -Infinity };
}

/** Walks the round until no decided key is left in the walker's range (or the run stops). */
export async function walk(s: StepRun, w: Walker): Promise<void> {
  const { ctx, step, stepNo, ctl, inTx, tally } = s;
  const { runId, emit } = ctx;
  const db: Db = w.job.db;
  const o = s.options;
  // the number a batch is shown under before it commits
  const label = () => w.pending ?? tally.batchNo + 1;
  // the ceiling needs statement_timeout (PGlite never fires it) and a transaction per batch (in single
  // mode a cancel would undo the whole run); it is lifted for the walker when one row cannot meet it
  const ceilingNow = () => (db.kind === 'postgres' && !inTx ? ctl.batchCeilingMs : undefined);
  /** Leaves rows out of the step; past maxRejected it is no longer traffic but the rule or the data. */
  const rejectRows = async (keys: string[], reason: string, sample: unknown[]) => {
    tally.rejected += keys.length;
    s.untested.push(...keys);
    await tell(db, emit, {
      type: 'rows-rejected',
      runId,
      step: step.name,
      batchNo: label(),
      reason,
      count: keys.length,
      keys: keys.slice(0, 20),
      sample: sample.slice(0, 5),
    });
    // before stopping: rows the application made the check or a constraint reject are not the rule's doing
    if (!inTx && tally.rejected > s.maxRejected) await retestRejected(s, w.job, label());
    if (inTx || tally.rejected > s.maxRejected) {
      throw new VerificationError(
        `step "${step.name}": ${reason} returned ${keys.length} row(s) in batch ${label()}${inTx ? '' : ` (${tally.rejected} rejected in all, more than the ${s.maxRejected} allowed)`}; the batch was rolled back`,
        {
          step: step.name,
          check: reason,
          batchNo: label(),
          sample: sample.slice(0, 10),
          rejected: tally.rejected,
          maxRejected: s.maxRejected,
          fix: 'Read the sample rows: when the rule or the data is wrong, fix it and resume (belay apply); raise options.maxRejected only when these rows are expected.',
        },
      );
    }
    await reject(w.job, keys, reason);
  };
  for (;;) {
    if (s.stop.error !== undefined) return;
    // PGlite answers without I/O: a turn of the event loop lets a signal's handler run between its batches
    if (ctx.signal) await new Promise((r) => setImmediate(r));
    if (ctx.signal?.aborted) throw interrupted(ctx, `before batch ${label()} of step "${step.name}"`);
    // the throttle asks on this walker's own connection: workers wait for a condition each on its own
    await ctl.beforeBatch?.(db === ctx.db ? ctx : { ...ctx, db }, step);
    if (s.stop.error !== undefined) return;
    // a throttle or a belay pause ends its wait early on the signal
    if (ctx.signal?.aborted) throw interrupted(ctx, `before batch ${label()} of step "${step.name}"`);
    let attemptStart = 0;
    const ceiling = ceilingNow();
    const thisCeiling = w.splits < MAX_CEILING_SPLITS && performance.now() >= w.liftedUntil ? ceiling : undefined;
    // each statement gets what is left of the ceiling; the user's statement_timeout still bounds it
    const timeout =
      thisCeiling === undefined
        ? undefined
        : () => `${Math.min(o.statementTimeoutMs, Math.max(1, Math.floor(thisCeiling - (performance.now() - attemptStart))))}ms`;
    const outcome = await withRetry(
      (attempt) => {
        attemptStart = performance.now();
        return runBatch(w.job, {
          round: s.round,
          after: w.last,
          upper: w.upper,
          worker: w.worker,
          size: w.size,
          batchNo: label(),
          takeBatchNo: () => (w.pending ??= ++tally.batchNo),
          attempt,
          timeout,
        });
      },
      {
        maxRetries: inTx ? 0 : o.maxRetries,
        onRetry: (attempt, sqlstate, waitMs) => emit({ type: 'batch-retry', runId, step: step.name, batchNo: label(), attempt, sqlstate, waitMs }),
      },
    ).catch((err: unknown) => {
      // the ceiling's cancel, not the user's statement_timeout (1 ms of slack: the timeouts are whole ms)
      if (thisCeiling === undefined || serverFields(err).sqlstate !== '57014' || performance.now() - attemptStart < thisCeiling - 1) throw err;
      return 'over-ceiling' as const;
    });
    if (outcome === 'over-ceiling') {
      // rolled back whole (elapsed includes the ROLLBACK: the locks are held until it ends); the same keys
      // are tried again under the same batch number, at half the size or what the sizer learnt, if smaller
      const over = { stepNo, step: step.name, batchNo: label(), rows: w.size, elapsedMs: performance.now() - attemptStart, ceilingMs: thisCeiling! };
      // biome-ignore format: a record read as one row
      const sample: BatchRecord = {
        runId, stepNo, step: step.name, batchNo: over.batchNo, round: s.round, lo: '', hi: '', rowsInRange: over.rows, rowsChanged: 0, rowsSkipped: 0,
        xid: '', durationMs: over.elapsedMs, heldMs: over.elapsedMs, attempts: 1, batchSize: w.size, worker: w.worker,
      };
      const next = Math.max(1, Math.min(Math.floor(w.size / 2), Math.round(ctl.nextBatchSize?.(w.size, sample) ?? w.size)));
      w.splits = next === w.size ? MAX_CEILING_SPLITS : w.splits + 1;
      w.size = next;
      await tell(db, emit, { type: 'batch-over-ceiling', runId, ...over, nextSize: w.size });
      continue;
    }
    if (outcome.kind === 'done') {
      if (w.worker !== undefined) await db.query(RANGE_DONE_SQL, [runId, stepNo, s.round, w.worker]);
      return;
    }
    if (outcome.kind === 'rejected') {
      if (outcome.keys.length === 0) {
        emit({
          type: 'verification-failed',
          runId,
          step: step.name,
          batchNo: label(),
          name: outcome.check,
          count: outcome.sample.length,
          sample: outcome.sample,
        });
        throw new VerificationError(
          `step "${step.name}": in-batch check ${outcome.check} returned rows without the key in batch ${label()} [${outcome.lo}, ${outcome.hi}]; the batch was rolled back`,
          {
            step: step.name,
            check: outcome.check,
            batchNo: label(),
            lo: outcome.lo,
            hi: outcome.hi,
            sample: outcome.sample,
            fix: `Return the key column (${s.target.key}) from the check, so that belay can leave the offending rows out instead of stopping.`,
          },
        );
      }
      await rejectRows(outcome.keys, `rejected:${outcome.check}`, outcome.sample);
      continue;
    }
    if (outcome.kind === 'violation') {
      // split down to the one row that breaks the constraint, which is then left out and reported
      const reason = `rejected:constraint ${outcome.error.server.constraint ?? outcome.error.server.sqlstate}`;
      if (outcome.rows > 1 && !inTx) {
        w.sizeBeforeSplit ??= w.size;
        w.size = Math.max(1, Math.floor(Math.min(w.size, outcome.rows) / 2));
        continue;
      }
      if (inTx) throw outcome.error;
      await rejectRows([outcome.lo], reason, [{ key: outcome.lo, error: outcome.error.message, detail: outcome.error.server.detail }]);
      // the row is out: the batches go on at the size they had (a fixed size has no sizer to grow it back)
      if (w.sizeBeforeSplit !== undefined) w.size = w.sizeBeforeSplit;
      w.sizeBeforeSplit = undefined;
      continue;
    }
    const batchNo = w.pending ?? label();
    w.pending = undefined;
    if (w.splits >= MAX_CEILING_SPLITS && ceiling !== undefined && outcome.ms > ceiling) {
      // even after MAX_CEILING_SPLITS halvings the batch ran past the ceiling: its cost does not shrink with
      // its size (a scan per batch, a lock wait), so cancelling would only repeat it for a while
      w.liftedUntil = performance.now() + CEILING_LIFT_MS;
      // biome-ignore format: a record read as one row
      await tell(db, emit, {
        type: 'batch-ceiling-lifted', runId, stepNo, step: step.name, batchNo, rows: outcome.rows, durationMs: outcome.ms, ceilingMs: ceiling, forMs: CEILING_LIFT_MS,
      });
    }
    w.splits = 0;
    w.last = outcome.hi;
    tally.rowsDone += outcome.rows;
    tally.changed += outcome.changed;
    tally.skipped += outcome.skipped;
    // biome-ignore format: a record read as one row
    emit({
      type: 'batch-committed', runId, stepNo, step: step.name, batchNo, round: s.round, lo: outcome.lo, hi: outcome.hi, rowsInRange: outcome.rows,
      rowsChanged: outcome.changed, rowsSkipped: outcome.skipped, durationMs: outcome.ms, heldMs: outcome.heldMs, attempts: 1,
      rowsDone: tally.rowsDone, rowsTotal: tally.total, ...(w.worker === undefined ? {} : { worker: w.worker }),
    });
    if (outcome.skipped > 0) {
      await tell(db, emit, { type: 'rows-skipped', runId, step: step.name, batchNo, count: outcome.skipped, keys: outcome.skippedSample.map(String) });
    }
    // biome-ignore format: a record read as one row
    const info: BatchRecord = {
      runId, stepNo, step: step.name, batchNo, round: s.round, lo: outcome.lo, hi: outcome.hi, rowsInRange: outcome.rows, rowsChanged: outcome.changed,
      rowsSkipped: outcome.skipped, xid: outcome.xid, durationMs: outcome.ms, heldMs: outcome.heldMs, attempts: 1, batchSize: w.size, worker: w.worker,
    };
    if (ctl.nextBatchSize) w.size = Math.max(1, Math.round(ctl.nextBatchSize(w.size, info)));
    const next = (await s.serial(async () => ctl.afterBatch?.(ctx, info))) ?? 'continue';
    if (next === 'continue' && ctx.signal?.aborted) throw interrupted(ctx, `after batch ${batchNo} of step "${step.name}" committed`);
    if (next !== 'continue') {
      throw new AbortedError(`run ${runId} stopped after batch ${batchNo} of step "${step.name}" (${next})`, { decision: next, batchNo, step: step.name });
    }
  }
}

/** The process was asked to stop (signal.reason: the signal's name): the run pauses where it is, resumable. */
export function interrupted(ctx: RunContext, where: string): AbortedError {
  const by = typeof ctx.signal?.reason === 'string' ? ctx.signal.reason : 'a signal';
  return new AbortedError(`run ${ctx.runId} stopped by ${by} ${where}; it is paused`, { decision: 'pause', signal: by }, { code: 'BELAY_INTERRUPTED' });
}
