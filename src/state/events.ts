// Typed events: progress bars, logs, --json output and reports listen to these instead of stages
// printing. Every event a run emits is a member of this one union; reports and tests read its fields.
// Those that tell a run's story are also recorded in belay.events (recordEvent), with the same fields.
import type { Db } from '../db/connection.ts';
import type { FiredTrigger } from './summary.ts';

type Err = Record<string, unknown>;

export type BelayEvent =
  // the run
  | { type: 'run-started'; runId: number; migrationId: string; checksum: string; resumed: boolean; mode: string }
  /** A command from belay pause | resume | abort | tune, taken by the running apply between two batches. */
  | {
      type: 'control-taken';
      runId: number;
      command: import('./controls.ts').ControlCommand;
      settings: import('./controls.ts').TuneSettings;
      requestedBy: import('./controls.ts').Asker;
      requestedAt: string;
    }
  /** A run that stopped before its first write, superseded by a run of the changed migration. */
  | { type: 'run-abandoned'; runId: number; previousStatus: string }
  | { type: 'run-resumed'; runId: number; previousStatus: string }
  | { type: 'run-finished'; runId: number; status: string; durationMs: number; error?: Err }
  | { type: 'listener-failed'; runId?: number; event: string; message: string }
  // check
  | { type: 'checks-finished'; runId?: number; ok: boolean; blocking: string[]; counts: Record<string, number>; durationMs: number }
  | { type: 'checks-skipped'; runId: number }
  // backup
  | {
      type: 'backup-taken';
      runId?: number;
      backupId: number;
      table: string;
      copy: string;
      rows: number | null;
      checksum: string | null;
      sizeBytes: number | null;
      file: string | null;
      sha256: string | null;
    }
  | { type: 'backup-kept'; runId: number; backupId: number; table: string; copy: string; rows: number | null }
  | { type: 'backups-verified'; runId: number; count: number; durationMs: number; sourcesReadBy: string }
  | { type: 'backup-failed'; runId: number; error: Err }
  | { type: 'backup-dropped'; runId: number; backupId: number; copy: string }
  /** The verified copies' files could not be written: the backups are unverified until exported again. */
  | { type: 'backup-export-failed'; runId: number; backups: number[]; path?: string; table?: string; error: string }
  /** A resumed run's backup whose file was missing or incomplete: its verified copy exported again (or kept, without a folder). */
  | { type: 'backup-exported-again'; runId: number; backupId: number; table: string; copy: string; file: string | null; sha256: string | null }
  | { type: 'backup-restored'; runId: number; backupId: number; table: string; rows: number; checksum: string; [k: string]: unknown }
  // temporary indexes
  | { type: 'temp-index-ready'; runId: number; index: string; table: string; status: 'created' | 'existed'; durationMs: number }
  | { type: 'temp-indexes-dropped'; runId: number; indexes: string[] }
  // steps and batches
  | { type: 'step-started'; runId: number; stepNo: number; step: string; kind: 'batched' | 'sql'; rowsTotal: number; rowsDone: number }
  | {
      type: 'batch-committed';
      runId: number;
      stepNo: number;
      step: string;
      batchNo: number;
      lo: string;
      hi: string;
      round: number;
      rowsInRange: number;
      rowsChanged: number;
      rowsSkipped: number;
      attempts: number;
      rowsDone: number;
      rowsTotal: number;
      /** BEGIN to the end of the write and its checks (what the batch size scales). */
      durationMs: number;
      /** BEGIN to COMMIT returned: how long the batch held its row locks. */
      heldMs: number;
      /** With --workers: the worker (its key range, 0 first) that wrote it. */
      worker?: number;
    }
  /** A round of a step split into key ranges, walked by this many workers at once (the rest were done). */
  | { type: 'workers-started'; runId: number; step: string; round: number; workers: number; ranges: number }
  | { type: 'batch-retry'; runId: number; step: string; batchNo: number; attempt: number; sqlstate: string; waitMs: number }
  | {
      type: 'batch-over-ceiling';
      runId: number;
      stepNo: number;
      step: string;
      batchNo: number;
      rows: number;
      elapsedMs: number;
      ceilingMs: number;
      nextSize: number;
    }
  | {
      type: 'batch-ceiling-lifted';
      runId: number;
      stepNo: number;
      step: string;
      batchNo: number;
      rows: number;
      durationMs: number;
      ceilingMs: number;
      forMs: number;
    }
  | { type: 'verification-failed'; runId: number; step: string; batchNo?: number; name?: string; count: number; sample: unknown[] }
  /** Decided rows the application changed (or deleted) before their batch: left as they are; keys: the first 20. */
  | { type: 'rows-skipped'; runId: number; step: string; batchNo: number; count: number; keys: string[] }
  | { type: 'rows-rejected'; runId: number; step: string; batchNo: number; reason: string; count: number; keys: string[]; sample: unknown[] }
  | { type: 'catch-up'; runId: number; step: string; round: number; added: number }
  /** After the last catch-up round: rows the rule still gives that were not decided (written or changed meanwhile), left as they are. */
  | { type: 'catch-up-left'; runId: number; step: string; rounds: number; remaining: number }
  | { type: 'step-finished'; runId: number; stepNo: number; step: string; rowsChanged: number; rowsSkipped: number; batches: number }
  // steering
  | { type: 'throttled'; runId: number; step: string; reasons: string[] }
  | { type: 'throttle-released'; runId: number; step: string; waitedMs: number }
  | ({ type: 'abort-triggered'; runId: number } & FiredTrigger)
  | { type: 'abort-rolled-back'; runId: number; restored: number; conflictCount: number }
  | { type: 'abort-rollback-failed'; runId: number; error: Err }
  // rollback
  | { type: 'rollback-started'; runId: number; batches: number; rows: number; force: boolean }
  | { type: 'rollback-batch'; runId: number; step: string; batchNo: number; restored: number; conflicts: number; rowsDone: number; rowsTotal: number }
  | { type: 'rollback-step-kept'; runId: number; step: string; reason: 'irreversible' }
  | {
      type: 'rollback-finished';
      runId: number;
      restored: number;
      /** changed + deleted: every row left alone. */
      conflicts: number;
      changed?: number;
      deleted?: number;
      status: string;
      sample: unknown[];
    }
  | { type: 'rollback-failed'; runId: number; error: Err }
  /** Stopped part-way by Ctrl-C or SIGTERM: the run stays rolling_back, belay rollback <run> goes on. */
  | { type: 'rollback-interrupted'; runId: number; signal: string; batches: number; rowsDone: number }
  | { type: 'rollback-from-backup'; runId: number; tables: unknown; overwritten: unknown; cascades?: unknown; readTables?: string[] }
  | { type: 'rollback-from-backup-cancelled'; runId: number }
  // dry run
  | { type: 'trial-batch'; step: string; batchNo: number; lo: string; hi: string; rows: number; changed: number; ms: number };

