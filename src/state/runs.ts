// Reads and writes of belay's run records. All SQL on schema belay's run tables is here.
import { isoUtc } from '../db/sql.ts';
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import { type RunSummary, SUMMARY_VERSION } from './summary.ts';

/** abandoned: stopped before its first write and superseded by a run of a changed migration. */
export type RunStatus = 'running' | 'completed' | 'failed' | 'paused' | 'rolling_back' | 'rolled_back' | 'abandoned';

export interface RunRecord {
  id: number;
  migrationId: string;
  checksum: string;
  params: Record<string, string>;
  spec: unknown;
  file: string | null;
  mode: string;
  status: RunStatus;
  startedAt: string;
  finishedAt: string | null;
  error: Record<string, unknown> | null;
  summary: RunSummary;
}

export interface StepRecord {
  runId: number;
  stepNo: number;
  name: string;
  kind: 'batched' | 'sql';
  status: 'pending' | 'running' | 'done' | 'rolled_back';
  rowsTotal: number | null;
  rowsDone: number;
  rowsChanged: number;
  lastKey: string | null;
  /** The round of the decision the step is in (0, then catch-up rounds). */
  round: number;
}

const RUN_COLS = `id::int AS id, migration_id AS "migrationId", checksum, params, spec, file, mode, status,
  ${isoUtc('started_at')} AS "startedAt", ${isoUtc('finished_at')} AS "finishedAt", error, summary`;
const STEP_COLS = `run_id::int AS "runId", step_no AS "stepNo", name, kind, status, rows_total::float8 AS "rowsTotal",
  rows_done::float8 AS "rowsDone", rows_changed::float8 AS "rowsChanged", last_key AS "lastKey", round`;

export async function createRun(
  db: Db,
  r: { migrationId: string; checksum: string; params: object; spec: object; file: string; mode: string; steps: ReadonlyArray<{ name: string; kind: string }> },
): Promise<number> {
  const res = await db.query<{ id: number }>(
    `INSERT INTO belay.runs (migration_id, checksum, params, spec, file, mode, status)
     VALUES ($1, $2, $3::jsonb, $4::jsonb, $5, $6, 'running') RETURNING id::int AS id`,
    [r.migrationId, r.checksum, JSON.stringify(r.params), JSON.stringify(r.spec), r.file, r.mode],
  );
  const id = res.rows[0]!.id;
  for (const [i, s] of r.steps.entries()) {
    await db.query(`INSERT INTO belay.steps (run_id, step_no, name, kind, status) VALUES ($1, $2, $3, $4, 'pending')`, [id, i, s.name, s.kind]);
  }
  return id;
}

export async function getRun(db: Db, runId: number): Promise<RunRecord> {
  const r = await db.query<RunRecord>(`SELECT ${RUN_COLS} FROM belay.runs WHERE id = $1`, [runId]);
  if (!r.rows[0]) throw new StateError('BELAY_NO_RUN', `run ${runId} not found`, { fix: 'List runs with belay status.' });
  return r.rows[0];
}

/** The newest run of a migration, or undefined. */
/** Whether a run wrote anything: a committed batch, or a plain-SQL step that ran. */
export const RUN_HAS_WRITTEN_SQL = `SELECT EXISTS (SELECT 1 FROM belay.batches WHERE run_id = $1)
    OR EXISTS (SELECT 1 FROM belay.steps WHERE run_id = $1 AND kind = 'sql' AND status IN ('done', 'rolled_back')) AS wrote`;

export async function latestRun(db: Db, migrationId: string): Promise<RunRecord | undefined> {
  const r = await db.query<RunRecord>(`SELECT ${RUN_COLS} FROM belay.runs WHERE migration_id = $1 ORDER BY id DESC LIMIT 1`, [migrationId]);
  return r.rows[0];
}

export async function listRuns(db: Db, limit = 20): Promise<RunRecord[]> {
  const r = await db.query<RunRecord>(`SELECT ${RUN_COLS} FROM belay.runs ORDER BY id DESC LIMIT $1`, [limit]);
  return r.rows;
}

export async function getSteps(db: Db, runId: number): Promise<StepRecord[]> {
  const r = await db.query<StepRecord>(`SELECT ${STEP_COLS} FROM belay.steps WHERE run_id = $1 ORDER BY step_no`, [runId]);
  return r.rows;
}

export async function setRunStatus(db: Db, runId: number, status: RunStatus, extra: { error?: object | null; summary?: RunSummary } = {}): Promise<void> {
  const finished = status === 'running' || status === 'rolling_back' ? null : 'now';
  await db.query(
    `UPDATE belay.runs SET status = $2,
       finished_at = CASE WHEN $3::text IS NULL THEN NULL ELSE clock_timestamp() END,
       error = CASE WHEN $4::text = 'keep' THEN error ELSE $5::jsonb END,
       summary = summary || $6::jsonb || jsonb_build_object('summaryVersion', $7::int)
     WHERE id = $1`,
    [
      runId,
      status,
      finished,
      extra.error === undefined ? 'keep' : 'set',
      extra.error ? JSON.stringify(extra.error) : null,
      JSON.stringify(extra.summary ?? {}),
      SUMMARY_VERSION,
    ],
  );
}

