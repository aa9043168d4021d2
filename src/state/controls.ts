// Control of a running apply from anywhere the database is reachable: a command is a row of belay.controls,
// written by \`belay pause | resume | abort | tune\`, taken by the running apply between two batches (it polls
// the table, one indexed query a batch) and marked seen. Who asked and when stays recorded with the run.
import { isoUtc } from '../db/sql.ts';
import type { Db } from '../db/connection.ts';

export type ControlCommand = 'pause' | 'resume' | 'abort' | 'abort-rollback' | 'tune';

/** What belay tune may change in a running apply (absent: unchanged; null: that throttle condition off). */
export interface TuneSettings {
  targetMs?: number;
  maxLockWaiters?: number | null;
  maxTransactionAgeMs?: number | null;
  maxReplicationLagMs?: number | null;
}

/** Who asked: the database's view (role, application, address) and the asking process's (OS user, host). */
export interface Asker {
  role?: string;
  application?: string;
  address?: string | null;
  osUser?: string;
  host?: string;
}

export interface Control {
  id: number;
  command: ControlCommand;
  settings: TuneSettings;
  requestedBy: Asker;
  requestedAt: string;
}

const REQUEST_SQL = `INSERT INTO belay.controls (run_id, command, settings, requested_by)
SELECT $1, $2, $3::jsonb, $4::jsonb || jsonb_build_object('role', current_user::text,
       'application', current_setting('application_name'), 'address', inet_client_addr()::text)
RETURNING id, command, settings, requested_by AS "requestedBy", ${isoUtc('requested_at')} AS "requestedAt"`;

/** Oldest first; each is marked seen as it is taken (in the same statement). */
const TAKE_SQL = `UPDATE belay.controls SET seen_at = clock_timestamp()
 WHERE id IN (SELECT id FROM belay.controls WHERE run_id = $1 AND seen_at IS NULL ORDER BY id FOR UPDATE SKIP LOCKED)
RETURNING id, command, settings, requested_by AS "requestedBy", ${isoUtc('requested_at')} AS "requestedAt"`;

export async function requestControl(db: Db, runId: number, command: ControlCommand, settings: TuneSettings, asker: Asker): Promise<Control> {
  return (await db.query<Control>(REQUEST_SQL, [runId, command, JSON.stringify(settings), JSON.stringify(asker)])).rows[0]!;
}

/** The commands for this run not taken yet, oldest first; they are taken (marked seen) by this call. */
export async function takeControls(db: Db, runId: number): Promise<Control[]> {
  const rows = (await db.query<Control>(TAKE_SQL, [runId])).rows;
  return rows.sort((a, b) => Number(a.id) - Number(b.id));
}
