import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import type { TuneSettings } from '../../run/control.ts';
import type { ControlCommand } from '../../state/controls.ts';
import { connect, type GlobalOptions, out, parsePositiveInt, parseRunId } from '../context.ts';

/** belay pause | resume | abort | tune <run>: commands for the apply running a run, from any terminal that reaches the database. */
export function registerControl(program: Command, setExit: (c: number) => void): void {
  const send = async (cmd: Command, run: string, command: ControlCommand, settings: TuneSettings = {}) => {
    const { CONTROL_SAID, controlRun, localAsker } = await import('../../run/control.ts');
    const g = cmd.optsWithGlobals<GlobalOptions>();
    const runId = parseRunId(run);
    const db = await connect(g);
    try {
      const c = await controlRun(db, runId, command, localAsker(), settings);
      if (g.json) out.json({ type: 'control', runId, ...c });
      else out.line(`run ${runId}: ${command.replace('-rollback', ' --rollback')} left for the running apply (request ${c.id}); ${CONTROL_SAID[command]}`);
      setExit(EXIT.ok);
    } finally {
      await db.close();
    }
  };
  program
    .command('pause <run>')
    .description('pause a running apply after its current batch (it holds no lock while paused)')
    .action((run: string, _o: unknown, cmd: Command) => send(cmd, run, 'pause'));
  program
    .command('resume <run>')
    .description('let a paused apply go on')
    .action((run: string, _o: unknown, cmd: Command) => send(cmd, run, 'resume'));
  program
    .command('abort <run>')
    .description('stop a running apply after its current batch (resumable), or with --rollback undo every committed batch')
    .option('--rollback', 'roll back every committed batch of the run')
    .action((run: string, o: { rollback?: boolean }, cmd: Command) => send(cmd, run, o.rollback ? 'abort-rollback' : 'abort'));
  program
    .command('tune <run>')
    .description('change the batch target and the throttle limits of a running apply')
    .option('--target-ms <n>', 'batch duration the size adapts to', parsePositiveInt('--target-ms', 'targetBatchMs'))
    .option('--max-lock-waiters <n>', 'pause while more sessions than this wait for a lock on the table', parsePositiveInt('--max-lock-waiters', 'count'))
    .option('--max-tx-age-ms <n>', 'pause while another transaction is older than this', parsePositiveInt('--max-tx-age-ms'))
    .option('--max-lag-ms <n>', 'pause while a replica lags more than this', parsePositiveInt('--max-lag-ms'))
    .action((run: string, o: { targetMs?: number; maxLockWaiters?: number; maxTxAgeMs?: number; maxLagMs?: number }, cmd: Command) => {
      const settings: TuneSettings = {
        ...(o.targetMs !== undefined ? { targetMs: o.targetMs } : {}),
        ...(o.maxLockWaiters !== undefined ? { maxLockWaiters: o.maxLockWaiters } : {}),
        ...(o.maxTxAgeMs !== undefined ? { maxTransactionAgeMs: o.maxTxAgeMs } : {}),
        ...(o.maxLagMs !== undefined ? { maxReplicationLagMs: o.maxLagMs } : {}),
      };
      if (Object.keys(settings).length === 0) {
        throw new UsageError('belay tune without a setting to change', 'Give at least one of --target-ms, --max-lock-waiters, --max-tx-age-ms, --max-lag-ms.');
      }
      return send(cmd, run, 'tune', settings);
    });
}
