// belay pause | resume | abort | tune: commands for the apply that runs a run, from any process that reaches
// its database. They are rows of belay.controls (state/controls.ts) that the running apply takes between two
// batches (steer/control.ts); here they are checked against the run and its process before being left.
import { hostname, userInfo } from 'node:os';
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import { type Asker, type Control, type ControlCommand, requestControl, type TuneSettings } from '../state/controls.ts';
import { migrationLockHolder } from '../state/lock.ts';
import { getRun } from '../state/runs.ts';
import { ensureState } from '../state/schema.ts';

export type { Asker, TuneSettings };

/** Who asks from this process, as the running apply records it (the database adds role, application and address). */
export function localAsker(): Asker {
  let osUser: string | undefined;
  try {
    osUser = userInfo().username;
  } catch {
    osUser = undefined;
  }
  return { osUser, host: hostname() };
}

/** What the running apply does with each command, as the commands and the dashboard tell it. */
export const CONTROL_SAID: Record<ControlCommand, string> = {
  pause: 'it pauses after its current batch, holding no lock, until belay resume',
  resume: 'it goes on with its next batch',
  abort: 'it stops after its current batch; the run stays resumable (belay apply <migration>)',
  'abort-rollback': 'it stops after its current batch and rolls back every committed batch',
  tune: 'its next batch uses the new settings',
};

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
