// Carries a migration out: run record, lock, steps in order, batches with checkpoints and undo log.
// Returns a result instead of throwing half-way: what ran, what changed, and the error that stopped it.
import type { Db } from '../db/connection.ts';
import { AbortedError, BelayError, DbError, LockedError, serverFields, StateError, VerificationError } from '../errors.ts';
import { type EventOf, type EventSink, isolated, recordEvent, tell } from '../state/events.ts';
import type { BatchedStep, Migration, SqlStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { acquireMigrationLock, type LockMode } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import { createRun, getSteps, latestRun, setRunStatus, setStep, type StepRecord } from '../state/runs.ts';
import { mergeSummary, readSummary } from '../state/summary.ts';
import { applyBatchSql, boundsSql, CHECKPOINT_SQL, countSql, SET_STATEMENT_TIMEOUT_SQL, SET_TIMEOUTS_SQL, verifyBatchSql } from './batch-sql.ts';
import { withRetry } from '../db/retry.ts';
import type { BatchController, BatchRecord, RunContext, RunResult, Stage, StepResult } from '../run/contract.ts';
import { resolveStep, tableCounts, type StepTarget } from '../spec/resolve.ts';
import { composeControllers } from './compose.ts';

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
    const batches = await db.query<{ step_no: number; n: number }>(`SELECT step_no, count(*)::int AS n FROM belay.batches WHERE run_id = $1 GROUP BY step_no`, [runId]);
    for (const b of batches.rows) steps[b.step_no]!.batches = b.n;
    return { runId, migrationId: spec.id, status, resumed, durationMs, steps, counts: { before: countsBefore, after: countsAfter }, error };
  } finally {
    await release();
  }
}

async function startOrResume(db: Db, m: LoadedMigration, opts: ApplyOptions, emit: EventSink): Promise<{ runId: number; resumed: boolean }> {
  const last = await latestRun(db, m.spec.id);
  if (last && ['running', 'failed', 'paused'].includes(last.status)) {
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
    migrationId: m.spec.id, checksum: m.checksum, params: m.params, spec: m.spec, file: m.file,
    mode: opts.mode ?? m.spec.options.mode, steps: m.spec.steps,
  });
  return { runId, resumed: false };
}

async function runStep(ctx: RunContext, stepNo: number, step: Migration['steps'][number], ctl: BatchController, opts: ApplyOptions, inTx = false): Promise<void> {
  const rec = (await getSteps(ctx.db, ctx.runId))[stepNo]!;
  if (rec.status === 'done') return;
  if (step.kind === 'sql') return runSqlStep(ctx, stepNo, step, rec, inTx);
  return runBatchedStep(ctx, stepNo, step, rec, ctl, opts, inTx);
}

async function runSqlStep(ctx: RunContext, stepNo: number, step: SqlStep, _rec: StepRecord, inTx: boolean): Promise<void> {
  const { db, runId } = ctx;
  ctx.emit({ type: 'step-started', runId, stepNo, step: step.name, kind: 'sql', rowsTotal: 0, rowsDone: 0 });
  await setStep(db, runId, stepNo, { status: 'running', started: true });
  if (!inTx) await db.query('BEGIN');
  try {
    await db.exec(step.up);
    // the step's completion commits with its effect, so a crash never runs it twice
    await setStep(db, runId, stepNo, { status: 'done', finished: true });
    if (!inTx) await db.query('COMMIT');
  } catch (err) {
    if (!inTx) await db.query('ROLLBACK').catch(() => undefined);
    throw err instanceof DbError ? new DbError(err.server.detail ? `${err.message} (${err.server.detail})` : err.message, err.server, { context: `step "${step.name}"`, cause: err }) : err;
  }
  ctx.emit({ type: 'step-finished', runId, stepNo, step: step.name, rowsChanged: 0, batches: 0 });
}

