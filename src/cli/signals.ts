// Ctrl-C and SIGTERM during apply and rollback: the first lets the batch in flight finish and stops the run
// there (paused, resumable); the second cancels the statement in flight on a server (its transaction rolls
// back) and the command exits once the run is recorded; a third exits at once (the server rolls back what the
// session held).
import type { Db } from '../db/connection.ts';
import { EXIT } from '../errors.ts';
import { out } from './context.ts';

const SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof SIGNALS)[number];

/** Past this after the second signal, the command exits even if the cancelled run has not been recorded yet. */
export const CANCEL_GRACE_MS = 10_000;

export interface Interrupts {
  /** Aborted on the first signal, with the signal's name as its reason. */
  signal: AbortSignal;
  /** 130 after SIGINT, 143 after SIGTERM; undefined when no signal came. */
  exitCode(): number | undefined;
  dispose(): void;
}

/** Installs the handlers until dispose(); db is the session whose statement the second signal cancels. */
export function catchInterrupts(db: () => Db | undefined, what: string): Interrupts {
  const controller = new AbortController();
  let first: StopSignal | undefined;
  let count = 0;
  const code = () => (first === 'SIGTERM' ? EXIT.terminated : EXIT.interrupted);
  const handler = (sig: StopSignal) => {
    count++;
    if (count === 1) {
      first = sig;
      out.err(`\n${sig}: stopping ${what} after the batch in flight (press Ctrl-C again to cancel it)`);
      controller.abort(sig);
      return;
    }
    if (count === 2) {
      const d = db();
      if (!d?.cancel) {
        // PGlite runs in this process: its statement cannot be cancelled, and leaving mid-write risks its folder
        out.err(`${sig} again: an embedded database cannot cancel its statement; press Ctrl-C once more to exit without waiting`);
        return;
      }
      out.err(`${sig} again: cancelling the statement in flight (its transaction rolls back)`);
      d.cancel().catch((err: unknown) => out.err(`could not cancel: ${(err as Error).message}`));
      setTimeout(() => process.exit(code()), CANCEL_GRACE_MS).unref();
      return;
    }
    process.exit(code());
  };
  for (const s of SIGNALS) process.on(s, handler);
  return {
    signal: controller.signal,
    exitCode: () => (first ? code() : undefined),
    dispose: () => {
      for (const s of SIGNALS) process.off(s, handler);
    },
  };
}
