import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import type { CheckReport } from '../../checks/run-checks.ts';
import { EXIT } from '../../errors.ts';
import type { Db } from '../../db/connection.ts';
import { errorJson, type GlobalOptions, out, parsePositiveInt, reportError } from '../context.ts';
import { printRunResult, table } from '../print.ts';

export const FLAGSHIP_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples/event-type-owner');
export const DEMO_ROWS = 100_000;

type Generate = (db: Db, opts: { rows: number; seed: number }) => Promise<unknown>;

/** The flagship's data generator, loaded from the example folder as a user's migration is loaded. */
async function flagshipGenerator(): Promise<Generate> {
  const { importModule } = await import('../../spec/load.ts');
  const file = ['generate.ts', 'generate.js'].map((f) => path.join(FLAGSHIP_DIR, f)).find((f) => existsSync(f));
  const mod = file ? await importModule(file) : {};
  if (typeof mod.generate !== 'function') throw new Error(`the flagship example has no data generator in ${FLAGSHIP_DIR}`);
  return mod.generate as Generate;
}

export function registerDemo(program: Command, setExit: (c: number) => void): void {
  program
    .command('demo')
    .description('the flagship migration end to end on embedded PGlite (no server needed)')
    .option('--rows <n>', 'event types to generate', parsePositiveInt('--rows'), DEMO_ROWS)
    .option('--seed <n>', 'generator seed', parsePositiveInt('--seed'), 42)
    .option('--out <dir>', 'folder for RUNBOOK.md, REPORT.md and report.html', 'belay-demo-out')
    .action(async (o: { rows: number; seed: number; out: string }, cmd: Command) => {
      const { safeApply } = await import('../../run/pipeline.ts');
      const { openDb } = await import('../../db/connection.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const { progressSink } = await import('../progress.ts');
      const { writeRunDocs } = await import('../../run/documents.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const url = g.db ?? 'pglite:memory';
      const log = (s: string) => (g.json ? undefined : out.line(s));
      const db = await openDb(url);
      try {
        log(`belay demo: the flagship migration on ${db.label}`);
        log(`generating ${o.rows} event types (seed ${o.seed}) …`);
        const t0 = performance.now();
        await (await flagshipGenerator())(db, { rows: o.rows, seed: o.seed });
        log(`  done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        const m = await loadMigration(FLAGSHIP_DIR);
        log('\npre-flight (belay check), then apply with backups, in-batch verification and post-run verification:');
        let checks: CheckReport | undefined;
        const r = await safeApply(db, m, {
          onEvent: progressSink({ json: g.json }),
          onCheckReport: (c) => {
            checks = c;
            log(
              table(
                c.findings.map((f) => ({ category: f.code, severity: f.severity, rows: f.count, meaning: f.message })),
                ['category', 'severity', 'rows', 'meaning'],
              ),
            );
            log('');
          },
        });
        if (g.json) out.json({ type: 'result', checks, apply: { ...r, error: r.error && errorJson(r.error) } });
        else {
          printRunResult(r);
          const predicted = checks?.findings.find((f) => f.code === 'ASSIGN')?.count;
          const changed = r.steps.reduce((n, s) => n + s.rowsChanged, 0);
          log(
            `\nevent types assigned an owner: ${changed} (pre-flight predicted ${predicted ?? '?'}); ` +
              'every other category was reported and left unchanged; undo with: belay rollback ' +
              r.runId,
          );
        }
        // the runbook a reviewer approves and the report an auditor reads, side by side
        const docs = await writeRunDocs(db, m, r.runId, o.out, { target: 'examples/event-type-owner' });
        if (g.json) out.json({ type: 'docs', ...docs });
        else log(`\nrunbook and report written to ${docs.dir}/ (RUNBOOK.md, REPORT.md, report.html)`);
        setExit(r.error ? reportError(r.error, false) : EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
