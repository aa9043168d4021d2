// Carries a migration out: run record, lock, steps in order; a batched step walks its decision in batches
// (execute/batch.ts), then catches up with what the rule gives by then.
// Returns a result instead of throwing half-way: what ran, what changed, and the error that stopped it.
import type { Db } from '../db/connection.ts';
import { AbortedError, BelayError, DbError, LockedError, serverFields, StateError, VerificationError } from '../errors.ts';
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
import {
  catchUp,
  changedSinceDecision,
  type Decision,
  dropDecisions,
  skippedRows,
  dropFence,
  ensureFence,
  makeDecision,
  storedDecision,
} from '../state/decision.ts';
import { fenceNames, WRITER_SQL } from '../state/decision-sql.ts';
import { type BatchJob, reject, runBatch } from './batch.ts';
import { withRetry } from '../db/retry.ts';
import type { BatchController, BatchRecord, RunContext, RunResult, Stage, StepResult } from '../contract.ts';
import { resolveStep, tableCounts, type StepTarget } from '../spec/resolve.ts';
import { composeControllers } from './compose.ts';
import { replicaRoleGuards } from './user-triggers.ts';

/**
 * Halvings of one batch after it ran past the ceiling before it runs once without it: from 10,000 rows,
 * 6 halvings reach 156. A batch that still runs past the ceiling then lifts it for its step, for
 * CEILING_LIFT_MS.
 */
export const MAX_CEILING_SPLITS = 6;
/**
 * How long a lifted ceiling stays off. Not for good: what made the smallest batch slow may pass (a lock
 * held for a while by another session). If it does not (a scan per batch), coming back costs
 * MAX_CEILING_SPLITS cancelled attempts every two minutes, about 1 % of the run at a 200 ms target.
 */
export const CEILING_LIFT_MS = 120_000;

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
}

