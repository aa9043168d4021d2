// Exact undo: every committed batch's before-images put back (from the step's decision), newest first, one
// transaction per batch, only on the row versions the batch wrote.
import type { Db } from '../db/connection.ts';
import { BelayError, isCancelled, StateError } from '../errors.ts';
import { type EventSink, noopSink, recordEvent, tell } from '../state/events.ts';
import type { Migration } from '../spec/define.ts';
import { withRetry } from '../db/retry.ts';
import { acquireMigrationLock, type LockMode } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import {
  BATCHES_TO_UNDO_SQL,
  getRun,
  getSteps,
  MARK_BATCH_UNDONE_SQL,
  MARK_STEP_UNDONE_SQL,
  ROWS_TO_UNDO_SQL,
  setRunStatus,
  UNDO_TOTALS_SQL,
} from '../state/runs.ts';
import { decisionDropped, dropFence, storedDecision } from '../state/decision.ts';
import { fenceNames, lockBatchRowsSql, restoreBatchSql, WRITER_SQL } from '../state/decision-sql.ts';
import { resolveStep } from '../spec/resolve.ts';
import { REPLICA_ROLE_SQL, SET_LOCK_TIMEOUT_SQL } from './rollback-sql.ts';
import { reversibility, type StepReversibility } from './reversibility.ts';

export interface RollbackOptions {
  /** Overwrite rows that changed after the migration wrote them. */
  force?: boolean;
  lock?: LockMode;
  onEvent?: EventSink;
  maxRetries?: number;
  /** Undo everything else and leave SQL steps without a reverse (down: null) as they are. */
  skipIrreversible?: boolean;
  /**
   * Stops the rollback when aborted (the CLI aborts it on Ctrl-C and SIGTERM): the batch in flight commits
   * (or, cancelled, rolls back), the run stays rolling_back and the result is 'interrupted'; rollback again finishes it.
   */
  signal?: AbortSignal;
}

export interface RollbackConflict {
  table: string;
  stepNo: number;
  batchNo: number;
  /** Keys of rows someone wrote after the migration did (of any value): left alone unless forced. */
  keys: unknown[];
  /** Keys of rows deleted since the migration wrote them: nothing to restore them into. */
  deleted: unknown[];
}

export interface RollbackResult {
  runId: number;
  /** interrupted: stopped by options.signal part-way, the run left rolling_back (belay rollback <run> finishes it). */
  status: 'rolled_back' | 'nothing-to-do' | 'interrupted';
  restored: number;
  batches: number;
  conflicts: RollbackConflict[];
  /** Rows left alone: changed since (conflicts) and deleted since, over every rollback invocation of the run. */
  conflictCount: number;
  /** Rows someone wrote after the migration did: --force overwrites them. */
  changedCount: number;
  /** Rows deleted since the migration wrote them: no rollback of the undo log brings them back (--force neither); the run's backup holds them. */
  deletedCount: number;
  durationMs: number;
  /** Irreversible SQL steps left in place (only with skipIrreversible). */
  skippedIrreversible: string[];
}

