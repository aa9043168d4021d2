import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { formatDryRun, formatPlan } from '../format.ts';
import { connect, type GlobalOptions, locate, out, parseParams, parsePositiveInt } from '../context.ts';

export function registerDryRun(program: Command, setExit: (c: number) => void): void {
  program
    .command('dry-run <migration>')
    .description('the whole pipeline with every batch rolled back: expected changes, samples, conflicts, timings (tables unchanged)')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('-o, --output <file>', 'also write a plan whose estimates come from the measured batches')
    .option('--batch-size <n>', 'fixed rows per batch (default: adapt to the target duration, as apply does)', parsePositiveInt('--batch-size', 'batchSize'))
    .option('--target-ms <n>', 'target duration of one batch in ms', parsePositiveInt('--target-ms', 'targetBatchMs'), 200)
    .option('--sample <n>', 'before → after rows to show per step', parsePositiveInt('--sample'), 10)
    .action(async (target: string, o: { param?: string[]; output?: string; batchSize?: number; targetMs: number; sample: number }, cmd: Command) => {
      const { dryRun } = await import('../../run/dry-run.ts');
      const { ledgerFor, loadProjectConfig } = await import('../../config/environments.ts');
      const { writePlanFile } = await import('../../plan/plan.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const { progressSink } = await import('../progress.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const db = await connect(g);
      try {
        const r = await dryRun(db, m, {
          batchSize: o.batchSize,
          targetBatchMs: o.targetMs,
          sampleRows: o.sample,
          plan: !!o.output,
          ledger: ledgerFor(loadProjectConfig(), g.env ?? null),
          onEvent: progressSink({ json: g.json, quiet: !g.json }),
        });
        if (o.output && r.plan) writePlanFile(o.output, r.plan);
        if (g.json) out.json({ type: 'dry-run', ...r });
        else {
          for (const l of formatDryRun(r, o.sample)) out.line(l);
          if (r.plan) for (const l of formatPlan(r.plan)) out.line(l);
          if (o.output) out.line(`plan written to ${o.output}`);
        }
        setExit(r.ok ? EXIT.ok : r.checks.ok ? EXIT.verification : EXIT.checks);
      } finally {
        await db.close();
      }
    });
}
