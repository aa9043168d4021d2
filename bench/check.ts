// Figure: `belay check` (runChecks) on the flagship with N generated event types, against the time
// of one sequential scan of the tables it reads (SELECT count(*) on each, summed). Target: 3x or less.
// Usage: node --import tsx bench/check.ts [rows=1000000] [--db postgres://…/db]
// Without --db it creates (and drops) a database on BELAY_BENCH_SERVER (default the local server).
import { copyOf, flagshipTemplate, withScratchDb } from './template.ts';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { generate } from '../examples/event-type-owner/generate.ts';
import { runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { qualified } from '../src/db/sql.ts';
import { loadMigration } from '../src/spec/load.ts';

const FLAGSHIP = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../examples/event-type-owner');

export interface CheckBench {
  rows: number;
  /** Median wall time of runChecks over every check of the flagship, ms. */
  checkMs: number;
  /** Median of the summed count(*) scans of the tables the checks read, ms. */
  scanMs: number;
  /** checkMs / scanMs: the target is 3 or less. */
  ratio: number;
  /** Per check, from the median run. */
  perCheck: Array<{ code: string; ms: number; count: number }>;
  /** Per table, median ms of one count(*). */
  scans: Record<string, number>;
  runs: number;
  /** The step's projection alone over the whole key range (what unique-after must evaluate), ms, last run. */
  projectionMs: number;
  /**
   * One aggregate of the link table over valid links (owner count and lowest user per event type), ms, last
   * run: the least work the flagship's classification and unique-index prediction both need.
   */
  linkAggregateMs: number;
}

/** Valid links per event type: what every whole-table check of the flagship starts from. */
const LINK_AGGREGATE_SQL = `SELECT count(*) FROM (SELECT l."A", count(*), min(l."B") FROM "_user_eventtype" l JOIN users u ON u.id = l."B" GROUP BY l."A") v`;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Generates `rows` event types into db (unless generate: false), then measures checks and scans, median of `runs`. */
export async function benchCheck(db: Db, rows: number, opts: { generate?: boolean; runs?: number } = {}): Promise<CheckBench> {
  const runs = opts.runs ?? Number(process.env.BENCH_RUNS ?? 3);
  if (opts.generate !== false) await generate(db, { rows });
  await db.query('VACUUM ANALYZE users, "EventType", "_user_eventtype"');
  const m = await loadMigration(FLAGSHIP);
  const tables = m.spec.tables;
  const scans: Record<string, number[]> = Object.fromEntries(tables.map((t) => [t, []]));
  for (const t of tables) await db.query(`SELECT count(*) FROM ${qualified(t)}`); // warm the cache alike for both sides
  const checkRuns: Array<{ ms: number; perCheck: CheckBench['perCheck'] }> = [];
  for (let i = 0; i < runs; i++) {
    for (const t of tables) {
      const t0 = performance.now();
      await db.query(`SELECT count(*) FROM ${qualified(t)}`);
      scans[t]!.push(performance.now() - t0);
    }
    const t0 = performance.now();
    const r = await runChecks(db, m);
    checkRuns.push({ ms: performance.now() - t0, perCheck: r.findings.map((f) => ({ code: f.code, ms: Math.round(f.durationMs), count: f.count })) });
  }
  // the share of the projection itself: belay cannot be faster than the user's SQL it has to run once
  const step = m.spec.steps.find((s) => s.kind === 'batched')!;
  let projectionMs = 0;
  if (step.kind === 'batched') {
    const range = await db.query<{ lo: string; hi: string }>(`SELECT min(id)::text AS lo, max(id)::text AS hi FROM ${qualified(step.table)}`);
    const t0 = performance.now();
    // what unique-after runs: the set-based whole-table form when the step has one
    const sql = step.decide ?? step.wholeTableProjection ?? step.projection;
    await db.query(`SELECT count(*) FROM (${sql}) p WHERE $1::int IS NOT NULL OR $2::int IS NULL`, [range.rows[0]!.lo, range.rows[0]!.hi]);
    projectionMs = performance.now() - t0;
  }
  const a0 = performance.now();
  await db.query(LINK_AGGREGATE_SQL);
  const linkAggregateMs = performance.now() - a0;
  const scanMs = tables.reduce((s, t) => s + median(scans[t]!), 0);
  const mid = [...checkRuns].sort((a, b) => a.ms - b.ms)[Math.floor(runs / 2)]!;
  return {
    rows,
    checkMs: mid.ms,
    scanMs,
    ratio: mid.ms / scanMs,
    perCheck: mid.perCheck,
    scans: Object.fromEntries(tables.map((t) => [t, median(scans[t]!)])),
    runs,
    projectionMs,
    linkAggregateMs,
  };
}

async function main(argv: string[]): Promise<void> {
  const dbAt = argv.indexOf('--db');
  const url = dbAt >= 0 ? argv[dbAt + 1] : undefined;
  const rows = Number(argv.find((a, i) => /^\d/.test(a) && argv[i - 1] !== '--db') ?? 1_000_000);
  await withScratchDb('check', url, async (db) => {
    const b = await benchCheck(db, rows);
    console.log(`belay check on ${b.rows.toLocaleString('en')} event types (${db.kind}), median of ${b.runs}:`);
    for (const c of b.perCheck) console.log(`  ${c.code.padEnd(24)} ${String(c.ms).padStart(7)} ms  ${c.count} rows`);
    console.log(`  checks total        ${b.checkMs.toFixed(0).padStart(7)} ms`);
    console.log(
      `  one seq scan        ${b.scanMs.toFixed(0).padStart(7)} ms  (${Object.entries(b.scans)
        .map(([t, ms]) => `${t} ${ms.toFixed(0)}`)
        .join(', ')})`,
    );
    console.log(`  projection alone    ${b.projectionMs.toFixed(0).padStart(7)} ms  (the step's whole-table form, inside unique-after)`);
    console.log(
      `  link aggregate      ${b.linkAggregateMs.toFixed(0).padStart(7)} ms  (valid links per event type: the least every whole-table check needs; ${(b.linkAggregateMs / b.scanMs).toFixed(1)}x the scan)`,
    );
    console.log(`  ratio               ${b.ratio.toFixed(2).padStart(7)} x   (target 3x or less)`);
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));

/** For npm run bench (bench/run.ts): belay check on a copy of the generated flagship, as Markdown. */
export async function report(rows: number): Promise<string> {
  const c = await copyOf(await flagshipTemplate(rows), 'check');
  try {
    const b = await benchCheck(c.db, rows, { generate: false, runs: 1 });
    return [
      `belay check on ${b.rows.toLocaleString('en-US')} event types, ${b.runs} run:`,
      '| work | ms |',
      '| --- | ---: |',
      ...b.perCheck.map((x) => `| check ${x.code} (${x.count} rows) | ${x.ms.toFixed(0)} |`),
      `| all checks | ${b.checkMs.toFixed(0)} |`,
      `| one sequential scan of the tables read | ${b.scanMs.toFixed(0)} |`,
      `| the step's whole-table projection alone (inside unique-after) | ${b.projectionMs.toFixed(0)} |`,
      `| one aggregate of the valid links per event type (the least every whole-table check needs) | ${b.linkAggregateMs.toFixed(0)} |`,
      '',
      `ratio check / scan: ${b.ratio.toFixed(1)}x (target 3x or less); the link aggregate alone: ${(b.linkAggregateMs / b.scanMs).toFixed(1)}x the scan`,
    ].join('\n');
  } finally {
    await c.drop();
  }
}
