// 1. Crashes: SIGKILL belay (apply, then rollback) at a random moment, run the same command again, and
// compare with an uninterrupted run: table checksums, batches (none twice), undo log, run status.
import { auditBatches, compareTables, runState, tableChecksums } from '../lib/audit.ts';
import { runBelay } from '../lib/belay-cli.ts';
import { Prng } from '../lib/prng.ts';
import { applyArgs, flagshipFixture, MIGRATION_ID, sizes } from '../lib/flagship.ts';
import { cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { type Failure, outcome, type Outcome, pool, type Scenario, type SuiteOptions, trialSeeds } from '../lib/suite.ts';

/**
 * A kill moment, uniform over the run from shortly before the uninterrupted run announced its run
 * record (start-up: node, tsx, loading the migration, connecting) to its end: kills early in start-up
 * only prove that nothing happened, a few of them are kept.
 */
export function killMoment(prng: Prng, startupMs: number, runMs: number): number {
  const from = Math.min(startupMs * 0.8, runMs * 0.5);
  return Math.round(from + prng.next() * (runMs - from));
}

export const crash: Scenario = {
  name: 'crash',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const { rows, batch } = sizes(opts.short);
    const n = opts.trials ?? (opts.short ? 3 : 50);
    const fx = await flagshipFixture(rows, batch, opts.seed);
    const { base, applied, baseSums, refSums, refChanged, baseImages } = fx;
    const ref = { ms: fx.applyMs };
    const refRb = { ms: fx.rollbackMs };
    const args = (url: string) => applyArgs(url, batch);
    {
      opts.log(
        `crash: ${rows} rows, batch ${batch}: uninterrupted apply ${Math.round(ref.ms)} ms (${refChanged} rows changed), rollback ${Math.round(refRb.ms)} ms`,
      );

      const applyKinds: Record<string, number> = {};
      const applyResults = await pool(trialSeeds(opts, 'crash-apply', n), opts.parallel, async (seed, i): Promise<Failure | null> => {
        const prng = new Prng(seed);
        const killAt = killMoment(prng, fx.startupMs, ref.ms);
        const name = await cloneDb(base, 'crash_a');
        const problems: string[] = [];
        try {
          const url = dbUrl(name);
          const first = await runBelay(args(url), { killAfterMs: killAt });
          const mid = await withDb(name, (db) => runState(db, MIGRATION_ID));
          const kind = !first.killed
            ? 'finished first'
            : mid.runs.length === 0
              ? 'before the run record'
              : mid.runs.at(-1)!.status === 'completed'
                ? 'after completion'
                : 'mid-run';
          applyKinds[kind] = (applyKinds[kind] ?? 0) + 1;
          const again = await runBelay([...args(url), '--wait']);
          const alreadyDone = again.code === 8 && /BELAY_ALREADY_APPLIED/.test(again.stderr) && kind !== 'mid-run' && kind !== 'before the run record';
          if (again.code !== 0 && !alreadyDone) problems.push(`re-run exited ${again.code}: ${again.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
          await withDb(name, async (db) => {
            problems.push(...compareTables(refSums, await tableChecksums(db), 'after re-run'));
            const st = await runState(db, MIGRATION_ID);
            if (st.runs.length !== 1 || st.runs[0]!.status !== 'completed')
              problems.push(`runs after re-run: ${JSON.stringify(st.runs)} (expected one completed run)`);
            if (kind === 'mid-run') {
              if (!st.events.includes('run-resumed')) problems.push('the interrupted run was not resumed (no run-resumed event)');
              if (!/resumed/.test(again.stderr + again.stdout)) problems.push('the re-run did not say it resumed');
            }
            if (st.runs[0]) problems.push(...(await auditBatches(db, st.runs[0].id, { base: baseImages, afterMatchesTable: true, changedRows: refChanged })));
          });
        } finally {
          await dropDb(name);
        }
        return problems.length ? { trial: `apply #${i} (kill at ${killAt} ms)`, seed, problems } : null;
      });

      const rbKinds: Record<string, number> = {};
      const rbResults = await pool(trialSeeds(opts, 'crash-rollback', n), opts.parallel, async (seed, i): Promise<Failure | null> => {
        const prng = new Prng(seed);
        const killAt = killMoment(prng, fx.startupMs, refRb.ms);
        const name = await cloneDb(applied, 'crash_r');
        const problems: string[] = [];
        try {
          const url = dbUrl(name);
          const first = await runBelay(['rollback', '1', '--db', url], { killAfterMs: killAt });
          const mid = await withDb(name, (db) => runState(db, MIGRATION_ID));
          const status = mid.runs[0]?.status;
          const kind = !first.killed
            ? 'finished first'
            : status === 'completed'
              ? 'before rollback started'
              : status === 'rolling_back'
                ? 'mid-rollback'
                : 'after completion';
          rbKinds[kind] = (rbKinds[kind] ?? 0) + 1;
          const again = await runBelay(['rollback', '1', '--db', url, '--wait']);
          if (again.code !== 0) problems.push(`re-run exited ${again.code}: ${again.stderr.trim().split('\n').slice(0, 3).join(' | ')}`);
          await withDb(name, async (db) => {
            problems.push(...compareTables(baseSums, await tableChecksums(db), 'after re-run of rollback'));
            const st = await runState(db, MIGRATION_ID);
            if (st.runs.length !== 1 || st.runs[0]!.status !== 'rolled_back')
              problems.push(`runs after rollback: ${JSON.stringify(st.runs)} (expected one rolled_back run)`);
            const u = await db.query<{ open: number; restored: number; rows: number }>(
              `SELECT count(*) FILTER (WHERE rolled_back_at IS NULL)::int AS open, coalesce(sum(restored), 0)::int AS restored, coalesce(sum(rows_changed), 0)::int AS rows FROM belay.batches WHERE run_id = 1`,
            );
            const { open, restored, rows: written } = u.rows[0]!;
            if (open > 0) problems.push(`${open} batch(es) not marked rolled back`);
            if (restored !== written || written !== refChanged)
              problems.push(`restored ${restored} of ${written} written rows (the run changed ${refChanged}): a batch restored twice or missed`);
            if (kind === 'mid-rollback' && st.events.filter((e) => e === 'rollback-started').length < 2)
              problems.push('the interrupted rollback left no trace of being resumed');
          });
        } finally {
          await dropDb(name);
        }
        return problems.length ? { trial: `rollback #${i} (kill at ${killAt} ms)`, seed, problems } : null;
      });
      const fmt = (k: Record<string, number>) =>
        Object.entries(k)
          .map(([a, b]) => `${b} ${a}`)
          .join(', ');
      return [
        outcome(
          'crash/apply',
          `SIGKILL apply at a random moment of ${Math.round(ref.ms)} ms, re-run`,
          applyResults,
          `${rows} rows, ${refChanged} changed; kills: ${fmt(applyKinds)}`,
        ),
        outcome('crash/rollback', `SIGKILL rollback at a random moment of ${Math.round(refRb.ms)} ms, re-run`, rbResults, `kills: ${fmt(rbKinds)}`),
      ];
    }
  },
};
