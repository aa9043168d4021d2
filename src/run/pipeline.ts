// The order of a run, written down once. A newcomer reads this file top to bottom and knows what
// `belay apply` does; every stage it names sees only the run contract (contract.ts).
//
//   decide + check (one snapshot) → backup → temporary indexes → schema snapshot → baseline
//   → batches over the decision (steered, controlled from other terminals, abort triggers), catch-up → verify
//   → (unwinding) schema snapshot after, temporary indexes dropped
//
// Rollback is its mirror (rollback/), restore from backup its last resort (backup/restore-run.ts).
import { archiveBackups, type ArchiveOptions, type ArchiveResult, DEFAULT_RETENTION_MS } from '../backup/archive.ts';
import { backupStage } from '../backup/backup.ts';
import { preflight } from '../checks/preflight.ts';
import { assertStepsPlan } from '../checks/projection-check.ts';
import { decideStage } from '../decide/decide.ts';
import type { CheckReport } from '../checks/run-checks.ts';
import { cleanTempIndexes, tempIndexStage } from '../cleanup/temp-indexes.ts';
import { assertApplyAllowed, type Ledger, recordLedger } from '../config/environments.ts';
import type { Db } from '../db/connection.ts';
import { apply, type ApplyOptions, refused } from '../execute/apply.ts';
import { assertWorkers } from '../execute/workers.ts';
import { StateError } from '../errors.ts';
import { commitCostMs, openTrial } from '../execute/trial-batch.ts';
import { assertPlanCurrent, type Plan, type PlanOptions, plan as makePlan, validatePlan } from '../plan/plan.ts';
import { schemaSnapshotStage } from '../report/schema-snapshot.ts';
import { rollback } from '../rollback/rollback.ts';
import { DEFAULT_TARGET_BATCH_MS, type Migration } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { checkNumber, NUMBERS } from '../spec/numbers.ts';
import { resolveNames } from '../spec/resolve-names.ts';
import { getRun } from '../state/runs.ts';
import { dropDecisions, dropFence, storedDecision } from '../state/decision.ts';
import { resolveStep } from '../spec/resolve.ts';
import { abortStage } from '../steer/abort-triggers.ts';
import { diagnoseStage } from '../steer/diagnose.ts';
import { unmeasuredStartSize } from '../steer/batch-sizer.ts';
import { controlStage } from '../steer/control.ts';
import { steerSettings, steerStage, throttleCostMs, type ThrottleOptions } from '../steer/throttle.ts';
import { baselineStage, verificationStage, type VerifyOptions, type VerifyResult, verifyRun } from '../verify/verify.ts';
import type { RunResult, Stage } from '../contract.ts';
import { recount } from './sources.ts';