export type EventType = BelayEvent['type'];
export type EventOf<T extends EventType> = Extract<BelayEvent, { type: T }>;
export type EventSink = (event: BelayEvent) => void;

export const noopSink: EventSink = () => undefined;

/**
 * A sink that never throws: a listener that fails is isolated (the run goes on) and reported once
 * through `onFailure`, as a listener-failed event to the other listeners and belay.events.
 */
export function isolated(sink: EventSink | undefined, onFailure: (e: EventOf<'listener-failed'>) => void): EventSink {
  if (!sink) return noopSink;
  let failed = false;
  return (event) => {
    if (failed) return;
    try {
      sink(event);
    } catch (err) {
      failed = true;
      onFailure({
        type: 'listener-failed',
        runId: 'runId' in event ? event.runId : undefined,
        event: event.type,
        message: err instanceof Error ? err.message : String(err),
      });
    }
  };
}

const INSERT_EVENT_SQL = `INSERT INTO belay.events (run_id, type, data) VALUES ($1, $2, $3::jsonb)`;

/** Records an event in belay.events: its type, and its other fields as data. */
export async function recordEvent(db: Db, event: BelayEvent & { runId?: number }): Promise<void> {
  const { type, runId, ...data } = event;
  await db.query(INSERT_EVENT_SQL, [runId ?? null, type, JSON.stringify(data)]);
}

/** Emits an event to the run's listeners and records it. */
export async function tell(db: Db, emit: EventSink, event: BelayEvent & { runId: number }): Promise<void> {
  emit(event);
  await recordEvent(db, event);
}

/** $1 = run id. The run's event log with elapsed time from the first event. */
export const RUN_EVENTS_SQL = `SELECT id::int AS id, at::text AS at, type, data,
       (extract(epoch FROM at - min(at) OVER ()) * 1000)::float8 AS "elapsedMs"
  FROM belay.events WHERE run_id = $1 ORDER BY id`;
