import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { ledgerFor, loadProjectConfig } from '../../config/environments.ts';
import { formatRehearsal } from '../format.ts';
import { rehearse } from '../../run/rehearse.ts';
import { loadMigration } from '../../spec/load.ts';
import { connect, type GlobalOptions, out, parseParams, parsePositiveInt, locate } from '../context.ts';
import { NUMBERS } from '../../spec/numbers.ts';
import { progressSink } from '../progress.ts';

export function registerRehearse(program: Command, setExit: (c: number) => void): void {
  program
    .command('rehearse <migration>')
    .description('apply, verify, roll back, then prove with checksums that every touched table is as before (use a copy of production)')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('--batch-size <n>', 'rows per batch', parsePositiveInt('--batch-size', NUMBERS.batchSize))
    .option('--override <reason>', 'rehearse on a protected environment anyway (recorded in the ledger)')
    .action(async (target: string, o: { param?: string[]; batchSize?: number; override?: string }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const db = await connect(g);
      try {
        const r = await rehearse(db, m, {
          apply: { batchSize: o.batchSize, onEvent: progressSink({ json: g.json }) },
          ledger: ledgerFor(loadProjectConfig(), g.env ?? null),
          override: o.override,
        });
        if (g.json) out.json({ type: 'rehearsal', ...r, apply: r.apply ? { ...r.apply, error: r.apply.error?.toJSON() } : null });
        else for (const l of formatRehearsal(r)) out.line(l);
        setExit(r.pass ? EXIT.ok : EXIT.verification);
      } finally {
        await db.close();
      }
    });
}
