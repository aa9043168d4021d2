// Reads and writes of belay's run records. All SQL on schema belay's run tables is here.
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import { type RunSummary, SUMMARY_VERSION } from './summary.ts';

export type RunStatus = 'running' | 'completed' | 'failed' | 'paused' | 'rolling_back' | 'rolled_back';

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
}

const RUN_COLS = `id::int AS id, migration_id AS "migrationId", checksum, params, spec, file, mode, status,
  started_at::text AS "startedAt", finished_at::text AS "finishedAt", error, summary`;
const STEP_COLS = `run_id::int AS "runId", step_no AS "stepNo", name, kind, status, rows_total::float8 AS "rowsTotal",
  rows_done::float8 AS "rowsDone", rows_changed::float8 AS "rowsChanged", last_key AS "lastKey"`;

export async function createRun(db: Db, r: { migrationId: string; checksum: string; params: object; spec: object; file: string; mode: string;
  steps: ReadonlyArray<{ name: string; kind: string }> }): Promise<number> {
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
    [runId, status, finished, extra.error === undefined ? 'keep' : 'set', extra.error ? JSON.stringify(extra.error) : null, JSON.stringify(extra.summary ?? {}), SUMMARY_VERSION],
  );
}

export async function setStep(db: Db, runId: number, stepNo: number, fields: { status?: string; rowsTotal?: number; started?: boolean; finished?: boolean }): Promise<void> {
  await db.query(
    `UPDATE belay.steps SET status = coalesce($3, status), rows_total = coalesce($4, rows_total),
       started_at = CASE WHEN $5 AND started_at IS NULL THEN clock_timestamp() ELSE started_at END,
       finished_at = CASE WHEN $6 THEN clock_timestamp() ELSE finished_at END
     WHERE run_id = $1 AND step_no = $2`,
    [runId, stepNo, fields.status ?? null, fields.rowsTotal ?? null, fields.started ?? false, fields.finished ?? false],
  );
}

export interface BatchRecord {
  stepNo: number;
  batchNo: number;
  lo: string;
  hi: string;
  rowsInRange: number;
  rowsChanged: number;
  durationMs: number;
  attempts: number;
  committedAt: string;
}

export async function getBatches(db: Db, runId: number): Promise<BatchRecord[]> {
  const r = await db.query<BatchRecord>(
    `SELECT step_no AS "stepNo", batch_no AS "batchNo", lo, hi, rows_in_range AS "rowsInRange", rows_changed AS "rowsChanged",
            duration_ms::float8 AS "durationMs", attempts, committed_at::text AS "committedAt"
       FROM belay.batches WHERE run_id = $1 ORDER BY step_no, batch_no`,
    [runId],
  );
  return r.rows;
}
