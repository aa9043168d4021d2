// belay dry-run: the whole pipeline as apply would run it (pre-flight, then every batch of every step with
// its in-batch verification and guards) where each batch runs in its own transaction that is rolled back.
// A dry run on production holds the locks of one batch at a time, and leaves the user's tables unchanged.
import type { Db } from '../db/connection.ts';
import { type CheckReport, runChecks } from '../checks/run-checks.ts';
import { type GuardFacts, kindOf } from '../checks/registry.ts';
import { uniqueShape } from '../checks/unique-after.ts';
import { BelayError } from '../errors.ts';
import { type EventSink, noopSink } from '../state/events.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { acquireMigrationLock } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import { ratesOf } from '../plan/calibrate.ts';
import { type Ledger, recordLedger } from '../config/environments.ts';
import { finishPlan, type Plan, type StepPlan, tablePlan } from '../plan/plan.ts';
import { BatchSizer, unmeasuredStartSize } from '../steer/batch-sizer.ts';
import { throttleCostMs } from '../steer/throttle.ts';
import { commitCostMs, openTrial, type Trial } from '../execute/trial-batch.ts';
import { recordTrial } from '../state/trials.ts';
import { DEFAULT_TARGET_BATCH_MS } from '../spec/define.ts';
import { assertStepsPlan } from '../checks/projection-check.ts';
import { resolveNames } from '../spec/resolve-names.ts';

export const DEFAULT_DRY_RUN_SAMPLE = 10;

export interface DryRunOptions {
  /** Fixed rows per batch; default: adaptive as in apply (starts small, stays under the target duration). */
  batchSize?: number;
  targetBatchMs?: number;
  /** Before → after rows kept per step (default 10). */
  sampleRows?: number;
  /** Also return a plan whose estimates come from the measured batches (dry-run -o). */
  plan?: boolean;
  ledger?: Ledger;
  onEvent?: EventSink;
}

export interface DryRunBatch {
  batchNo: number;
  lo: string;
  hi: string;
  rows: number;
  changed: number;
  ms: number;
}

export interface DryRunStep {
  name: string;
  kind: 'batched' | 'sql';
  rowsInRange: number;
  /** Rows whose written columns would change: the step's decision, written by its batches. */
  rowsChanged: number;
  /** Rows the decision holds (the same as rowsChanged unless a check left rows out). */
  decided: number;
  batches: DryRunBatch[];
  /** Before → after images of the first rows that would change (from the decision). */
  sample: Array<{ key: unknown; before: Record<string, unknown>; after: Record<string, unknown> }>;
  /** In-batch verifications and guards that returned rows: apply leaves those rows out too, and stops past options.maxRejected. */
  verifyFailures: Array<{ batchNo: number; name: string; count: number; sample: unknown[] }>;
  /** A plain-SQL step's error when tried (rolled back), if any. */
  error?: string;
  ms: number;
}

export interface DryRunResult {
  migrationId: string;
  checksum: string;
  database: string;
  /** Pre-flight passes, no in-batch verification fails, no step errors. */
  ok: boolean;
  checks: CheckReport;
  steps: DryRunStep[];
  durationMs: number;
  /** With opts.plan: a plan whose estimates come from this dry run's timings. */
  plan?: Plan;
}

export async function dryRun(db: Db, m: LoadedMigration, opts: DryRunOptions = {}): Promise<DryRunResult> {
  const emit = opts.onEvent ?? noopSink;
  const t0 = performance.now();
  // the spec's names and its steps' SQL, as apply checks them before its run record: the same refusals
  await resolveNames(db, m.spec, m.file);
  await assertStepsPlan(db, m.spec);
  await ensureState(db);
  const release = await acquireMigrationLock(db, m.spec.id, 'fail');
  let result: DryRunResult;
  try {
    // each step decided once, as apply decides it; the pre-flight reads those decisions
    const facts: GuardFacts = { indexes: new Map() };
    const trials = new Map<number, Trial>();
    const steps: DryRunStep[] = [];
    let checks: CheckReport;
    try {
      for (const [i, step] of m.spec.steps.entries()) {
        if (step.kind !== 'batched') continue;
        // the guards apply lends each batch from the checks that protect a write
        trials.set(i, await openTrial(db, m, i, { guards: (t) => m.spec.checks.flatMap((c) => kindOf(c).guard?.(c, step, t, facts) ?? []) }));
      }
      const decisions = new Map([...trials].flatMap(([i, t]) => (t.decision ? [[i, t.decision] as const] : [])));
      checks = await runChecks(db, m, { decisions });
      emit({
        type: 'checks-finished',
        ok: checks.ok,
        blocking: checks.blocking,
        counts: Object.fromEntries(checks.findings.map((f) => [f.code, f.count])),
        durationMs: checks.durationMs,
      });
      for (const c of m.spec.checks) if (c.kind === 'unique-after') facts.indexes.set(c.code, (await uniqueShape(db, c, m)).shape);
      for (const [i, step] of m.spec.steps.entries()) {
        steps.push(step.kind === 'sql' ? await trySqlStep(db, m, i) : await walkStep(m, trials.get(i)!, i, opts, emit));
      }
    } finally {
      for (const t of trials.values()) await t.close();
    }
    const ok = checks.ok && steps.every((s) => s.verifyFailures.length === 0 && !s.error);
    result = { migrationId: m.spec.id, checksum: m.checksum, database: db.label, ok, checks, steps, durationMs: performance.now() - t0 };
    if (opts.plan) result.plan = await planFromDryRun(db, m, result, opts.targetBatchMs ?? DEFAULT_TARGET_BATCH_MS);
  } catch (err) {
    if (opts.ledger && err instanceof BelayError)
      recordLedger(opts.ledger, { migrationId: m.spec.id, checksum: m.checksum, database: db.label, command: 'dry-run', result: 'fail', detail: err.message });
    throw err;
  } finally {
    await release();
  }
  const summary = {
    steps: result.steps.map((s) => ({
      name: s.name,
      rows: s.rowsInRange,
      changed: s.rowsChanged,
      batches: s.batches.length,
      failures: s.verifyFailures.length,
    })),
    findings: Object.fromEntries(result.checks.findings.map((f) => [f.code, f.count])),
  };
  await recordTrial(db, { kind: 'dry-run', migrationId: m.spec.id, checksum: m.checksum, pass: result.ok, summary });
  if (opts.ledger)
    recordLedger(opts.ledger, { migrationId: m.spec.id, checksum: m.checksum, database: db.label, command: 'dry-run', result: result.ok ? 'pass' : 'fail' });
  return result;
}

