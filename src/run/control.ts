// belay pause | resume | abort | tune: commands for the apply that runs a run, from any process that reaches
// its database. They are rows of belay.controls (state/controls.ts) that the running apply takes between two
// batches (steer/control.ts); here they are checked against the run and its process before being left.
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import { type Asker, type Control, type ControlCommand, requestControl, type TuneSettings } from '../state/controls.ts';
import { migrationLockHolder } from '../state/lock.ts';
import { getRun } from '../state/runs.ts';
import { ensureState } from '../state/schema.ts';

export type { Asker, TuneSettings };

/** Leaves the command for the apply running `runId`; refused (BELAY_RUN_NOT_ACTIVE, exit 8) when none runs it. */
export async function controlRun(db: Db, runId: number, command: ControlCommand, asker: Asker, settings: TuneSettings = {}): Promise<Control> {
  await ensureState(db);
  const run = await getRun(db, runId);
  const resumeWith = `belay apply ${run.file ?? '<migration>'}`;
  if (run.status !== 'running' && run.status !== 'paused') {
    throw new StateError(
      'BELAY_RUN_NOT_ACTIVE',
      `run ${runId} of "${run.migrationId}" is ${run.status}: no apply runs it, there is nothing to ${command.replace('-rollback', '')}`,
      {
        details: { runId, status: run.status },
        fix: run.status === 'completed' ? `To undo it: belay rollback ${runId}.` : `See belay status; to go on with it: ${resumeWith}.`,
      },
    );
  }
  // on a server the apply holds the migration's advisory lock for as long as its process lives
  if (db.kind === 'postgres' && (await migrationLockHolder(db, run.migrationId)) === null) {
    throw new StateError(
      'BELAY_RUN_NOT_ACTIVE',
      `run ${runId} of "${run.migrationId}" is ${run.status}, but no belay apply is attached to it (its process is gone)`,
      {
        details: { runId, status: run.status },
        fix: command === 'abort-rollback' ? `Roll it back: belay rollback ${runId}.` : `Go on with it: ${resumeWith} (it resumes from its last checkpoint).`,
      },
    );
  }
  return requestControl(db, runId, command, settings, asker);
}
