import type { Command } from 'commander';
import { DEFAULT_CHECK_JOBS } from '../../checks/defaults.ts';
import { EXIT } from '../../errors.ts';
import { connect, type GlobalOptions, locate, out, parseParams, parsePositiveInt } from '../context.ts';
import { printCheckReport } from '../print.ts';

export function registerCheck(program: Command, setExit: (c: number) => void): void {
  program
    .command('check <migration>')
    .description('read-only pre-flight: predicts from live data which rows would fail, conflict or be skipped')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('--sample <n>', 'sample rows per finding', parsePositiveInt('--sample'), 20)
    .option(
      '--jobs <n>',
      `sessions the checks are spread over on a server, in one snapshot (default ${DEFAULT_CHECK_JOBS}; 1 = one session)`,
      parsePositiveInt('--jobs'),
    )
    .action(async (target: string, o: { param?: string[]; sample: number; jobs?: number }, cmd: Command) => {
      const { runChecks } = await import('../../checks/run-checks.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const db = await connect(g);
      try {
        const r = await runChecks(db, m, { sample: o.sample, jobs: o.jobs, decide: true });
        if (g.json) out.json({ type: 'check', ...r });
        else printCheckReport(r);
        setExit(r.ok ? EXIT.ok : EXIT.checks);
      } finally {
        await db.close();
      }
    });
}
