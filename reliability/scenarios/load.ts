// 7. pgbench as the application (reliability/load/*.sql) at a fixed rate during `belay apply` and during
// `belay rollback`: title updates, owner assignments and same-owner transfers on rows belay decided to write,
// inserts, link edits and slug renames that collide with belay's writes. Every application write logs
// itself in the same statement (app_audit), with where belay stood for the row at that moment. What must hold:
// - both commands complete: apply `completed` (exit 0), rollback `rolled_back` (exit 0, or 11 with conflicts);
// - every audited write is present afterwards (its row and column hold the last value the application wrote);
// - conflicts reported = conflicts made, key for key: rows the application wrote "userId" on while belay's
//   value held (same value included) are exactly the rollback's conflicts; decided rows it wrote before their
//   batch are exactly the rows skipped as changed; every row left out on the unique index was renamed before
//   its batch; every row skipped because its rule, evaluated again, no longer gave it the decided owner was
//   touched by the application (its links or slug, or a row sharing its slug);
// - every other pre-existing row's "userId" is back to its value before the run.
// Figures: those counts and the application's latency p50/p99/max, before belay (baseline, as long as an
// uninterrupted apply of the fixture), during apply and during rollback.
import { computeExpected, readSnapshot } from '../../examples/event-type-owner/reference.ts';
import { conflictMatch, installApp, ruleChangedMatch, type SetMatch, skippedByReason, writesByOp, writesKept } from '../lib/audited-app.ts';
import { FLAGSHIP, runBelay } from '../lib/belay-cli.ts';
import { flagshipFixture, MIGRATION_ID, sizes } from '../lib/flagship.ts';
import { flagshipWithOptions } from '../lib/spec-files.ts';
import { bench, benchWhile, type BenchRun, fmtLatency, pgbenchMissing, percentiles } from '../lib/pgbench.ts';
import { runState } from '../lib/audit.ts';
import { cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { type Failure, outcome, type Outcome, type Scenario, type SuiteOptions, trialSeeds } from '../lib/suite.ts';
import { errorLines } from './concurrent-load.ts';

export const RATE = 200;

const PARTS = ['apply', 'rollback', 'app', 'kept', 'conflicts'] as const;
type Part = (typeof PARTS)[number];

/** The short version shares the suite's fixture; the full one has a table large enough for a long apply. */
export function loadSizes(short: boolean): { rows: number; batch: number; clients: number; chunk: number } {
  return short ? { ...sizes(true), clients: 8, chunk: 3 } : { rows: 50_000, batch: 100, clients: 8, chunk: 5 };
}

const setLine = (what: string, m: SetMatch) =>
  `${what}: made ${m.made}, reported ${m.reported}${m.missed.length ? `, not reported ${m.missed.slice(0, 8).join(', ')}` : ''}${m.extra.length ? `, reported but not made ${m.extra.slice(0, 8).join(', ')}` : ''}`;

export interface LoadFigures {
  apply: string;
  rollback: string;
  kept: string;
  conflicts: string;
  latency: string;
  writes: string;
}

export const load: Scenario = {
  name: 'load',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const missing = pgbenchMissing();
    if (missing) {
      opts.log(`load: skipped, ${missing}`);
      return [];
    }
    const { rows, batch, clients, chunk } = loadSizes(opts.short);
    const fx = await flagshipFixture(rows, batch, opts.seed);
    const snap = await withDb(fx.base, readSnapshot);
    const expected = computeExpected(snap);
    const baseSeconds = Math.max(chunk, Math.round(fx.applyMs / 1000));
    const n = opts.trials === undefined ? 1 : Math.max(1, Math.ceil(opts.trials / 50));
    const out: Outcome[] = [];
    // the flagship as written, then with options.maxRejected raised to every row: the rows the application's
    // edits make the batches leave out then never stop the run, so its batches all commit and the rollback
    // that follows has every batch to undo while the application writes
    for (const variant of [undefined, rows]) {
      const spec = variant === undefined ? undefined : flagshipWithOptions({ maxRejected: variant });
      try {
        out.push(...(await trials(spec?.dir ?? FLAGSHIP, variant === undefined ? 'load' : 'load/maxRejected', variant)));
      } finally {
        spec?.remove();
      }
    }
    return out;

    async function trials(migration: string, tag: string, maxRejected: number | undefined): Promise<Outcome[]> {
      const rowsOf: Record<Part, Array<Failure | null>> = { apply: [], rollback: [], app: [], kept: [], conflicts: [] };
      const figures: LoadFigures[] = [];
      for (const [i, seed] of trialSeeds(opts, tag, n).entries()) {
        const name = await cloneDb(fx.base, 'pgbench');
        const url = dbUrl(name);
        const problems: Record<Part, string[]> = { apply: [], rollback: [], app: [], kept: [], conflicts: [] };
        try {
          const vars = await withDb(name, (db) => installApp(db, snap, expected));
          const app = (phase: number) => ({ url, phase, rate: RATE, clients, seed: seed + phase, vars });
          const check = (what: string, r: BenchRun) => {
            for (const p of r.problems) problems.app.push(`${what}: ${p}`);
            if (r.failed > 0) problems.app.push(`${what}: ${r.failed} application transaction(s) failed`);
          };
          const base = await bench(app(0), baseSeconds);
          check('baseline', base);

          // the batch size belay picks by default (adapted to 200 ms a batch), as a user runs it: a fixed
          // --batch-size stays at the size a unique violation split it down to for the rest of the step
          const applying = runBelay(['apply', migration, '--db', url, '--log-every', '1000000'], { timeoutMs: 900_000 });
          const during = await benchWhile(app(1), chunk, applying);
          const ap = await applying;
          check('during apply', during);
          const applyStatus = (await withDb(name, (db) => runState(db, MIGRATION_ID))).runs[0]?.status ?? 'no run';
          if (ap.code !== 0 || applyStatus !== 'completed')
            problems.apply.push(`apply under load exited ${ap.code}, run ${applyStatus}: ${errorLines(ap.stderr)}`);

          const rolling = runBelay(['rollback', '1', '--db', url], { timeoutMs: 900_000 });
          const duringRb = await benchWhile(app(2), chunk, rolling);
          const rb = await rolling;
          check('during rollback', duringRb);
          const rbStatus = (await withDb(name, (db) => runState(db, MIGRATION_ID))).runs[0]?.status ?? 'no run';
          if ((rb.code !== 0 && rb.code !== 11) || rbStatus !== 'rolled_back')
            problems.rollback.push(`rollback under load exited ${rb.code}, run ${rbStatus}: ${errorLines(rb.stderr)}`);

          const f = await withDb(name, async (db) => {
            const kept = await writesKept(db);
            problems.kept.push(...kept.problems);
            const m = { ...(await conflictMatch(db)), rule: await ruleChangedMatch(db) };
            for (const [what, x] of [
              ['rollback conflicts (userId written while belay held the row)', m.rollback],
              ['rows skipped as changed (userId written before their batch)', m.skipped],
              ['rows left out on the unique index (each renamed before its batch)', m.renamed],
              ['rows skipped because what their rule reads changed (each touched by the application)', m.rule],
            ] as const) {
              if (x.missed.length || x.extra.length) problems.conflicts.push(setLine(what, x));
            }
            // every pre-existing row the application did not give an owner is back to its value before the run
            const wrong = await db.query<{ id: number; now: number | null }>(
              `SELECT e.id, e."userId" AS now FROM "EventType" e JOIN unnest($1::int[], $2::int[]) AS b(id, u) ON b.id = e.id
              WHERE e."userId" IS DISTINCT FROM b.u AND NOT EXISTS (SELECT 1 FROM app_audit a WHERE a.k = e.id AND a.col = 'userId') LIMIT 5`,
              [snap.eventTypes.id, snap.eventTypes.userId],
            );
            for (const w of wrong.rows)
              problems.rollback.push(`row ${w.id}: userId ${w.now} after the rollback, was ${snap.eventTypes.userId[snap.eventTypes.id.indexOf(w.id)]}`);
            const skipped = await skippedByReason(db);
            const ops = await writesByOp(db);
            const lat = (r: BenchRun) => `${fmtLatency(percentiles(r.latencies))} (${r.transactions} tx in ${(r.ms / 1000).toFixed(0)} s)`;
            const list = (o: Record<string, number>) =>
              Object.entries(o)
                .map(([k, v]) => `${v} ${k}`)
                .join(', ') || 'none';
            return {
              apply: `exit ${ap.code}, ${applyStatus} in ${(ap.ms / 1000).toFixed(1)} s`,
              rollback: `exit ${rb.code}, ${rbStatus} in ${(rb.ms / 1000).toFixed(1)} s`,
              kept: `${kept.kept} of ${kept.finals} written values held (${kept.writes} audited writes)`,
              conflicts: [
                setLine('rollback conflicts', m.rollback),
                setLine('skipped as changed', m.skipped),
                setLine('left out on the unique index', m.renamed),
                setLine('skipped as their rule changed (touched by the application)', m.rule),
              ].join('; '),
              latency: `without belay ${lat(base)}; during apply ${lat(during)}; during rollback ${lat(duringRb)}`,
              writes: `${list(ops)}; left out by the batches: ${list(skipped)}`,
            };
          });
          figures.push(f);
          opts.log(`${tag} #${i}:\n   ${Object.values(f).join('\n   ')}`);
        } finally {
          if (process.env.BELAY_RELIABILITY_KEEP_DB === '1') opts.log(`load: kept database ${name}`);
          else await dropDb(name);
        }
        for (const part of PARTS) rowsOf[part].push(problems[part].length ? { trial: `${tag} #${i}`, seed, problems: problems[part] } : null);
      }
      const last = figures.at(-1);
      const at = `${RATE} tx/s, ${clients} clients, ${rows} rows${maxRejected === undefined ? '' : `, maxRejected ${maxRejected}`}`;
      return [
        outcome(`${tag}/apply`, `apply while pgbench writes (${at}): run completed`, rowsOf.apply, last ? `${last.apply}; ${last.writes}` : ''),
        outcome(`${tag}/rollback`, `rollback while pgbench writes: run rolled back, other rows restored`, rowsOf.rollback, last?.rollback ?? ''),
        outcome(`${tag}/writes-kept`, 'every audited application write present afterwards', rowsOf.kept, last?.kept ?? ''),
        outcome(`${tag}/conflicts`, 'conflicts reported = conflicts made, key for key', rowsOf.conflicts, last?.conflicts ?? ''),
        outcome(`${tag}/application`, 'pgbench ran without a failed transaction; its latency', rowsOf.app, last?.latency ?? ''),
      ];
    }
  },
};
