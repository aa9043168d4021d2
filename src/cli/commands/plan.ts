import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { formatPlan } from '../format.ts';
import { connect, type GlobalOptions, locate, out, parseParams, parsePositiveInt } from '../context.ts';

export function registerPlan(program: Command, setExit: (c: number) => void): void {
  program
    .command('plan <migration>')
    .description('measure before running: table sizes, the plan of a sample batch, rolled-back calibration batches, batch size and expected time')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('-o, --output <file>', 'write the plan as JSON (then: belay apply <file>)')
    .option('--exact', 'count rows exactly instead of using the statistics estimate')
    .option('--target-ms <n>', 'target duration of one batch in ms', parsePositiveInt('--target-ms', 'targetBatchMs'), 200)
    .option('--samples <n>', 'calibration batches per step', parsePositiveInt('--samples', 'samples'), 3)
    .action(async (target: string, o: { param?: string[]; output?: string; exact?: boolean; targetMs: number; samples: number }, cmd: Command) => {
      const { writePlanFile } = await import('../../plan/plan.ts');
      const { plan } = await import('../../run/pipeline.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const db = await connect(g);
      try {
        const p = await plan(db, m, { exact: o.exact, targetBatchMs: o.targetMs, samples: o.samples });
        if (o.output) writePlanFile(o.output, p);
        if (g.json) out.json({ type: 'plan', ...p });
        else {
          for (const l of formatPlan(p)) out.line(l);
          if (o.output) out.line(`plan written to ${o.output}: belay apply ${o.output}`);
        }
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
