// npm run reliability [-- --trials N] [--seed S] [--short] [--only a,b] [--replay seed,…] [--parallel P]
// Runs the reliability suite against the local PostgreSQL server, prints what was tried and what held,
// exits 1 when anything did not hold. Every failure prints the seed that replays it.
import { parseArgs } from 'node:util';
import type { Failure, Outcome, Scenario, SuiteOptions } from './lib/suite.ts';
import { dropLeftovers } from './lib/server.ts';
import { badInput } from './scenarios/bad-input.ts';
import { concurrentLoad } from './scenarios/concurrent-load.ts';
import { connectionLoss } from './scenarios/connection-loss.ts';
import { crash } from './scenarios/crash.ts';
import { load } from './scenarios/load.ts';
import { lockContention } from './scenarios/lock-contention.ts';
import { secrets } from './scenarios/secrets.ts';
import { dropFixtures } from './lib/flagship.ts';

export const SCENARIOS: Scenario[] = [crash, connectionLoss, lockContention, concurrentLoad, load, badInput, secrets];

export async function runSuite(opts: SuiteOptions, only?: readonly string[]): Promise<Outcome[]> {
  await dropLeftovers();
  const out: Outcome[] = [];
  for (const s of SCENARIOS) {
    if (only && !only.includes(s.name)) continue;
    const t0 = performance.now();
    opts.log(`== ${s.name} (seed ${opts.seed})`);
    try {
      out.push(...(await s.run(opts)));
    } catch (err) {
      out.push({
        scenario: s.name,
        tried: 'set-up',
        trials: 1,
        held: 0,
        failures: [{ trial: 'set-up', seed: opts.seed, problems: [(err as Error).stack ?? String(err)] }],
        figures: '',
      });
    }
    opts.log(`   ${s.name} took ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
  await dropFixtures();
  return out;
}

export function renderTable(rows: Outcome[]): string {
  const cols = ['scenario', 'what was tried', 'trials', 'held', 'failed', 'figures'] as const;
  const cells = rows.map((r) => [r.scenario, r.tried, String(r.trials), String(r.held), String(r.failures.length), r.figures]);
  const widths = cols.map((c, i) => Math.max(c.length, ...cells.map((x) => x[i]!.length)));
  const line = (v: readonly string[]) => `| ${v.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(cols), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)].join('\n');
}

export function renderFailures(rows: Outcome[]): string {
  const lines: string[] = [];
  for (const r of rows) {
    for (const f of r.failures as Failure[]) {
      lines.push(`FAILED ${r.scenario} ${f.trial} — replay: npm run reliability -- --only ${r.scenario.split('/')[0]} --replay ${f.seed}`);
      for (const p of f.problems.slice(0, 8)) lines.push(`    ${p}`);
    }
  }
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      trials: { type: 'string' },
      seed: { type: 'string' },
      short: { type: 'boolean', default: false },
      only: { type: 'string' },
      replay: { type: 'string' },
      parallel: { type: 'string', default: '2' },
    },
    strict: true,
  });
  const seed = values.seed ? Number(values.seed) : Math.floor(Math.random() * 1e9);
  const opts: SuiteOptions = {
    seed,
    trials: values.trials ? Number(values.trials) : undefined,
    short: values.short ?? false,
    replay: values.replay ? values.replay.split(',').map(Number) : undefined,
    parallel: Math.max(1, Number(values.parallel) || 1),
    log: (s) => process.stderr.write(`${s}\n`),
  };
  process.stderr.write(`belay reliability suite, seed ${seed}${opts.short ? ' (short)' : ''} — replay the whole run with --seed ${seed}\n`);
  const rows = await runSuite(opts, values.only?.split(','));
  process.stdout.write(`\n${renderTable(rows)}\n`);
  const failed = rows.some((r) => r.failures.length > 0);
  if (failed) process.stdout.write(`\n${renderFailures(rows)}\n`);
  process.stdout.write(`\nseed ${seed}: ${failed ? 'SOME GUARANTEES DID NOT HOLD' : 'everything held'}\n`);
  return failed ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    (c) => process.exit(c),
    (err) => {
      process.stderr.write(`${(err as Error).stack ?? err}\n`);
      process.exit(1);
    },
  );
}
