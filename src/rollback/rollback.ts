// Exact undo: the undo log replayed in reverse order of steps and batches, one transaction per batch.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { BelayError, StateError } from '../errors.ts';
import { type EventSink, noopSink, recordEvent, tell } from '../state/events.ts';
import type { Migration } from '../spec/define.ts';
import { withRetry } from '../db/retry.ts';
import { acquireMigrationLock, type LockMode } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import { getRun, getSteps, setRunStatus } from '../state/runs.ts';
import { restoreBatchSql, UNDO_BATCHES_SQL } from './rollback-sql.ts';
import { reversibility, type StepReversibility } from './reversibility.ts';

export interface RollbackOptions {
  /** Overwrite rows that changed after the migration wrote them. */
  force?: boolean;
  lock?: LockMode;
  onEvent?: EventSink;
  maxRetries?: number;
  /** Undo everything else and leave SQL steps without a reverse (down: null) as they are. */
  skipIrreversible?: boolean;
}

export interface RollbackConflict {
  table: string;
  stepNo: number;
  batchNo: number;
  /** Keys of rows changed (or deleted) since the migration wrote them: left alone. */
  keys: unknown[];
}

export interface RollbackResult {
  runId: number;
  status: 'rolled_back' | 'nothing-to-do';
  restored: number;
  batches: number;
  conflicts: RollbackConflict[];
  conflictCount: number;
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
      return { runId, status: 'nothing-to-do', restored: 0, batches: 0, conflicts: [], conflictCount: 0, durationMs: 0, skippedIrreversible: [] };
    }
    const spec = fresh.spec as Migration;
    const steps = await getSteps(db, runId);
    // pre-scan: refuse before touching anything, not half-way through
    const irreversible = irreversibleApplied(spec, steps);
    if (irreversible.length > 0 && !opts.skipIrreversible) {
      const names = irreversible.map((s) => `"${s.name}"`).join(', ');
      throw new StateError('BELAY_IRREVERSIBLE', `run ${runId} applied ${irreversible.length === 1 ? 'step' : 'steps'} ${names}, which ${irreversible.length === 1 ? 'declares' : 'declare'} no reverse (down: null); nothing was rolled back`, {
        details: { runId, steps: irreversible.map((s) => s.name) },
        fix: `Restore the tables from the run's backup (belay rollback ${runId} --from-backup), or undo the rest and leave ${names} in place (--skip-irreversible).`,
      });
    }
    await setRunStatus(db, runId, 'rolling_back');

    const undo = await db.query<{ stepNo: number; batchNo: number; tableName: string; keyColumn: string; columns: string[]; rowCount: number }>(UNDO_BATCHES_SQL, [runId]);
    const rowsTotal = undo.rows.reduce((n, u) => n + u.rowCount, 0);
    await tell(db, emit, { type: 'rollback-started', runId, batches: undo.rows.length, rows: rowsTotal, force: !!opts.force });
    let restored = 0;
    let rowsDone = 0;
    const conflicts: RollbackConflict[] = [];
    // steps newest first; within a step, the batches newest first (the undo query orders them)
    for (let stepNo = steps.length - 1; stepNo >= 0; stepNo--) {
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
          await db.exec(step.down);
          await db.query(`UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = $1 AND step_no = $2`, [runId, stepNo]);
          await db.query('COMMIT');
        } catch (err) {
          await db.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
        continue;
      }
      for (const u of undo.rows.filter((x) => x.stepNo === stepNo)) {
        const sql = restoreBatchSql({ table: qualified(u.tableName), key: u.keyColumn, columns: u.columns });
        const r = await withRetry(
          async () => {
            await db.query('BEGIN');
            try {
              await db.query(`SELECT set_config('lock_timeout', $1, true)`, [`${spec.options?.lockTimeoutMs ?? 2000}ms`]);
              const res = await db.query<{ restored: number; conflicts: unknown[] }>(sql, [runId, stepNo, u.batchNo, !!opts.force]);
              await db.query('COMMIT');
              return res.rows[0] ?? { restored: 0, conflicts: [] };
            } catch (err) {
              await db.query('ROLLBACK').catch(() => undefined);
              throw err;
            }
          },
          { maxRetries: opts.maxRetries ?? 8 },
        );
        restored += r.restored;
        rowsDone += u.rowCount;
        if (r.conflicts.length > 0) conflicts.push({ table: u.tableName, stepNo, batchNo: u.batchNo, keys: r.conflicts });
        emit({ type: 'rollback-batch', runId, step: step.name, batchNo: u.batchNo, restored: r.restored, conflicts: r.conflicts.length, rowsDone, rowsTotal });
      }
      await db.query(`UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = $1 AND step_no = $2`, [runId, stepNo]);
    }
    const conflictCount = conflicts.reduce((n, c) => n + c.keys.length, 0);
    const skippedIrreversible = irreversible.map((s) => s.name);
    await setRunStatus(db, runId, 'rolled_back', { summary: { rollback: { restored, conflictCount, force: !!opts.force, skippedIrreversible } } });
    await tell(db, emit, { type: 'rollback-finished', runId, restored, conflicts: conflictCount, status: 'rolled_back', sample: conflicts.slice(0, 20) });
    return { runId, status: 'rolled_back', restored, batches: undo.rows.length, conflicts, conflictCount, durationMs: performance.now() - t0, skippedIrreversible };
  } catch (err) {
    if (err instanceof BelayError) await recordEvent(db, { type: 'rollback-failed', runId, error: err.toJSON() }).catch(() => undefined);
    throw err;
  } finally {
    await release();
  }
}

/** Applied SQL steps without a reverse: what a rollback cannot undo. */
export function irreversibleApplied(spec: Pick<Migration, 'steps'>, steps: ReadonlyArray<{ stepNo: number; status: string }>): StepReversibility[] {
  return reversibility(spec).irreversible.filter((s) => steps[s.stepNo]?.status === 'done');
}
