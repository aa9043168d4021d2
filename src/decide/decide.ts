// The decide stage: before the first write, each batched step that no other step precedes is decided once,
// set-based, into a table of belay's (state/decision.ts), in one REPEATABLE READ snapshot; the pre-flight
// runs in that same snapshot and reads the decisions, so what it predicts is exactly what the batches
// write. A step that follows other steps is decided when it starts (execute/apply.ts). A decision that
// wrote nothing yet is made again on resume (the pre-flight runs again too); once a batch committed, never.
import { ChecksFailedError } from '../errors.ts';
import type { RunContext, Stage } from '../contract.ts';
import { resolveStep } from '../spec/resolve.ts';
import { makeDecision, stepHasWritten } from '../state/decision.ts';

const SNAPSHOT_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ';

/** `inSnapshot`: the stage that runs in the decision's snapshot (the pre-flight); its batch hooks are kept. */
export function decideStage(opts: { inSnapshot?: Stage } = {}): Stage {
  return {
    name: 'decide',
    async before(ctx: RunContext) {
      const { db, runId, migration: m } = ctx;
      await db.query(SNAPSHOT_SQL);
      try {
        const first = m.spec.steps[0];
        if (first?.kind === 'batched' && !(await stepHasWritten(db, runId, 0))) {
          await makeDecision(db, first, 0, await resolveStep(db, first, 0), { runId });
        }
        await opts.inSnapshot?.before?.(ctx);
        await db.query('COMMIT');
      } catch (err) {
        // refused by the pre-flight: its findings and the decision stay recorded with the run
        await db.query(err instanceof ChecksFailedError ? 'COMMIT' : 'ROLLBACK').catch(() => undefined);
        throw err;
      }
    },
    ...(opts.inSnapshot?.batches ? { batches: opts.inSnapshot.batches } : {}),
  };
}
