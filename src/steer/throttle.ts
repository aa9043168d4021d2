// Steering a planned run: the batch size keeps batches under the target duration (batch-sizer.ts), and the run pauses between
// batches while the database is under strain (lock waiters on the table, an old transaction, replica lag).
import { qualified } from '../db/sql.ts';
import { AbortedError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import { tell } from '../state/events.ts';
import { BatchSizer } from './batch-sizer.ts';
import { LOCK_WAITERS_SQL, OLD_TRANSACTIONS_SQL, REPLICATION_LAG_SQL } from './steer-sql.ts';
import type { BatchController, BatchRecord, RunContext, Stage } from '../contract.ts';

export interface ThrottleOptions {
  /** Pause while more than this many sessions wait for a lock on the step's table (null = off). */
  maxLockWaiters: number | null;
  /** Pause while another transaction in this database is older than this, in ms (null = off). */
  maxTransactionAgeMs: number | null;
  /** Pause while a replica's replay lag exceeds this, in ms (null = off; no replicas = never). */
  maxReplicationLagMs: number | null;
  /** How often a held condition is looked at again. */
  pollMs: number;
  /** A condition that holds longer than this pauses the run (resumable with belay apply). */
  maxWaitMs: number;
}

export const DEFAULT_THROTTLE: Readonly<ThrottleOptions> = Object.freeze({
  maxLockWaiters: 0,
  maxTransactionAgeMs: 5 * 60_000,
  maxReplicationLagMs: 10_000,
  pollMs: 1_000,
  maxWaitMs: 15 * 60_000,
});

/** What holds now, one sentence each; empty = go. Always empty on PGlite (one session, no replicas). */
export async function throttleReasons(ctx: Pick<RunContext, 'db'>, table: string, o: ThrottleOptions): Promise<string[]> {
  const { db } = ctx;
  if (db.kind !== 'postgres') return [];
  const out: string[] = [];
  if (o.maxLockWaiters !== null) {
    const n = (await db.query<{ n: number }>(LOCK_WAITERS_SQL, [qualified(table)])).rows[0]!.n;
    if (n > o.maxLockWaiters) out.push(`${n} session(s) wait for a lock on ${qualified(table)}`);
  }
  if (o.maxTransactionAgeMs !== null) {
    const r = (await db.query<{ n: number; oldestMs: number }>(OLD_TRANSACTIONS_SQL, [o.maxTransactionAgeMs])).rows[0]!;
    if (r.n > 0) out.push(`${r.n} transaction(s) older than ${o.maxTransactionAgeMs} ms (oldest ${Math.round(r.oldestMs)} ms)`);
  }
  if (o.maxReplicationLagMs !== null) {
    const r = (await db.query<{ replicas: number; lagMs: number | null }>(REPLICATION_LAG_SQL)).rows[0]!;
    if (r.replicas > 0 && r.lagMs !== null && r.lagMs > o.maxReplicationLagMs)
      out.push(`replica replay lag ${Math.round(r.lagMs)} ms > ${o.maxReplicationLagMs} ms`);
  }
  return out;
}

/** What the throttle checks cost before each batch (default conditions), median of 3, in ms; 0 on PGlite. */
export async function throttleCostMs(ctx: Pick<RunContext, 'db'>, table: string): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await throttleReasons(ctx, table, DEFAULT_THROTTLE);
    times.push(performance.now() - t0);
  }
  return times.sort((a, b) => a - b)[1]!;
}

/**
 * A BatchController that keeps batches under targetMs (a BatchSizer per step: steps differ in cost per
 * row; on a server a batch still running at targetMs is cancelled and split) and waits while a throttle
 * condition holds.
 */
/** The steer stage: batches sized under the target duration, the run paused while the database is under strain. */
export function steerStage(opts: SteerOptions): Stage {
  return { name: 'steer', batches: planController(opts) };
}

export interface SteerOptions {
  targetMs: number;
  throttle?: Partial<ThrottleOptions>;
  /** false: keep the size fixed (the user's --batch-size): neither adapted nor split. */
  adapt?: boolean;
  /** Settings another stage may change while the run goes on (belay tune); read before every batch. */
  live?: SteerSettings;
}

/** What `belay tune` changes in a running apply: the batch target and the throttle's limits. */
export interface SteerSettings {
  targetMs: number;
  throttle: ThrottleOptions;
}

/** The steer settings a run starts with: undefined means 'the default' (a flag not given), null means 'off'. */
export function steerSettings(targetMs: number, throttle: Partial<ThrottleOptions> = {}): SteerSettings {
  const given = Object.fromEntries(Object.entries(throttle).filter(([, v]) => v !== undefined));
  return { targetMs, throttle: { ...DEFAULT_THROTTLE, ...given } };
}

export function planController(opts: SteerOptions): BatchController {
  const live = opts.live ?? steerSettings(opts.targetMs, opts.throttle);
  // one per step and worker: workers contend with one another, and one sizer fed by all of them took each
  // one's noise for its own surprise (more, smaller batches)
  const sizers = new Map<string, BatchSizer>();
  const sizerOf = (stepNo: number, worker = 0) => {
    const id = `${stepNo}:${worker}`;
    const s = sizers.get(id) ?? sizers.set(id, new BatchSizer(live.targetMs)).get(id)!;
    s.targetMs = live.targetMs;
    return s;
  };
  const controller: BatchController = {
    async beforeBatch(ctx: RunContext, step: BatchedStep) {
      const t0 = performance.now();
      let announced = false;
      for (;;) {
        const o = live.throttle;
        const reasons = await throttleReasons(ctx, step.table, o);
        // nothing more to wait for when the process is stopping: the apply pauses the run
        if (reasons.length === 0 || ctx.signal?.aborted) break;
        const waited = performance.now() - t0;
        if (!announced) {
          // recorded too: belay watch shows the throttle state from another process
          await tell(ctx.db, ctx.emit, { type: 'throttled', runId: ctx.runId, step: step.name, reasons });
          announced = true;
        }
        if (waited > o.maxWaitMs) {
          throw new AbortedError(`run ${ctx.runId} paused: the throttle held for more than ${o.maxWaitMs} ms (${reasons.join('; ')})`, {
            decision: 'pause',
            reasons,
          });
        }
        await new Promise((r) => setTimeout(r, o.pollMs));
      }
      if (announced) await tell(ctx.db, ctx.emit, { type: 'throttle-released', runId: ctx.runId, step: step.name, waitedMs: performance.now() - t0 });
    },
  };
  // the sizer keeps batches under the target, the ceiling catches the surprises it could not foresee;
  // a fixed size (the user's --batch-size) is neither adapted nor split
  if (opts.adapt === false) return controller;
  // sized for the time the batch holds its locks: BEGIN until its COMMIT returned
  controller.nextBatchSize = (current: number, last: BatchRecord) =>
    sizerOf(last.stepNo, last.worker).next(current, { rowsInRange: last.rowsInRange, durationMs: last.heldMs });
  // a getter: the ceiling follows the target when it is tuned
  Object.defineProperty(controller, 'batchCeilingMs', { get: () => live.targetMs, enumerable: true });
  return controller;
}
