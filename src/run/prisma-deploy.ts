// belay prisma deploy with belay's own apply behind it: an UPDATE that opens a migration file on a large
// table runs as a batched step (backed up, decided once, keyset batches with the undo log, verified) and is
// rolled back by belay's exact rollback when the rest of its file fails.
import type { Db } from '../db/connection.ts';
import { deployMigrations, type PrismaDeployOptions, type PrismaDeployResult } from '../prisma/deploy.ts';
import { rollback } from '../rollback/rollback.ts';
import type { EventSink } from '../state/events.ts';
import { safeApply } from './pipeline.ts';

export interface PrismaDeployRunOptions extends Omit<PrismaDeployOptions, 'batches'> {
  /** Events of the batched UPDATEs' runs (progress, batches, verification). */
  onEvent?: EventSink;
}

export function prismaDeploy(db: Db, opts: PrismaDeployRunOptions = {}): Promise<PrismaDeployResult> {
  const { onEvent, ...rest } = opts;
  return deployMigrations(db, {
    ...rest,
    batches: {
      apply: (m) => safeApply(db, m, onEvent ? { onEvent } : {}),
      rollback: async (runId) => ({ conflicts: (await rollback(db, runId, onEvent ? { onEvent } : {})).conflictCount }),
    },
  });
}
