// Carries a migration out: run record, lock, steps in order; a batched step walks its decision in batches
// (execute/batch.ts), then catches up with what the rule gives by then.
// Returns a result instead of throwing half-way: what ran, what changed, and the error that stopped it.
import type { Db } from '../db/connection.ts';
import { AbortedError, BelayError, DbError, isCancelled, LockedError, serverFields, StateError } from '../errors.ts';
import { type EventOf, type EventSink, isolated, recordEvent, tell } from '../state/events.ts';
import type { BatchedStep, Migration, SqlStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { acquireMigrationLock, type LockMode } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import {
  BATCH_COUNTS_SQL,
  createRun,
  getSteps,
  LAST_BATCH_SQL,
  latestRun,
  NEXT_ROUND_SQL,
  RESET_STEPS_SQL,
  RUN_HAS_WRITTEN_SQL,
  setRunStatus,
  setStep,
  type StepRecord,
} from '../state/runs.ts';
import { mergeSummary, readSummary } from '../state/summary.ts';
import { catchUp, type Decision, dropDecisions, skippedRows, dropFence, ensureFence, makeDecision, storedDecision } from '../state/decision.ts';
import { fenceNames, WRITER_SQL } from '../state/decision-sql.ts';
import type { BatchJob } from './batch.ts';
import { interrupted, retestRejected, type StepRun, walk, walker } from './walk.ts';
import { assertWorkers, roundRanges, walkRanges, workerPool } from './workers.ts';
import type { BatchController, RunContext, RunResult, Stage, StepResult } from '../contract.ts';
import { resolveStep, tableCounts, type StepTarget } from '../spec/resolve.ts';
import { composeControllers } from './compose.ts';
import { replicaRoleGuards } from './user-triggers.ts';

export { CEILING_LIFT_MS, MAX_CEILING_SPLITS } from './walk.ts';

export interface ApplyOptions {
  onEvent?: EventSink;
  /** fail (default): a second concurrent run is refused; wait: queue behind it. */
  lock?: LockMode;
  /** Overrides the spec's options.batchSize and each step's batchSize. */
  batchSize?: number;
  mode?: 'batched' | 'single';
  /** Start a new run even if the latest run of this migration completed. */
  again?: boolean;
  /** The pipeline's stages, in order: their before() runs before the first write, after() after the last step. */
  stages?: readonly Stage[];
  /** Catch-up rounds after the last batch (overrides options.catchUpRounds; 0 = none). */
  catchUpRounds?: number;
  /** Undoes every committed batch when an abort trigger decides 'rollback' (the pipeline passes rollback). */
  undo?: (db: Db, runId: number, emit: EventSink) => Promise<{ restored: number; conflictCount: number }>;
  /** Key-range workers of a batched step, each on its own connection (server only; default 1). */
  workers?: number;
  /**
   * Stops the run when aborted (the CLI aborts it on Ctrl-C and SIGTERM): the batch in flight commits (or,
   * cancelled, rolls back), then the run ends paused with a BELAY_INTERRUPTED error; belay apply resumes it.
   */
  signal?: AbortSignal;
}

export async function apply(db: Db, migration: LoadedMigration, opts: ApplyOptions = {}): Promise<RunResult> {
  // a listener that throws is isolated: the run goes on, and the failure is recorded with it
  let listenerFailure: EventOf<'listener-failed'> | undefined;
  const emit = isolated(opts.onEvent, (e) => (listenerFailure = e));
  const { spec } = migration;
  const started = performance.now();
  assertWorkers(db, opts.workers, opts.mode ?? spec.options.mode);
  await ensureState(db);
  let release: () => Promise<void>;
  try {
    release = await acquireMigrationLock(db, spec.id, opts.lock ?? 'fail');
  } catch (err) {
    if (err instanceof LockedError) return refused(spec.id, err);
    throw err;
  }
  try {
    let start: { runId: number; resumed: boolean };
    try {
      start = await startOrResume(db, migration, opts, emit);
    } catch (err) {
      if (err instanceof StateError) return refused(spec.id, err);
      throw err;
    }
    const { runId, resumed } = start;
    const ctx: RunContext = { db, runId, migration, resumed, emit, signal: opts.signal };
    await tell(db, emit, { type: 'run-started', runId, migrationId: spec.id, checksum: migration.checksum, resumed, mode: opts.mode ?? spec.options.mode });
    const countsBefore = resumed ? ((await readSummary(db, runId)).countsBefore ?? {}) : await tableCounts(db, spec);
    if (!resumed) await setRunStatus(db, runId, 'running', { summary: { countsBefore } });
    const stages = opts.stages ?? [];
    const ctl = composeControllers(...stages.map((s) => s.batches));
    let error: BelayError | undefined;
    try {
      for (const s of stages) await s.before?.(ctx);
      const mode = opts.mode ?? spec.options.mode;
      if (mode === 'single') await runSingle(ctx, ctl, opts);
      else for (const [i, step] of spec.steps.entries()) await runStep(ctx, i, step, ctl, opts);
      // after() unwinds like a stack: verification first, what was set up first is torn down last
      for (const s of [...stages].reverse()) await s.after?.(ctx);
    } catch (err) {
      error = asBelayError(err);
      // the second Ctrl-C cancelled the statement in flight: its transaction rolled back, the run pauses as on the first
      if (opts.signal?.aborted && isCancelled(error))
        error = interrupted(ctx, 'while a statement ran (cancelled by the second signal, its transaction rolled back)');
      error = (await ctl.onError?.(ctx, error).catch(() => undefined)) ?? error;
    }
    // an abort trigger decides: pause leaves the run resumable, rollback undoes every committed batch
    const decision = error instanceof AbortedError ? error.details.decision : undefined;
    let status: RunResult['status'] = error ? (decision === 'pause' ? 'paused' : 'failed') : 'completed';
    await setRunStatus(db, runId, status, { error: error ? error.toJSON() : null });
    let rollbackFailed = false;
    if (decision === 'rollback' && opts.undo) {
      try {
        const rb = await opts.undo(db, runId, emit);
        status = 'rolled_back';
        await tell(db, emit, { type: 'abort-rolled-back', runId, restored: rb.restored, conflictCount: rb.conflictCount });
      } catch (err) {
        // the run keeps the status the rollback left (rolling_back: belay rollback <run> finishes it)
        rollbackFailed = true;
        await tell(db, emit, { type: 'abort-rollback-failed', runId, error: asBelayError(err).toJSON() });
      }
    }
    const countsAfter = await tableCounts(db, spec);
    const durationMs = performance.now() - started;
    if (rollbackFailed) await mergeSummary(db, runId, { countsAfter });
    else await setRunStatus(db, runId, status, { summary: { countsAfter } });
    if (listenerFailure) await recordEvent(db, { ...listenerFailure, runId });
    await tell(db, emit, { type: 'run-finished', runId, status, durationMs, error: error?.toJSON() });
    const steps = (await getSteps(db, runId)).map(stepResult);
    const batches = await db.query<{ step_no: number; n: number }>(BATCH_COUNTS_SQL, [runId]);
    for (const b of batches.rows) steps[b.step_no]!.batches = b.n;
    // rejected rows are left out of the batches' counts: the decision knows every row left unchanged
    for (const [i, s] of steps.entries()) if (s.kind === 'batched') s.rowsSkipped = (await skippedRows(db, runId, i)) ?? s.rowsSkipped;
    return { runId, migrationId: spec.id, status, resumed, durationMs, steps, counts: { before: countsBefore, after: countsAfter }, error };
  } finally {
    await release();
  }
}

async function startOrResume(db: Db, m: LoadedMigration, opts: ApplyOptions, emit: EventSink): Promise<{ runId: number; resumed: boolean }> {
  const last = await latestRun(db, m.spec.id);
  if (
    last &&
    ['running', 'failed', 'paused'].includes(last.status) &&
    last.checksum !== m.checksum &&
    !(await db.query<{ wrote: boolean }>(RUN_HAS_WRITTEN_SQL, [last.id])).rows[0]!.wrote
  ) {
    // it stopped before its first write (refused by a decision, a backup, a stage): nothing to resume or undo,
    // so the changed migration starts afresh; its decisions go, its backups stay until cleanup
    await dropDecisions(db, last.id, async (stepNo) => {
      const step = (last.spec as Migration).steps[stepNo];
      return step?.kind === 'batched' ? (await resolveStep(db, step, stepNo).catch(() => undefined))?.table : undefined;
    });
    await setRunStatus(db, last.id, 'abandoned');
    await tell(db, emit, { type: 'run-abandoned', runId: last.id, previousStatus: last.status });
  } else if (last && ['running', 'failed', 'paused'].includes(last.status)) {
    if (last.checksum !== m.checksum) {
      throw new StateError('BELAY_SPEC_CHANGED', `run ${last.id} of "${m.spec.id}" stopped part-way with a different version of the migration`, {
        details: { runId: last.id, recorded: last.checksum, current: m.checksum },
        fix: `Restore the migration as it was to resume, or roll the partial run back first (belay rollback ${last.id}).`,
      });
    }
    await setRunStatus(db, last.id, 'running', { error: null });
    await tell(db, emit, { type: 'run-resumed', runId: last.id, previousStatus: last.status });
    return { runId: last.id, resumed: true };
  }
  if (last?.status === 'rolling_back') {
    throw new StateError('BELAY_ROLLBACK_UNFINISHED', `run ${last.id} of "${m.spec.id}" is part-way through a rollback`, {
      details: { runId: last.id },
      fix: `Finish it first: belay rollback ${last.id}.`,
    });
  }
  if (last?.status === 'completed' && !opts.again) {
    throw new StateError('BELAY_ALREADY_APPLIED', `migration "${m.spec.id}" was already applied by run ${last.id}`, {
      details: { runId: last.id },
      fix: `Nothing to do. To apply it again, roll it back (belay rollback ${last.id}) or pass --again.`,
    });
  }
  const runId = await createRun(db, {
    migrationId: m.spec.id,
    checksum: m.checksum,
    params: m.params,
    spec: m.spec,
    file: m.file,
    mode: opts.mode ?? m.spec.options.mode,
    steps: m.spec.steps,
  });
  return { runId, resumed: false };
}

async function runStep(
  ctx: RunContext,
  stepNo: number,
  step: Migration['steps'][number],
  ctl: BatchController,
  opts: ApplyOptions,
  inTx = false,
): Promise<void> {
  const rec = (await getSteps(ctx.db, ctx.runId))[stepNo]!;
  if (rec.status === 'done') return;
  if (ctx.signal?.aborted) throw interrupted(ctx, `before step "${step.name}"`);
  if (step.kind === 'sql') return runSqlStep(ctx, stepNo, step, rec, inTx);
  return runBatchedStep(ctx, stepNo, step, rec, ctl, opts, inTx);
}

async function runSqlStep(ctx: RunContext, stepNo: number, step: SqlStep, _rec: StepRecord, inTx: boolean): Promise<void> {
  const { db, runId } = ctx;
  ctx.emit({ type: 'step-started', runId, stepNo, step: step.name, kind: 'sql', rowsTotal: 0, rowsDone: 0 });
  await setStep(db, runId, stepNo, { status: 'running', started: true });
  const once = async () => {
    if (!inTx) await db.query('BEGIN');
    try {
      // belay's own write: an earlier step's fence does not count it
      await db.query(WRITER_SQL, [String(runId)]);
      await db.exec(step.up);
      // the step's completion commits with its effect, so a crash never runs it twice
      await setStep(db, runId, stepNo, { status: 'done', finished: true });
      if (!inTx) await db.query('COMMIT');
    } catch (err) {
      if (!inTx) await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
  };
  try {
    try {
      await once();
    } catch (err) {
      // it alters or drops a written column, which an earlier step's fence trigger depends on: the fences come
      // down (rollback of those steps then goes by row versions) and the step runs again
      if (inTx || !dependsOnFence(err) || !(await dropFences(db, ctx.migration, runId, stepNo))) throw err;
      await once();
    }
  } catch (err) {
    throw err instanceof DbError
      ? new DbError(err.server.detail ? `${err.message} (${err.server.detail})` : err.message, err.server, { context: `step "${step.name}"`, cause: err })
      : err;
  }
  ctx.emit({ type: 'step-finished', runId, stepNo, step: step.name, rowsChanged: 0, rowsSkipped: 0, batches: 0 });
}

async function runBatchedStep(
  ctx: RunContext,
  stepNo: number,
  step: BatchedStep,
  rec: StepRecord,
  ctl: BatchController,
  opts: ApplyOptions,
  inTx: boolean,
): Promise<void> {
  const { db, runId, migration, emit } = ctx;
  const o = migration.spec.options;
  const t = await resolveStep(db, step, stepNo);
  // decided once: the pipeline's decide stage made it in the pre-flight's snapshot; a resume finds it stored
  // in single mode the run's one transaction holds the decision too
  const decision =
    (await storedDecision(db, runId, stepNo, t)) ?? (inTx ? await makeDecision(db, step, stepNo, t, { runId }) : await decideNow(db, step, stepNo, t, runId));
  const total = decision.rows;
  await setStep(db, runId, stepNo, { status: 'running', rowsTotal: total, started: true });
  emit({ type: 'step-started', runId, stepNo, step: step.name, kind: 'batched', rowsTotal: total, rowsDone: rec.rowsDone });
  // who else writes the written columns from now on (rollback leaves those rows alone)
  const fenced = !inTx && (await ensureFence(db, decision, runId, stepNo, o.lockTimeoutMs));
  const job: BatchJob = {
    db,
    runId,
    stepNo,
    decision,
    options: o,
    commit: true,
    inTransaction: inTx,
    fence: fenced ? fenceNames(runId, stepNo).table : undefined,
    replicaRole: !!step.disableUserTriggers,
    checks: [
      ...(step.verify ? [{ name: `${step.name}.verify`, sql: step.verify }] : []),
      ...(ctl.guards?.(ctx, step, t) ?? []),
      ...(await replicaRoleGuards(db, step, t)),
    ],
  };
  const workers = inTx ? 1 : (opts.workers ?? 1);
  // biome-ignore format: a record read as one row
  const s: StepRun = {
    ctx, step, stepNo, target: t, ctl, options: o, inTx, round: rec.round, stop: {}, untested: [],
    maxRejected: o.maxRejected ?? Math.max(10, Math.ceil(total * 0.001)),
    tally: { batchNo: (await db.query<{ n: number }>(LAST_BATCH_SQL, [runId, stepNo])).rows[0]!.n, rowsDone: rec.rowsDone, changed: rec.rowsChanged, skipped: 0, rejected: 0, total },
    // one walker calls the controllers directly; workers take turns (walkRanges)
    serial: (fn) => fn(),
  };
  const rounds = inTx ? 0 : (opts.catchUpRounds ?? o.catchUpRounds);
  const single = walker(job, { last: rec.lastKey, size: opts.batchSize ?? step.batchSize ?? o.batchSize });
  const pool = workerPool(db);
  try {
    for (;;) {
      // a round stored as split (by this run or the one it resumes) is walked by its workers, else by one walker
      const ranges = inTx ? undefined : await roundRanges(db, decision, s, workers, single.last);
      if (ranges) await walkRanges(s, job, ranges, pool, { workers, size: single.size });
      else await walk(s, single);
      // catch-up: what the rule gives now that was not decided (inserted or changed meanwhile), in at most `rounds` rounds;
      // rejected rows the rule no longer gives as decided join it as changed ones
      if (s.untested.length && !inTx) await retestRejected(s, job, s.tally.batchNo);
      if (s.round >= rounds) {
        // the rounds are spent (the run always ends): what the rule would still give is reported, not written
        if (rounds > 0) {
          const remaining = await catchUp(db, step, stepNo, decision, s.round + 1, runId, { count: true });
          if (remaining > 0) await tell(db, emit, { type: 'catch-up-left', runId, step: step.name, rounds, remaining });
        }
        break;
      }
      const added = await catchUp(db, step, stepNo, decision, s.round + 1, runId);
      await tell(db, emit, { type: 'catch-up', runId, step: step.name, round: s.round + 1, added });
      if (added === 0) break;
      s.round++;
      single.last = null;
      s.tally.total += added;
      await db.query(NEXT_ROUND_SQL, [runId, stepNo, s.round]);
      await setStep(db, runId, stepNo, { rowsTotal: s.tally.total });
    }
  } finally {
    await pool.close();
  }
  await setStep(db, runId, stepNo, { status: 'done', finished: true });
  // biome-ignore format: a record read as one row
  emit({ type: 'step-finished', runId, stepNo, step: step.name, rowsChanged: s.tally.changed, rowsSkipped: s.tally.skipped + s.tally.rejected, batches: s.tally.batchNo });
}

/** The server refused a schema change because a trigger (a fence) depends on the column. */
function dependsOnFence(err: unknown): boolean {
  const f = serverFields(err);
  return (f.sqlstate === '2BP01' || f.sqlstate === '0A000') && /belay_fence_r\d+_s\d+|trigger/.test(`${(err as Error).message} ${f.detail ?? ''}`);
}

/** Takes down the fences of the steps before `stepNo`; true when there was one. */
async function dropFences(db: Db, m: LoadedMigration, runId: number, stepNo: number): Promise<boolean> {
  let dropped = false;
  for (const [i, earlier] of m.spec.steps.slice(0, stepNo).entries()) {
    if (earlier.kind !== 'batched') continue;
    const d = await storedDecision(db, runId, i, await resolveStep(db, earlier, i));
    if (!d?.fence) continue;
    await dropFence(db, d, runId, i);
    dropped = true;
  }
  return dropped;
}

/** Decides a step in its own REPEATABLE READ transaction (when no stage decided it before the first write). */
async function decideNow(db: Db, step: BatchedStep, stepNo: number, t: StepTarget, runId: number): Promise<Decision> {
  await db.query('BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ');
  try {
    const d = await makeDecision(db, step, stepNo, t, { runId });
    await db.query('COMMIT');
    return d;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** All or nothing: every step and batch in one transaction (small migrations). */
async function runSingle(ctx: RunContext, ctl: BatchController, opts: ApplyOptions): Promise<void> {
  const { db } = ctx;
  await db.query('BEGIN');
  try {
    for (const [i, step] of ctx.migration.spec.steps.entries()) await runStep(ctx, i, step, ctl, opts, true);
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    // the checkpoints rolled back with the work: the steps start afresh on the next apply
    await db.query(RESET_STEPS_SQL, [ctx.runId]);
    throw err;
  }
}

function stepResult(s: StepRecord): StepResult {
  return {
    name: s.name,
    kind: s.kind,
    status: s.status,
    rowsTotal: s.rowsTotal,
    rowsDone: Number(s.rowsDone),
    rowsChanged: Number(s.rowsChanged),
    rowsSkipped: Math.max(0, Number(s.rowsDone) - Number(s.rowsChanged)),
    batches: 0,
  };
}

/** The result of a run that was refused before it started: another holds the lock, the spec changed, … */
export function refused(migrationId: string, error: BelayError): RunResult {
  const runId = typeof error.details.runId === 'number' ? error.details.runId : 0;
  return { runId, migrationId, status: 'refused', resumed: false, durationMs: 0, steps: [], counts: { before: {}, after: {} }, error };
}

export function asBelayError(err: unknown): BelayError {
  if (err instanceof BelayError) return err;
  return new BelayError('BELAY_INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}
