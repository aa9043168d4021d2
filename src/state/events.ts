// Typed events: progress bars, logs, --json output and reports listen to these instead of stages
// printing. Every event a run emits is a member of one union; reports and tests read its fields.
// Those that tell a run's story are also recorded in belay.events (recordEvent), with the same fields.
import { isoUtc } from '../db/sql.ts';
import type { Db } from '../db/connection.ts';
import type { z } from 'zod';
import type { BELAY_EVENT } from './event-schema.ts';

/**
 * Every event a run emits: one union, defined once as schemas in event-schema.ts (from which the published
 * JSON Schema of the --json lines is generated too). A type-only import: a run never loads zod for it.
 */
export type BelayEvent = z.output<typeof BELAY_EVENT>;

/** The version of every --json line (its field `v`): raised when a field changes meaning or goes away, not when one is added. */
export const JSON_VERSION = 1;

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
export const RUN_EVENTS_SQL = `SELECT id::int AS id, ${isoUtc('at')} AS at, type, data,
       (extract(epoch FROM at - min(at) OVER ()) * 1000)::float8 AS "elapsedMs"
  FROM belay.events WHERE run_id = $1 ORDER BY id`;
