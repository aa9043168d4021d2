// What planning adds to apply: the plan must still match the database, its batch size and mode are
// used, the batch size adapts to the target duration, throttle conditions pause the run, temporary
// indexes exist while it writes, a protected environment takes only a rehearsed and dry-run version,
// and the apply is recorded in the ledger.
import type { Db } from '../db/connection.ts';
import { apply, type ApplyOptions, type ApplyResult } from '../execute/apply.ts';
import { composeHooks } from './compose-hooks.ts';
import { composeControllers } from './compose.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { unmeasuredStartSize } from '../steer/batch-sizer.ts';
import { DEFAULT_TARGET_BATCH_MS } from '../plan/calibrate.ts';
import { assertApplyAllowed, type Ledger, recordLedger } from '../config/environments.ts';
import { assertPlanCurrent, type Plan } from '../plan/plan.ts';
import { createTempIndexes, dropTempIndexes } from '../cleanup/temp-indexes.ts';
import { planController, type ThrottleOptions } from '../steer/throttle.ts';

export interface PlannedApplyOptions {
  /** A plan made by belay plan / dry-run -o: refused when stale; its batch size and mode are used. */
  plan?: Plan;
  /** Row-count drift allowed since the plan, as a fraction (default 0.1). */
  maxDrift?: number;
  /** Batch duration the size adapts to (default: the plan's, else 200 ms); adapt: false keeps the size fixed. */
  targetBatchMs?: number;
  adapt?: boolean;
  throttle?: Partial<ThrottleOptions>;
  /** Where the apply is recorded, and whether its environment is protected. */
  ledger?: Ledger;
  /** The reason for applying on a protected environment without rehearsal and dry run (recorded). */
  override?: string;
  tempIndexTimeoutMs?: number;
}

/** Temporary indexes as write hooks: built before the first write, dropped after the last step. */
export function tempIndexHooks(m: LoadedMigration, opts: { timeoutMs?: number } = {}): Pick<ApplyOptions, 'beforeWrite' | 'afterWrite'> {
  if (m.spec.tempIndexes.length === 0) return {};
  return {
    beforeWrite: async (ctx) => {
      const made = await createTempIndexes(ctx.db, m.spec.tempIndexes, { timeoutMs: opts.timeoutMs });
      for (const ix of made) ctx.emit({ type: 'log', level: 'info', runId: ctx.runId, message: `temporary index ${ix.name} ${ix.status} (${Math.round(ix.durationMs)} ms)` });
    },
    afterWrite: async (ctx) => {
      const dropped = await dropTempIndexes(ctx.db, m.spec.tempIndexes);
      if (dropped.length > 0) ctx.emit({ type: 'log', level: 'info', runId: ctx.runId, message: `temporary indexes dropped: ${dropped.join(', ')}` });
    },
  };
}

export async function applyPlanned(db: Db, m: LoadedMigration, options: ApplyOptions, opts: PlannedApplyOptions = {}): Promise<ApplyResult> {
  const { plan } = opts;
  if (opts.ledger) assertApplyAllowed(opts.ledger, m.spec.id, m.checksum, opts.override);
  if (plan) await assertPlanCurrent(db, m, plan, { maxDrift: opts.maxDrift });
  const targetMs = opts.targetBatchMs ?? plan?.targetBatchMs ?? DEFAULT_TARGET_BATCH_MS;
  // an explicit batch size is the user's choice: keep it fixed
  const adapt = opts.adapt ?? options.batchSize === undefined;
  const hooks = composeHooks({ beforeWrite: options.beforeWrite, afterWrite: options.afterWrite }, tempIndexHooks(m, { timeoutMs: opts.tempIndexTimeoutMs }));
  let result: ApplyResult;
  try {
    result = await apply(db, m, {
      ...options,
      ...hooks,
      // no plan: start small, the sizer grows the size to the target within a few batches
      batchSize: options.batchSize ?? plan?.batchSize
        ?? (adapt ? unmeasuredStartSize(m.spec.options.batchSize, ...m.spec.steps.map((s) => (s.kind === 'batched' ? s.batchSize : undefined))) : undefined),
      mode: options.mode ?? plan?.mode,
      controller: composeControllers(options.controller, planController({ targetMs, throttle: opts.throttle, adapt })),
    });
  } catch (err) {
    if (opts.ledger) recordLedger(opts.ledger, { migrationId: m.spec.id, checksum: m.checksum, database: db.label, command: 'apply', result: 'fail', override: opts.override, detail: (err as Error).message });
    throw err;
  }
  if (opts.ledger) {
    recordLedger(opts.ledger, {
      migrationId: m.spec.id, checksum: m.checksum, database: db.label, command: 'apply', result: result.status === 'completed' ? 'pass' : 'fail',
      runId: result.runId, override: opts.override, detail: result.error?.message,
    });
  }
  return result;
}