export async function setStep(
  db: Db,
  runId: number,
  stepNo: number,
  fields: { status?: string; rowsTotal?: number; started?: boolean; finished?: boolean },
): Promise<void> {
  await db.query(
    `UPDATE belay.steps SET status = coalesce($3, status), rows_total = coalesce($4, rows_total),
       started_at = CASE WHEN $5 AND started_at IS NULL THEN clock_timestamp() ELSE started_at END,
       finished_at = CASE WHEN $6 THEN clock_timestamp() ELSE finished_at END
     WHERE run_id = $1 AND step_no = $2`,
    [runId, stepNo, fields.status ?? null, fields.rowsTotal ?? null, fields.started ?? false, fields.finished ?? false],
  );
}

export interface StoredBatch {
  stepNo: number;
  batchNo: number;
  lo: string;
  hi: string;
  rowsInRange: number;
  rowsChanged: number;
  rowsSkipped: number;
  round: number;
  /** The batch transaction's id (xid8 as text): the row version it wrote. */
  xid: string | null;
  durationMs: number;
  attempts: number;
  committedAt: string;
  rolledBackAt: string | null;
}

export async function getBatches(db: Db, runId: number): Promise<StoredBatch[]> {
  const r = await db.query<StoredBatch>(
    `SELECT step_no AS "stepNo", batch_no AS "batchNo", lo, hi, rows_in_range AS "rowsInRange", rows_changed AS "rowsChanged",
            rows_skipped AS "rowsSkipped", round, xid::text AS xid, duration_ms::float8 AS "durationMs", attempts,
            ${isoUtc('committed_at')} AS "committedAt", ${isoUtc('rolled_back_at')} AS "rolledBackAt"
       FROM belay.batches WHERE run_id = $1 ORDER BY step_no, batch_no`,
    [runId],
  );
  return r.rows;
}

/** A batch's checkpoint, committed in the same transaction as the batch: its range, counts, round and xid. */
export const CHECKPOINT_SQL = `WITH b AS (
  INSERT INTO belay.batches (run_id, step_no, batch_no, lo, hi, rows_in_range, rows_changed, duration_ms, attempts, round, xid, rows_skipped)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::xid8, $12) RETURNING run_id
)
UPDATE belay.steps SET last_key = $5, round = $10, rows_done = rows_done + $6, rows_changed = rows_changed + $7
 WHERE run_id = $1 AND step_no = $2`;

/** A round's batches are done: the next round starts from its first key. */
export const NEXT_ROUND_SQL = `UPDATE belay.steps SET round = $3, last_key = NULL WHERE run_id = $1 AND step_no = $2`;

/** The highest batch number of a step so far (batch numbers run on across rounds). */
export const LAST_BATCH_SQL = `SELECT coalesce(max(batch_no), 0)::int AS n FROM belay.batches WHERE run_id = $1 AND step_no = $2`;

/** Batches per step of a run. */
export const BATCH_COUNTS_SQL = `SELECT step_no, count(*)::int AS n FROM belay.batches WHERE run_id = $1 GROUP BY step_no`;

/** In single mode a failure rolled the checkpoints back with the work: the steps start afresh. */
export const RESET_STEPS_SQL = `UPDATE belay.steps SET status = 'pending', last_key = NULL, round = 0, rows_done = 0, rows_changed = 0 WHERE run_id = $1`;

/** A step's committed batches not rolled back yet, newest first (rollback's order). $1 run, $2 step. */
export const BATCHES_TO_UNDO_SQL = `SELECT batch_no AS "batchNo", lo, hi, round, xid::text AS xid, rows_changed AS "rowsChanged"
  FROM belay.batches WHERE run_id = $1 AND step_no = $2 AND rolled_back_at IS NULL ORDER BY batch_no DESC`;

/** Rows of the run's batches that rollback has to restore, over all steps. $1 run. */
export const ROWS_TO_UNDO_SQL = `SELECT count(*)::int AS batches, coalesce(sum(rows_changed), 0)::int AS rows
  FROM belay.batches WHERE run_id = $1 AND rolled_back_at IS NULL`;

/** A batch restored, in the transaction that restored it: its rollback's xid fences later steps' rows. */
export const MARK_BATCH_UNDONE_SQL = `UPDATE belay.batches SET rolled_back_at = clock_timestamp(), restored = $4, conflicts = $5::jsonb,
       rollback_xid = pg_current_xact_id()
 WHERE run_id = $1 AND step_no = $2 AND batch_no = $3`;

