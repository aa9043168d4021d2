// 4. Concurrent application load during apply and during rollback. What is asserted exactly:
// - every write of the application is present afterwards (its log names each row's final values);
// - the migration's contract (examples/event-type-owner/reference.ts, computed on the data before the
//   run) holds row for row: the application never changes an input of the contract of an existing row
//   (slug, userId, teamId, links), and the rows it inserts have fresh slugs and no links, so the
//   expected outcome does not depend on when a batch ran. Edits to the contract's inputs mid-run have
//   no single right answer and are covered by rollback's conflict detection instead.
// - after the rollback, every pre-existing row's "userId" is its value before the run.
import { auditBatches, readImages } from '../lib/audit.ts';
import { checkLoggedWrites, runLoad, type LoadLog } from '../lib/app-load.ts';
import { runBelay } from '../lib/belay-cli.ts';
import { applyArgs, flagshipFixture, sizes } from '../lib/flagship.ts';
import { cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { type Failure, outcome, type Outcome, type Scenario, type SuiteOptions, trialSeeds } from '../lib/suite.ts';
import { computeExpected, readSnapshot } from '../../examples/event-type-owner/reference.ts';

/** The error lines of a CLI run (what and what to do), without progress output. */
export function errorLines(stderr: string): string {
  return (
    stderr
      .split('\n')
      .filter((l) => /error \[|^\s+(server|what to do):/.test(l))
      .join(' | ')
      .slice(0, 600) || stderr.trim().slice(-400)
  );
}

export const concurrentLoad: Scenario = {
  name: 'concurrent-load',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const { rows, batch } = sizes(opts.short);
    const n = opts.trials === undefined ? (opts.short ? 1 : 3) : Math.max(1, Math.ceil(opts.trials / 15));
    const rate = 300;
    const fx = await flagshipFixture(rows, batch, opts.seed);
    const snap = await withDb(fx.base, readSnapshot);
    const expected = computeExpected(snap);
    const ids = snap.eventTypes.id;
    const deletable = ids.filter((_, i) => snap.eventTypes.teamId[i] !== null);
    const users = [...snap.users];
    const applyRes: Array<Failure | null> = [];
    const rbRes: Array<Failure | null> = [];
    const logs: LoadLog[] = [];
    for (const [i, seed] of trialSeeds(opts, 'concurrent-load', n).entries()) {
      const name = await cloneDb(fx.base, 'load');
      const url = dbUrl(name);
      const problems: string[] = [];
      const rbProblems: string[] = [];
      try {
        const load = (s: number, stop: Promise<unknown>, deletableNow: number[]) =>
          runLoad(
            { url, seed: s, rate, maxWrites: 30_000, maxMs: 120_000, connections: 2, updatable: ids, deletable: deletableNow, users },
            stop.then(() => undefined),
          );
        // the application writes meanwhile: its own edits are warnings of the post-run verification, not failures
        const applying = runBelay(applyArgs(url, batch, ['--concurrent-writes']));
        const log1 = await load(seed, applying, deletable);
        const run = await applying;
        logs.push(log1);
        if (run.code !== 0) problems.push(`apply under load exited ${run.code}: ${errorLines(run.stderr)}`);
        await withDb(name, async (db) => {
          problems.push(...(await checkLoggedWrites(db, log1)));
          const now = await readImages(db, 'EventType', 'id', ['userId']);
          let wrong = 0;
          for (const id of ids) {
            if (log1.rows.get(id)?.exists === false) continue;
            const want = expected.owner.get(id) ?? null;
            const got = (JSON.parse(now.get(String(id)) ?? '{}') as { userId?: number | null }).userId;
            if (got !== want && wrong++ < 5) problems.push(`row ${id}: userId ${got}, the contract says ${want}`);
          }
          if (wrong > 5) problems.push(`… ${wrong} rows differ from the contract in all`);
          problems.push(...(await auditBatches(db, 1, { afterMatchesTable: true, changedRows: expected.changed.length })));
        });
        // rollback under a second wave of load
        const deletableNow = [...deletable, ...[...log1.rows].filter(([, r]) => r.exists && r.teamId != null).map(([id]) => id)].filter(
          (id) => log1.rows.get(id)?.exists !== false,
        );
        const rolling = runBelay(['rollback', '1', '--db', url]);
        const log2 = await load(seed + 1, rolling, deletableNow);
        const rb = await rolling;
        logs.push(log2);
        if (rb.code !== 0) rbProblems.push(`rollback under load exited ${rb.code}: ${errorLines(rb.stderr)}`);
        await withDb(name, async (db) => {
          const merged: LoadLog = { ...log2, rows: new Map([...log1.rows, ...log2.rows]) };
          for (const [id, r] of log2.rows) merged.rows.set(id, { ...(log1.rows.get(id) ?? {}), ...r });
          rbProblems.push(...(await checkLoggedWrites(db, merged)));
          const now = await readImages(db, 'EventType', 'id', ['userId']);
          let wrong = 0;
          for (const id of ids) {
            if (merged.rows.get(id)?.exists === false) continue;
            if (
              JSON.stringify(JSON.parse(now.get(String(id)) ?? 'null')) !== JSON.stringify(JSON.parse(fx.baseImages.get(String(id)) ?? 'null')) &&
              wrong++ < 5
            )
              rbProblems.push(`row ${id}: ${now.get(String(id))} after rollback, was ${fx.baseImages.get(String(id))}`);
          }
        });
      } finally {
        await dropDb(name);
      }
      applyRes.push(problems.length ? { trial: `apply #${i}`, seed, problems } : null);
      rbRes.push(rbProblems.length ? { trial: `rollback #${i}`, seed, problems: rbProblems } : null);
    }
    const total = (l: LoadLog) => l.writes.insert + l.writes.update + l.writes.delete;
    const fig = (ls: LoadLog[]) => {
      const w = ls.reduce((s, l) => s + total(l), 0);
      const ms = ls.reduce((s, l) => s + l.ms, 0);
      return `${w} app writes (${ls.reduce((s, l) => s + l.writes.insert, 0)} ins, ${ls.reduce((s, l) => s + l.writes.update, 0)} upd, ${ls.reduce((s, l) => s + l.writes.delete, 0)} del) at ${Math.round((w * 1000) / Math.max(1, ms))}/s`;
    };
    return [
      outcome(
        'concurrent-load/apply',
        `apply while the app writes ~${rate}/s: writes kept, contract row for row`,
        applyRes,
        fig(logs.filter((_, i) => i % 2 === 0)),
      ),
      outcome(
        'concurrent-load/rollback',
        `rollback while the app writes ~${rate}/s: writes kept, userId restored`,
        rbRes,
        fig(logs.filter((_, i) => i % 2 === 1)),
      ),
    ];
  },
};
