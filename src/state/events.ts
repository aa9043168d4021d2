// Typed events: progress bars, logs, --json output and reports listen to these instead of stages printing.

export type BelayEvent =
  | { type: 'run-started'; runId: number; migrationId: string; checksum: string; resumed: boolean; mode: string }
  | { type: 'step-started'; runId: number; stepNo: number; step: string; kind: 'batched' | 'sql'; rowsTotal: number; rowsDone: number }
  | {
      type: 'batch-committed'; runId: number; stepNo: number; step: string; batchNo: number; lo: string; hi: string;
      rowsInRange: number; rowsChanged: number; attempts: number; rowsDone: number; rowsTotal: number;
      /** BEGIN to the end of the write and its checks (what the batch size scales). */
      durationMs: number;
      /** BEGIN to COMMIT returned: how long the batch held its row locks. */
      heldMs: number;
    }
  | { type: 'batch-retry'; runId: number; step: string; batchNo: number; attempt: number; sqlstate: string; waitMs: number }
  | {
      type: 'batch-over-ceiling'; runId: number; stepNo: number; step: string; batchNo: number; rows: number; elapsedMs: number;
      ceilingMs: number; nextSize: number;
    }
  | { type: 'verification-failed'; runId: number; step: string; batchNo?: number; name?: string; count: number; sample: unknown[] }
  | { type: 'step-finished'; runId: number; stepNo: number; step: string; rowsChanged: number; batches: number }
  | { type: 'run-finished'; runId: number; status: string; durationMs: number; error?: Record<string, unknown> }
  | { type: 'rollback-started'; runId: number; batches: number; rows: number }
  | { type: 'rollback-batch'; runId: number; step: string; batchNo: number; restored: number; conflicts: number; rowsDone: number; rowsTotal: number }
  | { type: 'rollback-finished'; runId: number; restored: number; conflicts: number; status: string }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string; runId?: number };

export type EventSink = (event: BelayEvent) => void;

export const noopSink: EventSink = () => undefined;

/** Calls every sink; a sink that throws is isolated so that it cannot break a run. */
export function fanOut(...sinks: Array<EventSink | undefined>): EventSink {
  const live = sinks.filter((s): s is EventSink => typeof s === 'function');
  return (e) => {
    for (const s of live) {
      try {
        s(e);
      } catch {
        // a broken listener must never stop a migration half-way
      }
    }
  };
}