export async function apply(db: Db, migration: LoadedMigration, opts: ApplyOptions = {}): Promise<RunResult> {
  // a listener that throws is isolated: the run goes on, and the failure is recorded with it
  let listenerFailure: EventOf<'listener-failed'> | undefined;
  const emit = isolated(opts.onEvent, (e) => (listenerFailure = e));
  const { spec } = migration;
  const started = performance.now();
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
    const ctx: RunContext = { db, runId, migration, resumed, emit };
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
  let size = opts.batchSize ?? step.batchSize ?? o.batchSize;
  let total = decision.rows;
  await setStep(db, runId, stepNo, { status: 'running', rowsTotal: total, started: true });
  let batchNo = (await db.query<{ n: number }>(LAST_BATCH_SQL, [runId, stepNo])).rows[0]!.n;
  let round = rec.round;
  let last = rec.lastKey;
  let rowsDone = rec.rowsDone;
  let changedTotal = rec.rowsChanged;
  let skippedTotal = 0;
  let rejectedTotal = 0;
  emit({ type: 'step-started', runId, stepNo, step: step.name, kind: 'batched', rowsTotal: total, rowsDone });
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
      ...(await replicaRoleGuards(db, step, t.key)),
    ],
  };
  const maxRejected = o.maxRejected ?? Math.max(10, Math.ceil(total * 0.001));
  const rounds = inTx ? 0 : (opts.catchUpRounds ?? o.catchUpRounds);
  // the ceiling needs statement_timeout (PGlite never fires it) and a transaction per batch (in single
  // mode a cancel would undo the whole run); it is lifted for the step when one row cannot meet it
  const ceilingNow = () => (db.kind === 'postgres' && !inTx ? ctl.batchCeilingMs : undefined);
  let liftedUntil = -Infinity;
  let splits = 0;
  /** The batch size before a constraint violation split it down to the offending row. */
  let sizeBeforeSplit: number | undefined;
  /** Rejected keys not yet tested against the rule evaluated again (see below). */
  let untested: string[] = [];
  const retest = async () => {
    const changed = await changedSinceDecision(db, step, stepNo, decision, untested);
    untested = [];
    rejectedTotal -= changed.length;
    skippedTotal += changed.length;
    if (changed.length)
      await tell(db, emit, { type: 'rows-skipped', runId, step: step.name, batchNo: batchNo + 1, count: changed.length, keys: changed.slice(0, 20) });
  };
  /** Leaves rows out of the step; past maxRejected it is no longer traffic but the rule or the data. */
  const rejectRows = async (keys: string[], reason: string, sample: unknown[]) => {
    rejectedTotal += keys.length;
    untested.push(...keys);
    await tell(db, emit, {
      type: 'rows-rejected',
      runId,
      step: step.name,
      batchNo: batchNo + 1,
      reason,
      count: keys.length,
      keys: keys.slice(0, 20),
      sample: sample.slice(0, 5),
    });
    if (!inTx && rejectedTotal > maxRejected) {
      // before stopping: rows for which the rule itself, evaluated now, no longer gives the decided value were
      // changed since the decision (a link edited, a slug renamed by the application): skipped as changed, not
      // rejected, and a catch-up round may decide them again; only the rest count against maxRejected
      await retest();
    }
    if (inTx || rejectedTotal > maxRejected) {
      throw new VerificationError(
        `step "${step.name}": ${reason} returned ${keys.length} row(s) in batch ${batchNo + 1}${inTx ? '' : ` (${rejectedTotal} rejected in all, more than the ${maxRejected} allowed)`}; the batch was rolled back`,
        {
          step: step.name,
          check: reason,
          batchNo: batchNo + 1,
          sample: sample.slice(0, 10),
          rejected: rejectedTotal,
          maxRejected,
          fix: 'Read the sample rows: when the rule or the data is wrong, fix it and resume (belay apply); raise options.maxRejected only when these rows are expected.',
        },
      );
    }
    await reject(job, keys, reason);
  };
  for (;;) {
    await ctl.beforeBatch?.(ctx, step);
    batchNo++;
    let attemptStart = 0;
    const ceiling = ceilingNow();
    const thisCeiling = splits < MAX_CEILING_SPLITS && performance.now() >= liftedUntil ? ceiling : undefined;
    // each statement gets what is left of the ceiling; the user's statement_timeout still bounds it
    const timeout =
      thisCeiling === undefined
        ? undefined
        : () => `${Math.min(o.statementTimeoutMs, Math.max(1, Math.floor(thisCeiling - (performance.now() - attemptStart))))}ms`;
    const outcome = await withRetry(
      (attempt) => {
        attemptStart = performance.now();
        return runBatch(job, { round, after: last, size, batchNo, attempt, timeout });
      },
      {
        maxRetries: inTx ? 0 : o.maxRetries,
        onRetry: (attempt, sqlstate, waitMs) => emit({ type: 'batch-retry', runId, step: step.name, batchNo, attempt, sqlstate, waitMs }),
      },
    ).catch((err: unknown) => {
      // the ceiling's cancel, not the user's statement_timeout (1 ms of slack: the timeouts are whole ms)
      if (thisCeiling === undefined || serverFields(err).sqlstate !== '57014' || performance.now() - attemptStart < thisCeiling - 1) throw err;
      return 'over-ceiling' as const;
    });
    if (outcome === 'over-ceiling') {
      // rolled back whole (elapsed includes the ROLLBACK: the locks are held until it ends); the same keys
      // are tried again under the same batch number, at half the size or what the sizer learnt, if smaller
      const over = { stepNo, step: step.name, batchNo, rows: size, elapsedMs: performance.now() - attemptStart, ceilingMs: thisCeiling! };
      const sample: BatchRecord = {
        runId,
        stepNo,
        step: step.name,
        batchNo,
        round,
        lo: '',
        hi: '',
        rowsInRange: over.rows,
        rowsChanged: 0,
        rowsSkipped: 0,
        xid: '',
        durationMs: over.elapsedMs,
        heldMs: over.elapsedMs,
        attempts: 1,
        batchSize: size,
      };
      const next = Math.max(1, Math.min(Math.floor(size / 2), Math.round(ctl.nextBatchSize?.(size, sample) ?? size)));
      splits = next === size ? MAX_CEILING_SPLITS : splits + 1;
      size = next;
      batchNo--;
      await tell(db, emit, { type: 'batch-over-ceiling', runId, ...over, nextSize: size });
      continue;
    }
    if (outcome.kind === 'done') {
      // catch-up: what the rule gives now that was not decided (inserted or changed meanwhile), in at most `rounds` rounds
      batchNo--;
      // rejected rows the rule no longer gives as decided join the catch-up as changed ones
      if (untested.length && !inTx) await retest();
      if (round >= rounds) {
        // the rounds are spent (the run always ends): what the rule would still give is reported, not written
        if (rounds > 0) {
          const remaining = await catchUp(db, step, stepNo, decision, round + 1, runId, { count: true });
          if (remaining > 0) await tell(db, emit, { type: 'catch-up-left', runId, step: step.name, rounds, remaining });
        }
        break;
      }
      const added = await catchUp(db, step, stepNo, decision, round + 1, runId);
      await tell(db, emit, { type: 'catch-up', runId, step: step.name, round: round + 1, added });
      if (added === 0) break;
      round++;
      last = null;
      total += added;
      await db.query(NEXT_ROUND_SQL, [runId, stepNo, round]);
      await setStep(db, runId, stepNo, { rowsTotal: total });
      continue;
    }
    if (outcome.kind === 'rejected') {
      batchNo--;
      if (outcome.keys.length === 0) {
        emit({
          type: 'verification-failed',
          runId,
          step: step.name,
          batchNo: batchNo + 1,
          name: outcome.check,
          count: outcome.sample.length,
          sample: outcome.sample,
        });
        throw new VerificationError(
          `step "${step.name}": in-batch check ${outcome.check} returned rows without the key in batch ${batchNo + 1} [${outcome.lo}, ${outcome.hi}]; the batch was rolled back`,
          {
            step: step.name,
            check: outcome.check,
            batchNo: batchNo + 1,
            lo: outcome.lo,
            hi: outcome.hi,
            sample: outcome.sample,
            fix: `Return the key column (${t.key}) from the check, so that belay can leave the offending rows out instead of stopping.`,
          },
        );
      }
      await rejectRows(outcome.keys, `rejected:${outcome.check}`, outcome.sample);
      continue;
    }
    if (outcome.kind === 'violation') {
      // split down to the one row that breaks the constraint, which is then left out and reported
      batchNo--;
      const reason = `rejected:constraint ${outcome.error.server.constraint ?? outcome.error.server.sqlstate}`;
      if (outcome.rows > 1 && !inTx) {
        sizeBeforeSplit ??= size;
        size = Math.max(1, Math.floor(Math.min(size, outcome.rows) / 2));
        continue;
      }
      if (inTx) throw outcome.error;
      await rejectRows([outcome.lo], reason, [{ key: outcome.lo, error: outcome.error.message, detail: outcome.error.server.detail }]);
      // the row is out: the batches go on at the size they had (a fixed size has no sizer to grow it back)
      if (sizeBeforeSplit !== undefined) size = sizeBeforeSplit;
      sizeBeforeSplit = undefined;
      continue;
    }
    if (splits >= MAX_CEILING_SPLITS && ceiling !== undefined && outcome.ms > ceiling) {
      // even after MAX_CEILING_SPLITS halvings the batch ran past the ceiling: its cost does not shrink with
      // its size (a scan per batch, a lock wait), so cancelling would only repeat it for a while
      liftedUntil = performance.now() + CEILING_LIFT_MS;
      await tell(db, emit, {
        type: 'batch-ceiling-lifted',
        runId,
        stepNo,
        step: step.name,
        batchNo,
        rows: outcome.rows,
        durationMs: outcome.ms,
        ceilingMs: ceiling,
        forMs: CEILING_LIFT_MS,
      });
    }
    splits = 0;
    last = outcome.hi;
    rowsDone += outcome.rows;
    changedTotal += outcome.changed;
    skippedTotal += outcome.skipped;
    emit({
      type: 'batch-committed',
      runId,
      stepNo,
      step: step.name,
      batchNo,
      round,
      lo: outcome.lo,
      hi: outcome.hi,
      rowsInRange: outcome.rows,
      rowsChanged: outcome.changed,
      rowsSkipped: outcome.skipped,
      durationMs: outcome.ms,
      heldMs: outcome.heldMs,
      attempts: 1,
      rowsDone,
      rowsTotal: total,
    });
    if (outcome.skipped > 0) {
      await tell(db, emit, { type: 'rows-skipped', runId, step: step.name, batchNo, count: outcome.skipped, keys: outcome.skippedSample.map(String) });
    }
    const info: BatchRecord = {
      runId,
      stepNo,
      step: step.name,
      batchNo,
      round,
      lo: outcome.lo,
      hi: outcome.hi,
      rowsInRange: outcome.rows,
      rowsChanged: outcome.changed,
      rowsSkipped: outcome.skipped,
      xid: outcome.xid,
      durationMs: outcome.ms,
      heldMs: outcome.heldMs,
      attempts: 1,
      batchSize: size,
    };
    if (ctl.nextBatchSize) size = Math.max(1, Math.round(ctl.nextBatchSize(size, info)));
    const next = (await ctl.afterBatch?.(ctx, info)) ?? 'continue';
    if (next !== 'continue') {
      throw new AbortedError(`run ${runId} stopped after batch ${batchNo} of step "${step.name}" (${next})`, { decision: next, batchNo, step: step.name });
    }
  }
  await setStep(db, runId, stepNo, { status: 'done', finished: true });
  emit({ type: 'step-finished', runId, stepNo, step: step.name, rowsChanged: changedTotal, rowsSkipped: skippedTotal + rejectedTotal, batches: batchNo });
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
