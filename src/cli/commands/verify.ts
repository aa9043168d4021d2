import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { connect, type GlobalOptions, out, parsePositiveInt, parseRunId } from '../context.ts';
import { table } from '../print.ts';

export function registerVerify(program: Command, setExit: (c: number) => void): void {
  program
    .command('verify <run>')
    .description('re-run the post-run verification of a run (exit 7 when a check fails); recorded in the run')
    .option('--validate-constraints', 'run ALTER TABLE … VALIDATE CONSTRAINT on NOT VALID foreign keys and checks (a table scan)')
    .option('--sample <n>', 'offending rows kept per check', parsePositiveInt('--sample'))
    .option('--concurrent-writes', 'the application wrote to these tables: recounted categories and untouched-column checksums warn instead of failing')
    .action(async (run: string, o: { validateConstraints?: boolean; sample?: number; concurrentWrites?: boolean }, cmd: Command) => {
      const { verify: verifyRun } = await import('../../run/pipeline.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      const db = await connect(g);
      try {
        const r = await verifyRun(db, runId, { validateConstraints: o.validateConstraints, sample: o.sample, concurrentWrites: o.concurrentWrites });
        if (g.json) out.json({ type: 'result', ...r });
        else {
          out.line(`run ${r.runId} (${r.migrationId}): verification ${r.ok ? 'passed' : 'FAILED'} in ${(r.durationMs / 1000).toFixed(2)} s`);
          out.line(
            table(
              r.checks.map((c) => ({ check: c.name, result: c.result, count: c.count, meaning: c.message })),
              ['check', 'result', 'count', 'meaning'],
            ),
          );
          for (const c of r.checks.filter((x) => x.result === 'fail' || x.result === 'error')) {
            out.err(`\n${c.name}: ${c.result === 'error' ? `could not run: ${String(c.error?.message)}` : `${c.count} offending`}`);
            for (const s of c.sample.slice(0, 5)) out.err(`  ${JSON.stringify(s)}`);
          }
        }
        setExit(r.ok ? EXIT.ok : EXIT.verification);
      } finally {
        await db.close();
      }
    });
}
