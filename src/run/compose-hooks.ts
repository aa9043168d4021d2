// Combines several beforeWrite/afterWrite hook pairs (backups, schema snapshots, verification …),
// each written by its own module, into the one pair ApplyOptions takes.
import type { ApplyOptions, RunContext } from '../execute/apply.ts';

export type WriteHooks = Pick<ApplyOptions, 'beforeWrite' | 'afterWrite'>;

/** Runs every beforeWrite in the order given, then (after the last step) every afterWrite in the same order. */
export function composeHooks(...list: Array<WriteHooks | undefined>): WriteHooks {
  const hs = list.filter((h): h is WriteHooks => !!h);
  return {
    async beforeWrite(ctx: RunContext) {
      for (const h of hs) await h.beforeWrite?.(ctx);
    },
    async afterWrite(ctx: RunContext) {
      for (const h of hs) await h.afterWrite?.(ctx);
    },
  };
}
