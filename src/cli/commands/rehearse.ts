import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { formatRehearsal } from '../format.ts';
import { connect, errorJson, type GlobalOptions, locate, out, parseParams, parsePositiveInt } from '../context.ts';

export function registerRehearse(program: Command, setExit: (c: number) => void): void {
  program
    .command('rehearse <migration>')
    .description('apply, verify, roll back, then prove with checksums that every touched table is as before (use a copy of production)')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('--batch-size <n>', 'rows per batch', parsePositiveInt('--batch-size', 'batchSize'))
    .option('--override <reason>', 'rehearse on a protected environment anyway (recorded in the ledger)')
    .action(async (target: string, o: { param?: string[]; batchSize?: number; override?: string }, cmd: Command) => {
      const { ledgerFor, loadProjectConfig } = await import('../../config/environments.ts');
      const { rehearse } = await import('../../run/rehearse.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const { progressSink } = await import('../progress.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const db = await connect(g);
      try {
        const r = await rehearse(db, m, {
          apply: { batchSize: o.batchSize, onEvent: progressSink({ json: g.json }) },
          ledger: ledgerFor(loadProjectConfig(), g.env ?? null),
          override: o.override,
        });
        if (g.json) out.json({ type: 'rehearsal', ...r, apply: r.apply ? { ...r.apply, error: r.apply.error && errorJson(r.apply.error) } : null });
        else for (const l of formatRehearsal(r)) out.line(l);
        setExit(r.pass ? EXIT.ok : EXIT.verification);
      } finally {
        await db.close();
      }
    });
}