async function runBatchedStep(ctx: RunContext, stepNo: number, step: BatchedStep, rec: StepRecord, ctl: BatchController, opts: ApplyOptions, inTx: boolean): Promise<void> {
  const { db, runId, migration, emit } = ctx;
  const o = migration.spec.options;
  const t = await resolveStep(db, step, stepNo);
  let size = opts.batchSize ?? step.batchSize ?? o.batchSize;
  const total = Number((await db.query<{ n: number }>(countSql(t))).rows[0]!.n);
  await setStep(db, runId, stepNo, { status: 'running', rowsTotal: total, started: true });
  const nb = await db.query<{ n: number }>(`SELECT coalesce(max(batch_no), 0)::int AS n FROM belay.batches WHERE run_id = $1 AND step_no = $2`, [runId, stepNo]);
  let batchNo = nb.rows[0]!.n;
  let last = rec.lastKey;
  let rowsDone = rec.rowsDone;
  let changedTotal = rec.rowsChanged;
  emit({ type: 'step-started', runId, stepNo, step: step.name, kind: 'batched', rowsTotal: total, rowsDone });
  const applySql = applyBatchSql(t, step.projection);
  const verifies = [
    ...(step.verify ? [{ name: `${step.name}.verify`, sql: verifyBatchSql(t, step.verify) }] : []),
    ...(ctl.guards?.(ctx, step, t) ?? []).map((g) => ({ name: g.name, sql: verifyBatchSql(t, g.sql) })),
  ];
  // the ceiling needs statement_timeout (PGlite never fires it) and a transaction per batch (in single
  // mode a cancel would undo the whole run); it is lifted for the step when one row cannot meet it
  const ceiling = db.kind === 'postgres' && !inTx ? ctl.batchCeilingMs : undefined;
  let liftedUntil = -Infinity;
  let splits = 0;
  for (;;) {
    await ctl.beforeBatch?.(ctx, step);
    batchNo++;
    let tried = 0;
    let attemptStart = 0;
    const thisCeiling = splits < MAX_CEILING_SPLITS && performance.now() >= liftedUntil ? ceiling : undefined;
    const outcome = await withRetry(
      async (attempt) => {
        attemptStart = performance.now();
        tried = 0;
        // each statement gets what is left of the ceiling; the user's statement_timeout still bounds it
        const timeout = () => `${thisCeiling === undefined ? o.statementTimeoutMs : Math.min(o.statementTimeoutMs, Math.max(1, Math.floor(thisCeiling - (performance.now() - attemptStart))))}ms`;
        // in single mode the run's one transaction wraps every batch; a failure rolls all of it back
        if (!inTx) await db.query('BEGIN');
        try {
          // lock_timeout, not only statement_timeout: a slow batch is fine, a blocked one is not
          await db.query(SET_TIMEOUTS_SQL, [`${o.lockTimeoutMs}ms`, timeout()]);
          const b = await db.query<{ lo: string | null; hi: string | null; n: number }>(boundsSql(t, last === null), last === null ? [null, size] : [last, size]);
          const { lo, hi, n } = b.rows[0]!;
          if (n === 0 || lo === null || hi === null) {
            if (!inTx) await db.query('ROLLBACK');
            return undefined;
          }
          tried = n;
          const r = await db.query<{ changed: number; duplicate_keys: number; out_of_range: number }>(applySql, [lo, hi, runId, stepNo, batchNo]);
          const { changed, duplicate_keys, out_of_range } = r.rows[0]!;
          if (duplicate_keys > 0 || out_of_range > 0) {
            throw new VerificationError(`step "${step.name}": the projection returned ${duplicate_keys > 0 ? `${duplicate_keys} duplicate keys` : `${out_of_range} keys outside [${lo}, ${hi}] or NULL`} in batch ${batchNo}`, {
              step: step.name, batchNo, lo, hi, fix: 'The projection must return each key of the range at most once and only keys in [$1, $2].',
            });
          }
          for (const check of verifies) {
            if (thisCeiling !== undefined) await db.query(SET_STATEMENT_TIMEOUT_SQL, [timeout()]);
            const v = await db.query(check.sql, [lo, hi, runId, stepNo, batchNo]);
            if (v.rows.length > 0) {
              emit({ type: 'verification-failed', runId, step: step.name, batchNo, name: check.name, count: v.rows.length, sample: v.rows.slice(0, 10) });
              throw new VerificationError(`step "${step.name}": in-batch check ${check.name} returned ${v.rows.length} row(s) in batch ${batchNo} [${lo}, ${hi}]; the batch was rolled back`, {
                step: step.name, check: check.name, batchNo, lo, hi, sample: v.rows.slice(0, 10),
              });
            }
          }
          const ms = performance.now() - attemptStart;
          if (thisCeiling !== undefined) await db.query(SET_STATEMENT_TIMEOUT_SQL, [timeout()]);
          await db.query(CHECKPOINT_SQL, [runId, stepNo, batchNo, lo, hi, n, changed, ms, attempt]);
          if (!inTx) await db.query('COMMIT');
          return { lo, hi, n, changed, ms, heldMs: performance.now() - attemptStart, attempt };
        } catch (err) {
          if (!inTx) await db.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
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
      const over = { stepNo, step: step.name, batchNo, rows: tried || size, elapsedMs: performance.now() - attemptStart, ceilingMs: thisCeiling! };
      const sample: BatchRecord = { runId, stepNo, step: step.name, batchNo, lo: '', hi: '', rowsInRange: over.rows, rowsChanged: 0, durationMs: over.elapsedMs, attempts: 1, batchSize: size };
      const next = Math.max(1, Math.min(Math.floor(size / 2), Math.round(ctl.nextBatchSize?.(size, sample) ?? size)));
      splits = next === size ? MAX_CEILING_SPLITS : splits + 1;
      size = next;
      batchNo--;
      await tell(db, emit, { type: 'batch-over-ceiling', runId, ...over, nextSize: size });
      continue;
    }
    if (!outcome) break;
    if (splits >= MAX_CEILING_SPLITS && ceiling !== undefined && outcome.ms > ceiling) {
      // even after MAX_CEILING_SPLITS halvings the batch ran past the ceiling: its cost does not shrink with
      // its size (a scan per batch, a lock wait), so cancelling would only repeat it for a while
      liftedUntil = performance.now() + CEILING_LIFT_MS;
      await tell(db, emit, { type: 'batch-ceiling-lifted', runId, stepNo, step: step.name, batchNo, rows: outcome.n, durationMs: outcome.ms, ceilingMs: ceiling, forMs: CEILING_LIFT_MS });
    }
    splits = 0;
    last = outcome.hi;
    rowsDone += outcome.n;
    changedTotal += outcome.changed;
    emit({
      type: 'batch-committed', runId, stepNo, step: step.name, batchNo, lo: outcome.lo, hi: outcome.hi, rowsInRange: outcome.n,
      rowsChanged: outcome.changed, durationMs: outcome.ms, heldMs: outcome.heldMs, attempts: outcome.attempt, rowsDone, rowsTotal: total,
    });
    const info: BatchRecord = {
      runId, stepNo, step: step.name, batchNo, lo: outcome.lo, hi: outcome.hi, rowsInRange: outcome.n, rowsChanged: outcome.changed,
      durationMs: outcome.ms, attempts: outcome.attempt, batchSize: size,
    };
    if (ctl.nextBatchSize) size = Math.max(1, Math.round(ctl.nextBatchSize(size, info)));
    const decision = (await ctl.afterBatch?.(ctx, info)) ?? 'continue';
    if (decision !== 'continue') {
      throw new AbortedError(`run ${runId} stopped after batch ${batchNo} of step "${step.name}" (${decision})`, { decision, batchNo, step: step.name });
    }
  }
  await setStep(db, runId, stepNo, { status: 'done', finished: true });
  emit({ type: 'step-finished', runId, stepNo, step: step.name, rowsChanged: changedTotal, batches: batchNo - 1 });
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
    await db.query(`UPDATE belay.steps SET status = 'pending', last_key = NULL, rows_done = 0, rows_changed = 0 WHERE run_id = $1`, [ctx.runId]);
    throw err;
  }
}

function stepResult(s: StepRecord): StepResult {
  return { name: s.name, kind: s.kind, status: s.status, rowsTotal: s.rowsTotal, rowsDone: Number(s.rowsDone), rowsChanged: Number(s.rowsChanged), batches: 0 };
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
