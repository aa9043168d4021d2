// Combines several BatchControllers into one, so that throttling, adaptive sizing, guards and abort
// triggers (each written by its own module) can steer the same run.
import type { BelayError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { BatchController, BatchRecord, RunContext } from '../contract.ts';
import type { StepTarget } from '../spec/resolve.ts';

type Decision = 'continue' | 'pause' | 'rollback';

/** The strongest of two decisions: rollback beats pause beats continue. */
export function strongest(a: Decision, b: Decision): Decision {
  const rank = { continue: 0, pause: 1, rollback: 2 } as const;
  return rank[b] > rank[a] ? b : a;
}

/**
 * One controller out of many. beforeBatch and afterBatch run every controller in order (each sees
 * every batch, so tallies stay right); guards concatenate; nextBatchSize chains; the lowest
 * batchCeilingMs holds; onError passes the (possibly replaced) error along.
 */
export function composeControllers(...list: Array<BatchController | undefined>): BatchController {
  const cs = list.filter((c): c is BatchController => !!c);
  if (cs.length === 1) return cs[0]!;
  const composed: BatchController = {
    async beforeBatch(ctx: RunContext, step: BatchedStep) {
      for (const c of cs) await c.beforeBatch?.(ctx, step);
    },
    guards(ctx: RunContext, step: BatchedStep, target: StepTarget) {
      return cs.flatMap((c) => c.guards?.(ctx, step, target) ?? []);
    },
    ...(cs.some((c) => c.nextBatchSize)
      ? {
          nextBatchSize(current: number, last: BatchRecord) {
            let size = current;
            for (const c of cs) if (c.nextBatchSize) size = c.nextBatchSize(size, last);
            return size;
          },
        }
      : {}),
    async afterBatch(ctx: RunContext, info: BatchRecord) {
      let d: Decision = 'continue';
      for (const c of cs) d = strongest(d, (await c.afterBatch?.(ctx, info)) ?? 'continue');
      return d;
    },
    async onError(ctx: RunContext, err: BelayError) {
      let e = err;
      for (const c of cs) e = (await c.onError?.(ctx, e)) ?? e;
      return e;
    },
  };
  // read when a batch starts: a stage may change its ceiling while the run goes on (belay tune)
  if (cs.some((c) => c.batchCeilingMs !== undefined)) {
    Object.defineProperty(composed, 'batchCeilingMs', {
      get: () => {
        const ceilings = cs.flatMap((c) => (c.batchCeilingMs === undefined ? [] : [c.batchCeilingMs]));
        return ceilings.length ? Math.min(...ceilings) : undefined;
      },
      enumerable: true,
    });
  }
  return composed;
}