async function walkStep(m: LoadedMigration, trial: Trial, stepNo: number, opts: DryRunOptions, emit: EventSink): Promise<DryRunStep> {
  const step = m.spec.steps[stepNo] as BatchedStep;
  const target = opts.targetBatchMs ?? DEFAULT_TARGET_BATCH_MS;
  // adaptive: start small (nothing is measured yet) and let the sizer grow the size, as apply does
  let size = opts.batchSize ?? unmeasuredStartSize(step.batchSize ?? m.spec.options.batchSize);
  const sizer = new BatchSizer(target);
  const out: DryRunStep = { name: step.name, kind: 'batched', rowsInRange: 0, rowsChanged: 0, decided: 0, batches: [], sample: [], verifyFailures: [], ms: 0 };
  {
    out.decided = trial.decision?.rows ?? 0;
    out.sample = await trial.sample(opts.sampleRows ?? DEFAULT_DRY_RUN_SAMPLE);
    // every batch is rolled back, so the walk advances by key in memory, never by a committed checkpoint
    let after: string | null = null;
    for (let batchNo = 1; ; batchNo++) {
      const b = await trial.batch({ after, size });
      if (!b) break;
      after = b.hi;
      out.rowsInRange += b.rows;
      out.rowsChanged += b.changed;
      out.ms += b.ms;
      out.batches.push({ batchNo, lo: b.lo, hi: b.hi, rows: b.rows, changed: b.changed, ms: b.ms });
      for (const f of b.verifyFailures) out.verifyFailures.push({ batchNo, ...f });
      emit({ type: 'trial-batch', step: step.name, batchNo, lo: b.lo, hi: b.hi, rows: b.rows, changed: b.changed, ms: b.ms });
      if (opts.batchSize === undefined) size = sizer.next(size, { durationMs: b.ms, rowsInRange: b.rows });
    }
  }
  return out;
}

/** A plain-SQL step is run and rolled back, to prove it runs; its effect is not shown. */
async function trySqlStep(db: Db, m: LoadedMigration, stepNo: number): Promise<DryRunStep> {
  const step = m.spec.steps[stepNo]!;
  const out: DryRunStep = { name: step.name, kind: 'sql', rowsInRange: 0, rowsChanged: 0, decided: 0, batches: [], sample: [], verifyFailures: [], ms: 0 };
  if (step.kind !== 'sql') return out;
  const t0 = performance.now();
  await db.query('BEGIN');
  try {
    for (const prior of m.spec.steps.slice(0, stepNo)) if (prior.kind === 'sql') await db.exec(prior.up);
    await db.exec(step.up);
  } catch (err) {
    out.error = (err as Error).message;
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
  out.ms = performance.now() - t0;
  return out;
}

async function planFromDryRun(db: Db, m: LoadedMigration, r: DryRunResult, targetBatchMs: number): Promise<Plan> {
  const tempNames = m.spec.tempIndexes.map((i) => i.name);
  const tables = [];
  for (const t of m.spec.tables) tables.push(await tablePlan(db, t, false, tempNames));
  const steps: StepPlan[] = r.steps.map((s) => {
    const spec = m.spec.steps.find((x) => x.name === s.name)!;
    // the first batch pays for cold caches, and the small batches of the start (the sizer grows from
    // UNMEASURED_START_SIZE) spread each batch's fixed costs over few rows: leave them out of the rates
    // when there are others
    const sizes = s.batches.map((b) => b.rows).sort((x, y) => x - y);
    const typical = sizes[Math.floor(sizes.length / 2)] ?? 0;
    const full = s.batches.slice(1).filter((b) => b.rows >= typical / 2);
    const measured = full.length >= 2 ? full : s.batches.length > 2 ? s.batches.slice(1) : s.batches;
    return {
      name: s.name,
      kind: s.kind,
      table: spec.kind === 'batched' ? spec.table : undefined,
      rows: s.rowsInRange,
      samples: measured.map((b) => ({ lo: b.lo, hi: b.hi, rows: b.rows, changed: b.changed, ms: b.ms, rowsPerSec: (b.rows / Math.max(b.ms, 0.01)) * 1000 })),
      rates: s.kind === 'batched' ? ratesOf(measured) : null,
      estimateMs: { low: 0, mid: 0, high: 0 },
      seqScans: [],
    };
  });
  const batchedTable = m.spec.steps.find((s): s is BatchedStep => s.kind === 'batched')?.table;
  const throttleMs = batchedTable ? await throttleCostMs({ db }, batchedTable) : 0;
  return finishPlan(db, m, { tables, steps, targetBatchMs, commitMs: await commitCostMs(db), throttleMs, source: 'dry-run' });
}
