import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import { connect, errorJson, type GlobalOptions, locate, out, parseFlagNumber, parseParams, parsePositiveInt, reportError } from '../context.ts';
import { catchInterrupts } from '../signals.ts';
import { printRunResult, printCheckReport } from '../print.ts';

export function registerApply(program: Command, setExit: (c: number) => void): void {
  program
    .command('apply <migration>')
    .description('apply a migration (or a plan.json made by belay plan) in checkpointed batches (resumes by itself after a crash)')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('--batch-size <n>', 'rows per batch', parsePositiveInt('--batch-size', 'batchSize'))
    .option('--single', 'all or nothing: every batch in one transaction (small migrations)')
    .option(
      '--workers <n>',
      'split each batched step into N key ranges applied at once on N more connections (server only, default 1)',
      parsePositiveInt('--workers', 'workers'),
    )
    .option('--wait', 'wait for a concurrent run of the same migration instead of failing')
    .option('--again', 'start a new run even though the migration was already applied')
    .option('--log-every <n>', 'off a terminal: one progress line per N batches', parsePositiveInt('--log-every'))
    .option('--skip-checks', 'do not run the pre-flight checks before the first write (in-batch guards still run)')
    .option('--backup-dir <dir>', 'also export the backups as gzip COPY files with a manifest.json into this folder')
    .option('--no-backup', 'do not back up the tables before the first write (backups are on by default)')
    .option('--backup-read-tables', 'also back up the tables the migration only reads (by default only the tables it writes are copied)')
    .option('--override <reason>', 'apply on a protected environment without a passed rehearsal and dry run (recorded in the ledger)')
    .option('--max-drift <percent>', 'with a plan file: row-count change since the plan that is still accepted', parsePercent, 10)
    .option('--target-ms <n>', "batch duration the batch size adapts to (default: the plan's, else 200)", parsePositiveInt('--target-ms', 'targetBatchMs'))
    .option('--max-tx-age-ms <n>', 'pause while another transaction is older than this (default 300000)', parsePositiveInt('--max-tx-age-ms'))
    .option('--max-lag-ms <n>', 'pause while a replica lags more than this (default 10000)', parsePositiveInt('--max-lag-ms'))
    .option('--max-lock-waiters <n>', 'pause while more sessions than this wait for a lock on the table (default 0)', parseCount)
    .option('--no-throttle', 'never pause for lock waiters, old transactions or replica lag')
    .option(
      '--catch-up-rounds <n>',
      'after the last batch, decide and write rows the application inserted or changed meanwhile, at most N times (default 3, 0: none)',
      (s) => parseFlagNumber('--catch-up-rounds', 'catchUpRounds', s),
    )
    .option(
      '--concurrent-writes',
      'the application writes to these tables meanwhile: recounted categories and untouched-column checksums warn instead of failing',
    )
    .action(
      async (
        target: string,
        o: {
          param?: string[];
          batchSize?: number;
          single?: boolean;
          workers?: number;
          wait?: boolean;
          again?: boolean;
          logEvery?: number;
          skipChecks?: boolean;
          backup: boolean;
          backupDir?: string;
          backupReadTables?: boolean;
          concurrentWrites?: boolean;
          catchUpRounds?: number;
        } & PlanFlags,
        cmd: Command,
      ) => {
        const { ledgerFor, loadProjectConfig } = await import('../../config/environments.ts');
        const { isPlanFile, readPlanFile } = await import('../../plan/plan.ts');
        const { assertWritableDir } = await import('../../backup/files.ts');
        const { safeApply } = await import('../../run/pipeline.ts');
        const { loadMigration } = await import('../../spec/load.ts');
        const { progressSink } = await import('../progress.ts');
        const g = cmd.optsWithGlobals<GlobalOptions>();
        if (!o.backup && o.backupDir) throw new UsageError('--backup-dir and --no-backup contradict each other', 'Drop one of them.');
        if (!o.backup && o.backupReadTables) throw new UsageError('--backup-read-tables and --no-backup contradict each other', 'Drop one of them.');
        if (o.backupDir) await assertWritableDir(o.backupDir);
        // a plan file names its migration and parameters; apply refuses it when stale (exit 8)
        const planned = isPlanFile(target) ? readPlanFile(target) : undefined;
        if (planned && o.param) throw new UsageError('--param with a plan file', 'The plan records its parameters: make a new plan with --param instead.');
        const m = await loadMigration(planned?.migration.file ?? (await locate(target)), planned ? planned.migration.params : parseParams(o.param));
        const db = await connect(g);
        const stop = catchInterrupts(() => db, 'the run');
        try {
          const r = await safeApply(db, m, {
            signal: stop.signal,
            onEvent: progressSink({ json: g.json, logEvery: o.logEvery }),
            lock: o.wait ? 'wait' : 'fail',
            batchSize: o.batchSize,
            mode: o.single ? 'single' : undefined,
            workers: o.workers,
            again: o.again,
            backup: o.backup,
            backupDir: o.backupDir,
            backupReadTables: o.backupReadTables,
            skipChecks: o.skipChecks,
            concurrentWrites: o.concurrentWrites,
            catchUpRounds: o.catchUpRounds,
            onCheckReport: (c) => (g.json ? out.json({ type: 'check', ...c }) : c.ok ? undefined : printCheckReport(c)),
            plan: planned,
            maxDrift: o.maxDrift / 100,
            targetBatchMs: o.targetMs,
            override: o.override,
            ledger: ledgerFor(loadProjectConfig(), g.env ?? null),
            throttle: o.throttle
              ? { maxTransactionAgeMs: o.maxTxAgeMs, maxReplicationLagMs: o.maxLagMs, maxLockWaiters: o.maxLockWaiters }
              : { maxTransactionAgeMs: null, maxReplicationLagMs: null, maxLockWaiters: null },
          });
          if (g.json) out.json({ type: 'result', ...r, error: r.error && errorJson(r.error) });
          else printRunResult(r);
          // with --json the error is in the result line, and is the last line too
          const code = r.error ? reportError(r.error, !!g.json) : EXIT.ok;
          // paused by the signal: 130 or 143; a run that ended before the signal took effect exits as it ended
          setExit(r.error?.code === 'BELAY_INTERRUPTED' ? (stop.exitCode() ?? code) : code);
        } finally {
          stop.dispose();
          await db.close();
        }
      },
    );
}

interface PlanFlags {
  override?: string;
  maxDrift: number;
  targetMs?: number;
  maxTxAgeMs?: number;
  maxLagMs?: number;
  maxLockWaiters?: number;
  throttle: boolean;
}

function parsePercent(s: string): number {
  return parseFlagNumber('--max-drift', 'percent', s, 'Write --max-drift 20 for 20 %.');
}

function parseCount(s: string): number {
  return parseFlagNumber('--max-lock-waiters', 'count', s);
}