export interface SafeApplyOptions extends Omit<ApplyOptions, 'stages' | 'undo'> {
  /** Changes the stages of the run: add one of your own, or leave one out (default: applyStages as they are). */
  stages?: (defaults: Stage[]) => Stage[];
  /** false: no backup (the CLI's --no-backup); default: an in-database copy, plus files in backupDir. */
  backup?: boolean;
  backupDir?: string;
  /** Also back up the tables the migration only reads (default: only the tables it writes). */
  backupReadTables?: boolean;
  skipChecks?: boolean;
  /** Called with the pre-flight's findings before the first write. */
  onCheckReport?: (report: CheckReport) => void;
  /** The application writes meanwhile: drift in categories and untouched columns warns instead of failing. */
  concurrentWrites?: boolean;
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

/** The stages of an apply, in order (their after() hooks run in reverse, as a stack unwinds). */
export function applyStages(m: LoadedMigration, o: SafeApplyOptions & { targetBatchMs: number; adapt: boolean }): Stage[] {
  // the batch target and throttle limits: the steer stage reads them, belay tune changes them (control stage)
  const live = steerSettings(o.targetBatchMs, o.throttle);
  return [
    // the steps decided once, and the pre-flight in that snapshot: refuses on blocking findings before a backup is paid for
    decideStage({ inSnapshot: preflight({ skipChecks: o.skipChecks, onReport: o.onCheckReport }) }),
    ...(o.backup === false ? [] : [backupStage({ dir: o.backupDir, readTables: o.backupReadTables })]), // verified copies of the tables the run writes
    tempIndexStage({ timeoutMs: o.tempIndexTimeoutMs }), // the indexes the batches need; dropped once verified
    schemaSnapshotStage(), // the touched tables' schema before the first write and after the last
    baselineStage(), // checksums of the columns the run does not write
    steerStage({ targetMs: o.targetBatchMs, adapt: o.adapt, live }), // batch size and throttle
    controlStage({ live }), // belay pause | resume | abort | tune from another terminal, between batches
    abortStage(m.spec), // the spec's abort triggers, after every batch
    verificationStage({ concurrentWrites: o.concurrentWrites, recount }), // after the last batch: did the run do what it said
    diagnoseStage(), // last: words the error the others settled on (count, lock holder, resumable, the command)
  ];
}

/** belay apply: the whole pipeline. Expected failures are in the result's `error`; a refused start throws. */
export async function safeApply(db: Db, m: LoadedMigration, opts: SafeApplyOptions = {}): Promise<RunResult> {
  const { plan, ledger } = opts;
  // the library's options are checked as the command line's flags are (spec/numbers.ts)
  checkNumber('batchSize', NUMBERS.batchSize, opts.batchSize);
  checkNumber('targetBatchMs', NUMBERS.targetBatchMs, opts.targetBatchMs);
  checkNumber('workers', NUMBERS.workers, opts.workers);
  assertWorkers(db, opts.workers, opts.mode ?? plan?.mode ?? m.spec.options.mode);
  if (plan) validatePlan(plan, 'the plan');
  try {
    if (ledger) assertApplyAllowed(ledger, m.spec.id, m.checksum, opts.override);
    if (plan) await assertPlanCurrent(db, m, plan, { maxDrift: opts.maxDrift });
  } catch (err) {
    // a protected environment or a stale plan: refused, nothing ran
    if (err instanceof StateError) return refused(m.spec.id, err);
    throw err;
  }
  // before a run record exists: a missing table or column, or a projection that does not fit its table,
  // leaves no run behind to block the fixed spec
  await resolveNames(db, m.spec, m.file);
  await assertStepsPlan(db, m.spec);
  const targetBatchMs = opts.targetBatchMs ?? plan?.targetBatchMs ?? DEFAULT_TARGET_BATCH_MS;
  // an explicit batch size is the user's choice: keep it fixed
  const adapt = opts.adapt ?? opts.batchSize === undefined;
  const spec = m.spec;
  let result: RunResult;
  try {
    result = await apply(db, m, {
      ...opts,
      // no plan: start small, the sizer grows the size to the target within a few batches
      batchSize:
        opts.batchSize ??
        plan?.batchSize ??
        (adapt ? unmeasuredStartSize(spec.options.batchSize, ...spec.steps.map((s) => (s.kind === 'batched' ? s.batchSize : undefined))) : undefined),
      mode: opts.mode ?? plan?.mode,
      stages: (opts.stages ?? ((s) => s))(applyStages(m, { ...opts, targetBatchMs, adapt })),
      undo: (d, runId, emit) => rollback(d, runId, { onEvent: emit }),
    });
  } catch (err) {
    if (ledger)
      recordLedger(ledger, {
        migrationId: spec.id,
        checksum: m.checksum,
        database: db.label,
        command: 'apply',
        result: 'fail',
        override: opts.override,
        detail: (err as Error).message,
      });
    throw err;
  }
  if (ledger) {
    recordLedger(ledger, {
      migrationId: spec.id,
      checksum: m.checksum,
      database: db.label,
      command: 'apply',
      result: result.status === 'completed' ? 'pass' : 'fail',
      runId: result.runId,
      override: opts.override,
      detail: result.error?.message,
    });
  }
  return result;
}

export interface CleanupResult {
  runId: number;
  tempIndexesDropped: string[];
  /** Steps whose decision (the before-images the exact rollback restores) was dropped: past the retention, the run ended. */
  decisionsDropped: string[];
  backups: ArchiveResult;
}

/** belay cleanup <run>: temporary indexes dropped; backups archived (with dir) and copies past the retention dropped. */
export async function cleanupRun(db: Db, runId: number, opts: ArchiveOptions = {}): Promise<CleanupResult> {
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const tempIndexesDropped = await cleanTempIndexes(db, runId, spec);
  // the monitoring window is over: the write fences come down
  for (const [stepNo, step] of spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const d = await storedDecision(db, runId, stepNo, await resolveStep(db, step, stepNo)).catch(() => undefined);
    if (d?.fence) await dropFence(db, d, runId, stepNo);
  }
  const retentionMs = opts.retentionMs ?? DEFAULT_RETENTION_MS;
  // as the backup copies: kept for the retention (the exact rollback needs them), never while the run can resume
  const ended = run.status === 'completed' || run.status === 'rolled_back';
  const dropped = ended
    ? await dropDecisions(
        db,
        runId,
        async (stepNo) => {
          const step = spec.steps[stepNo];
          return step?.kind === 'batched' ? (await resolveStep(db, step, stepNo).catch(() => undefined))?.table : undefined;
        },
        (opts.now ?? new Date()).getTime() - retentionMs,
      )
    : [];
  const backups = await archiveBackups(db, { runId }, { requireArchive: false, ...opts, retentionMs });
  return { runId, tempIndexesDropped, decisionsDropped: dropped.map((i) => spec.steps[i]!.name), backups };
}

/** belay verify: the post-run verification again, recorded as a round (the pre-flight's categories recounted). */
export function verify(db: Db, runId: number, opts: Omit<VerifyOptions, 'recount'> = {}): Promise<VerifyResult> {
  return verifyRun(db, runId, { ...opts, recount });
}

/** belay plan: sizes, EXPLAIN and rolled-back calibration batches, measured with the batch body apply runs. */
export async function plan(db: Db, m: LoadedMigration, opts: PlanOptions = {}): Promise<Plan> {
  const batched = m.spec.steps.find((s) => s.kind === 'batched');
  return makePlan(db, m, opts, {
    trial: async (stepNo) => {
      const t = await openTrial(db, m, stepNo);
      return { batch: (q) => t.batch(q), keyAt: (o) => t.keyAt(o), close: () => t.close(), rows: t.decision?.rows, ruleExplain: t.ruleExplain };
    },
    commitMs: await commitCostMs(db),
    throttleMs: batched ? await throttleCostMs({ db }, batched.table) : 0,
  });
}
