// The control stage: between two batches the running apply takes the commands \`belay pause | resume |
// abort | tune\` left for it in belay.controls (state/controls.ts). A pause waits there, with no transaction
// open and no row or table lock held, until a resume or an abort; abort stops the run resumable, abort
// --rollback undoes every committed batch; tune changes the batch target and the throttle's limits in place.
import type { BatchDecision, RunContext, Stage } from '../contract.ts';
import { type Control, takeControls } from '../state/controls.ts';
import { tell } from '../state/events.ts';
import { setRunStatus } from '../state/runs.ts';
import type { SteerSettings } from './throttle.ts';

export const CONTROL_POLL_MS = 500;

export function controlStage(opts: { live?: SteerSettings; pollMs?: number } = {}): Stage {
  return { name: 'control', batches: { afterBatch: (ctx) => follow(ctx, opts.live, opts.pollMs ?? CONTROL_POLL_MS) } };
}

async function follow(ctx: RunContext, live: SteerSettings | undefined, pollMs: number): Promise<BatchDecision> {
  const { db, runId, emit } = ctx;
  let paused: Control | undefined;
  // PGlite runs in this thread and its queries settle as microtasks: without one turn of the event loop a
  // batch, a server in the same process (belay watch over PGlite) would not answer until the run is over
  await new Promise((r) => setImmediate(r));
  for (;;) {
    for (const c of await takeControls(db, runId)) {
      await tell(db, emit, { type: 'control-taken', runId, command: c.command, settings: c.settings, requestedBy: c.requestedBy, requestedAt: c.requestedAt });
      if (c.command === 'tune' && live) tune(live, c);
      if (c.command === 'pause' && !paused) {
        paused = c;
        await setRunStatus(db, runId, 'paused');
      }
      if (c.command === 'resume' && paused) {
        paused = undefined;
        await setRunStatus(db, runId, 'running');
      }
      if (c.command === 'abort') return 'pause';
      if (c.command === 'abort-rollback') return 'rollback';
    }
    // the process is stopping (Ctrl-C, SIGTERM): the apply ends the run paused after this batch
    if (!paused || ctx.signal?.aborted) return 'continue';
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

function tune(live: SteerSettings, c: Control): void {
  const s = c.settings;
  if (s.targetMs !== undefined) live.targetMs = s.targetMs;
  if (s.maxLockWaiters !== undefined) live.throttle.maxLockWaiters = s.maxLockWaiters;
  if (s.maxTransactionAgeMs !== undefined) live.throttle.maxTransactionAgeMs = s.maxTransactionAgeMs;
  if (s.maxReplicationLagMs !== undefined) live.throttle.maxReplicationLagMs = s.maxReplicationLagMs;
}
