// The whole safety pipeline of an apply, as one library call: what `belay apply` and `belay demo` run.
// pre-flight (refuses on blocking findings) → verified backup → schema snapshot → untouched-column
// baseline → batches with abort triggers → verification → temporary indexes dropped.
import { backupHook } from '../backup/backup.ts';
import { type CheckReport } from '../checks/run-checks.ts';
import { withPreflight } from '../checks/preflight.ts';
import type { Db } from '../db/connection.ts';
import { applyPlanned, type PlannedApplyOptions } from './apply-planned.ts';
import { schemaSnapshotHook } from '../report/schema-snapshot.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { verificationHooks } from '../verify/verify.ts';
import { abortController } from '../steer/abort-triggers.ts';
import type { ApplyOptions, ApplyResult } from '../execute/apply.ts';
import { composeHooks } from './compose-hooks.ts';
import { composeControllers } from './compose.ts';

export interface SafeApplyOptions extends Omit<ApplyOptions, 'beforeWrite' | 'afterWrite' | 'controller'> {
  /** false: no backup (the CLI's --no-backup); default: an in-database copy, plus files in backupDir. */
  backup?: boolean;
  backupDir?: string;
  skipChecks?: boolean;
  /** Called with the pre-flight's findings before the first write. */
  onCheckReport?: (report: CheckReport) => void;
  /** The application writes meanwhile: drift in categories and untouched columns warns instead of failing. */
  concurrentWrites?: boolean;
  /** Plan file, ledger, throttle and adaptive sizing (see applyPlanned). */
  planned?: PlannedApplyOptions;
}

export function safeApply(db: Db, m: LoadedMigration, opts: SafeApplyOptions = {}): Promise<ApplyResult> {
  const { backup = true, backupDir, skipChecks, onCheckReport, concurrentWrites, planned, ...rest } = opts;
  const options = withPreflight({
    ...rest,
    // the spec's abort triggers (and rollback on a failed in-batch verification)
    controller: composeControllers(abortController(m.spec)),
    ...composeHooks(
      backup ? backupHook({ dir: backupDir }) : undefined,
      schemaSnapshotHook(),
      verificationHooks({ concurrentWrites }),
    ),
  }, { skipChecks, onReport: onCheckReport });
  return applyPlanned(db, m, options, planned);
}