export const MARK_STEP_UNDONE_SQL = `UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = $1 AND step_no = $2`;

/** What rollbacks restored and left alone over a run's batches, all invocations together. $1 run. */
export const UNDO_TOTALS_SQL = `SELECT coalesce(sum(restored), 0)::int AS restored,
       coalesce(sum(jsonb_array_length(conflicts->'changed')), 0)::int AS changed,
       coalesce(sum(jsonb_array_length(conflicts->'deleted')), 0)::int AS deleted
  FROM belay.batches WHERE run_id = $1 AND rolled_back_at IS NOT NULL`;

/** Per step: the batches that wrote, the rows they wrote, and what rollbacks restored and left alone. $1 run. */
export const UNDO_BY_STEP_SQL = `SELECT b.step_no AS "stepNo", s.name AS step, count(*)::int AS batches, coalesce(sum(b.rows_changed), 0)::int AS rows,
       coalesce(sum(b.rows_skipped), 0)::int AS skipped, count(b.rolled_back_at)::int AS "rolledBack", coalesce(sum(b.restored), 0)::int AS restored,
       coalesce(sum(jsonb_array_length(coalesce(b.conflicts->'changed', '[]')) + jsonb_array_length(coalesce(b.conflicts->'deleted', '[]'))), 0)::int AS conflicts
  FROM belay.batches b JOIN belay.steps s ON s.run_id = b.run_id AND s.step_no = b.step_no
 WHERE b.run_id = $1 GROUP BY b.step_no, s.name ORDER BY b.step_no`;

/** After a restore from backup the batches are spent: marked undone (nothing restored row by row), and the steps. $1 run. */
export const MARK_RESTORED_FROM_BACKUP_SQL = [
  `UPDATE belay.batches SET rolled_back_at = clock_timestamp(), restored = 0 WHERE run_id = $1 AND rolled_back_at IS NULL`,
  `UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = $1 AND status IN ('done', 'running')`,
];

/** Where a run stopped: the step that was running, its last committed key and how many batches it committed. */
export const RUN_POSITION_SQL = `SELECT s.step_no AS "stepNo", s.name, s.last_key AS "lastKey",
       (SELECT count(*)::int FROM belay.batches b WHERE b.run_id = s.run_id AND b.step_no = s.step_no) AS committed
  FROM belay.steps s WHERE s.run_id = $1 AND s.status = 'running' ORDER BY s.step_no LIMIT 1`;

export const LOCK_RETRIES_SQL = `SELECT coalesce(sum(attempts - 1), 0)::int AS n FROM belay.batches WHERE run_id = $1`;

/** $1 = run id. Step timings from the step records. */
export const STEP_TIMINGS_SQL = `SELECT step_no AS "stepNo", name, kind, status, rows_total::float8 AS "rowsTotal", rows_done::float8 AS "rowsDone",
       rows_changed::float8 AS "rowsChanged", ${isoUtc('started_at')} AS "startedAt", ${isoUtc('finished_at')} AS "finishedAt",
       (extract(epoch FROM finished_at - started_at) * 1000)::float8 AS "durationMs"
  FROM belay.steps WHERE run_id = $1 ORDER BY step_no`;

// ---- parallel key-range workers (apply --workers N) ------------------------------------------------------

/** A stored split of a step's round: worker i walks the keys after afterKey up to upperKey, from its lastKey on. */
export interface KeyRange {
  worker: number;
  afterKey: string | null;
  upperKey: string | null;
  lastKey: string | null;
  done: boolean;
}

/** The split of a round, in key order. $1 run, $2 step, $3 round. */
export const RANGES_SQL = `SELECT worker, after_key AS "afterKey", upper_key AS "upperKey", last_key AS "lastKey", done
  FROM belay.ranges WHERE run_id = $1 AND step_no = $2 AND round = $3 ORDER BY worker`;

/** One range of a new split. $1 run, $2 step, $3 round, $4 worker, $5 after, $6 upper. */
export const INSERT_RANGE_SQL = `INSERT INTO belay.ranges (run_id, step_no, round, worker, after_key, upper_key) VALUES ($1, $2, $3, $4, $5, $6)`;

/** A worker's checkpoint, in its batch's transaction (next to CHECKPOINT_SQL). $1 run, $2 step, $3 round, $4 worker, $5 hi. */
export const RANGE_CHECKPOINT_SQL = `UPDATE belay.ranges SET last_key = $5 WHERE run_id = $1 AND step_no = $2 AND round = $3 AND worker = $4`;

/** A worker found no decided key left in its range. $1 run, $2 step, $3 round, $4 worker. */
export const RANGE_DONE_SQL = `UPDATE belay.ranges SET done = true WHERE run_id = $1 AND step_no = $2 AND round = $3 AND worker = $4`;