export async function rollback(db: Db, runId: number, opts: RollbackOptions = {}): Promise<RollbackResult> {
  const emit = opts.onEvent ?? noopSink;
  const t0 = performance.now();
  await ensureState(db);
  const run = await getRun(db, runId);
  const release = await acquireMigrationLock(db, run.migrationId, opts.lock ?? 'fail');
  try {
    const fresh = await getRun(db, runId);
    if (fresh.status === 'rolled_back') {
      return {
        runId,
        status: 'nothing-to-do',
        restored: 0,
        batches: 0,
        conflicts: [],
        conflictCount: 0,
        changedCount: 0,
        deletedCount: 0,
        durationMs: 0,
        skippedIrreversible: [],
      };
    }
    const spec = fresh.spec as Migration;
    const steps = await getSteps(db, runId);
    // pre-scan: refuse before touching anything, not half-way through
    const irreversible = irreversibleApplied(spec, steps);
    if (irreversible.length > 0 && !opts.skipIrreversible) {
      const names = irreversible.map((s) => `"${s.name}"`).join(', ');
      throw new StateError(
        'BELAY_IRREVERSIBLE',
        `run ${runId} applied ${irreversible.length === 1 ? 'step' : 'steps'} ${names}, which ${irreversible.length === 1 ? 'declares' : 'declare'} no reverse (down: null); nothing was rolled back`,
        {
          details: { runId, steps: irreversible.map((s) => s.name) },
          fix: `Restore the tables from the run's backup (belay rollback ${runId} --from-backup), or undo the rest and leave ${names} in place (--skip-irreversible).`,
        },
      );
    }
    await setRunStatus(db, runId, 'rolling_back');

    const pending = (await db.query<{ batches: number; rows: number }>(ROWS_TO_UNDO_SQL, [runId])).rows[0]!;
    await tell(db, emit, { type: 'rollback-started', runId, batches: pending.batches, rows: pending.rows, force: !!opts.force });
    let rowsDone = 0;
    let batchesDone = 0;
    const conflicts: RollbackConflict[] = [];
    // a statement cancelled by the second Ctrl-C rolled back with its transaction: the rollback stops there
    let cut = false;
    const stop = () => {
      cut = !!opts.signal?.aborted;
      return cut;
    };
    const stopped = (err: unknown): undefined => {
      if (opts.signal?.aborted && isCancelled(err) && stop()) return undefined;
      throw err;
    };
    // steps newest first; within a step, the batches newest first
    undo: for (let stepNo = steps.length - 1; stepNo >= 0; stepNo--) {
      if (stop()) break;
      const step = spec.steps[stepNo]!;
      const rec = steps[stepNo]!;
      if (step.kind === 'sql') {
        if (rec.status !== 'done') continue;
        if (step.down === null) {
          await tell(db, emit, { type: 'rollback-step-kept', runId, step: step.name, reason: 'irreversible' });
          continue;
        }
        await db.query('BEGIN');
        try {
          await db.query(WRITER_SQL, [String(runId)]);
          await db.exec(step.down);
          await db.query(MARK_STEP_UNDONE_SQL, [runId, stepNo]);
          await db.query('COMMIT');
        } catch (err) {
          await db.query('ROLLBACK').catch(() => undefined);
          stopped(err);
          break;
        }
        continue;
      }
      const batches = (
        await db.query<{ batchNo: number; lo: string; hi: string; round: number; xid: string | null; rowsChanged: number }>(BATCHES_TO_UNDO_SQL, [
          runId,
          stepNo,
        ])
      ).rows;
      if (batches.length > 0) {
        const d = await storedDecision(db, runId, stepNo, await resolveStep(db, step, stepNo));
        if (!d && (await decisionDropped(db, runId, stepNo))) throw droppedDecision(runId, step.name);
        if (!d || batches.some((b) => b.xid === null)) throw legacyRun(runId);
        const sql = restoreBatchSql(d, d.fence ? fenceNames(runId, stepNo).table : undefined);
        for (const b of batches) {
          // PGlite answers without I/O: a turn of the event loop lets a signal's handler run between its batches
          if (opts.signal) await new Promise((r) => setImmediate(r));
          if (stop()) break undo;
          const r = await withRetry(
            async () => {
              await db.query('BEGIN');
              try {
                await db.query(SET_LOCK_TIMEOUT_SQL, [`${spec.options?.lockTimeoutMs ?? 2000}ms`]);
                await db.query(WRITER_SQL, [String(runId)]);
                if (step.disableUserTriggers) await db.query(REPLICA_ROLE_SQL);
                if (d.fence) await db.query(lockBatchRowsSql(d), [b.lo, b.hi, b.round]);
                const res = (
                  await db.query<{ restored: number; changed: unknown[]; deleted: unknown[] }>(sql, [b.lo, b.hi, b.round, b.xid, !!opts.force, runId])
                ).rows[0]!;
                await db.query(MARK_BATCH_UNDONE_SQL, [runId, stepNo, b.batchNo, res.restored, JSON.stringify({ changed: res.changed, deleted: res.deleted })]);
                await db.query('COMMIT');
                return res;
              } catch (err) {
                await db.query('ROLLBACK').catch(() => undefined);
                throw err;
              }
            },
            { maxRetries: opts.maxRetries ?? 8 },
          ).catch(stopped);
          if (!r) break undo;
          rowsDone += b.rowsChanged;
          batchesDone++;
          if (r.changed.length > 0 || r.deleted.length > 0)
            conflicts.push({ table: d.tableName, stepNo, batchNo: b.batchNo, keys: r.changed, deleted: r.deleted });
          emit({
            type: 'rollback-batch',
            runId,
            step: step.name,
            batchNo: b.batchNo,
            restored: r.restored,
            conflicts: r.changed.length + r.deleted.length,
            rowsDone,
            rowsTotal: pending.rows,
          });
        }
      }
      await db.query(MARK_STEP_UNDONE_SQL, [runId, stepNo]);
      // the step is undone: nobody's writes need recording for it any more
      const live = await storedDecision(db, runId, stepNo, await resolveStep(db, step, stepNo));
      if (live?.fence) await dropFence(db, live, runId, stepNo);
    }
    // totals over every invocation: a resumed rollback counts what the earlier ones restored too
    const totals = (await db.query<{ restored: number; changed: number; deleted: number }>(UNDO_TOTALS_SQL, [runId])).rows[0]!;
    const conflictCount = totals.changed + totals.deleted;
    const skippedIrreversible = irreversible.map((s) => s.name);
    const result = (status: RollbackResult['status']): RollbackResult => ({
      runId,
      status,
      restored: totals.restored,
      batches: batchesDone,
      conflicts,
      conflictCount,
      changedCount: totals.changed,
      deletedCount: totals.deleted,
      durationMs: performance.now() - t0,
      skippedIrreversible,
    });
    if (cut) {
      // the run stays rolling_back: apply refuses it, rollback goes on from the newest batch not undone
      const by = typeof opts.signal?.reason === 'string' ? opts.signal.reason : 'a signal';
      await tell(db, emit, { type: 'rollback-interrupted', runId, signal: by, batches: batchesDone, rowsDone });
      return result('interrupted');
    }
    await setRunStatus(db, runId, 'rolled_back', {
      summary: {
        rollback: {
          by: 'undo',
          restored: totals.restored,
          conflictCount,
          changed: totals.changed,
          deleted: totals.deleted,
          force: !!opts.force,
          skippedIrreversible,
        },
      },
    });
    await tell(db, emit, {
      type: 'rollback-finished',
      runId,
      restored: totals.restored,
      conflicts: conflictCount,
      changed: totals.changed,
      deleted: totals.deleted,
      status: 'rolled_back',
      sample: conflicts.slice(0, 20),
    });
    return result('rolled_back');
  } catch (err) {
    if (err instanceof BelayError) await recordEvent(db, { type: 'rollback-failed', runId, error: err.toJSON() }).catch(() => undefined);
    throw err;
  } finally {
    await release();
  }
}

/** A run recorded by a belay whose undo log kept images as JSON (state before version 8). */
function droppedDecision(runId: number, step: string): StateError {
  return new StateError(
    'BELAY_DECISION_DROPPED',
    `run ${runId}: the decision of step "${step}" (its before-images) was dropped by belay cleanup; nothing was rolled back`,
    {
      details: { runId, step },
      fix: `Restore the tables from the backup (belay rollback ${runId} --from-backup), or write the reverse as a new migration.`,
    },
  );
}

function legacyRun(runId: number): StateError {
  return new StateError(
    'BELAY_LEGACY_UNDO',
    `run ${runId} was applied by an earlier belay whose undo log this version does not replay; nothing was rolled back`,
    {
      details: { runId },
      fix: `Roll it back with the belay version that applied it, or restore its tables from the backup (belay rollback ${runId} --from-backup).`,
    },
  );
}

/** Applied SQL steps without a reverse: what a rollback cannot undo. */
export function irreversibleApplied(spec: Pick<Migration, 'steps'>, steps: ReadonlyArray<{ stepNo: number; status: string }>): StepReversibility[] {
  return reversibility(spec).irreversible.filter((s) => steps[s.stepNo]?.status === 'done');
}
