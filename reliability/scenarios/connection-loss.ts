// 2. Lost connections: the server ends belay's backend (pg_terminate_backend) mid-batch, during apply
// and during rollback. Guaranteed behaviour: belay stops with exit 4 (BELAY_CONNECTION), a message that
// says the run can resume, the run left resumable; the same command run again completes the work.
import { auditBatches, compareTables, runState, tableChecksums } from '../lib/audit.ts';
import { runBelay } from '../lib/belay-cli.ts';
import { applyArgs, flagshipFixture, MIGRATION_ID, sizes } from '../lib/flagship.ts';
import { Prng } from '../lib/prng.ts';
import { admin, cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { type Failure, outcome, type Outcome, type Scenario, type SuiteOptions, trialSeeds } from '../lib/suite.ts';

const EXIT_CONNECTION = 4;

/** Waits until belay's backend is inside a transaction (mid-batch), then ends it. Returns its state then. */
async function terminateMidBatch(datname: string, deadline: number): Promise<string | null> {
  return admin(async (a) => {
    while (performance.now() < deadline) {
      const r = await a.query<{ state: string; ok: boolean }>(
        `SELECT state, pg_terminate_backend(pid) AS ok FROM pg_stat_activity
          WHERE datname = $1 AND application_name = 'belay' AND state IN ('active', 'idle in transaction') LIMIT 1`,
        [datname],
      );
      if (r.rows[0]?.ok) return r.rows[0].state;
      await new Promise((res) => setTimeout(res, 2));
    }
    return null;
  });
}

export const connectionLoss: Scenario = {
  name: 'connection-loss',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const { rows, batch } = sizes(opts.short);
    const n = opts.trials === undefined ? (opts.short ? 1 : 10) : Math.max(1, Math.ceil(opts.trials / 5));
    const fx = await flagshipFixture(rows, batch, opts.seed);
    // the kill lands after a batch the run really commits: the batches walk the decided rows only
    const batches = fx.refBatches;
    const check = (first: { code: number | null; stderr: string }, problems: string[]) => {
      if (first.code !== EXIT_CONNECTION)
        problems.push(`interrupted command exited ${first.code}, expected ${EXIT_CONNECTION}: ${first.stderr.trim().slice(0, 300)}`);
      else if (!/lost the connection/.test(first.stderr) || !/resume/.test(first.stderr))
        problems.push(`message does not say the connection was lost and the run can resume: ${first.stderr.trim().slice(0, 300)}`);
    };
    const states: Record<string, number> = {};

    const applyResults: Array<Failure | null> = [];
    for (const [i, seed] of trialSeeds(opts, 'connection-loss-apply', n).entries()) {
      const target = new Prng(seed).int(2, Math.max(2, batches - 2));
      const name = await cloneDb(fx.base, 'conn_a');
      const problems: string[] = [];
      try {
        let seen = 0;
        let killer: Promise<string | null> | undefined;
        const first = await runBelay(['--json', ...applyArgs(dbUrl(name), batch)], {
          onLine: (l) => {
            if (l.includes('"batch-committed"') && ++seen === target) killer = terminateMidBatch(name, performance.now() + 10_000);
          },
        });
        const state = killer ? await killer : null;
        states[state ?? 'never'] = (states[state ?? 'never'] ?? 0) + 1;
        if (state === null) problems.push(`belay's backend was never caught mid-batch after batch ${target}`);
        else check(first, problems);
        const mid = await withDb(name, (db) => runState(db, MIGRATION_ID));
        if (state && !['running', 'failed'].includes(mid.runs[0]?.status ?? '')) problems.push(`run left as ${JSON.stringify(mid.runs)}, not resumable`);
        const again = await runBelay(applyArgs(dbUrl(name), batch, ['--wait']));
        if (again.code !== 0) problems.push(`re-run exited ${again.code}: ${again.stderr.trim().slice(0, 300)}`);
        await withDb(name, async (db) => {
          problems.push(...compareTables(fx.refSums, await tableChecksums(db), 'after re-run'));
          const st = await runState(db, MIGRATION_ID);
          if (st.runs.length !== 1 || st.runs[0]!.status !== 'completed') problems.push(`runs: ${JSON.stringify(st.runs)} (expected one completed)`);
          if (state && !st.events.includes('run-resumed')) problems.push('the re-run did not resume the interrupted run');
          if (st.runs[0])
            problems.push(...(await auditBatches(db, st.runs[0].id, { base: fx.baseImages, afterMatchesTable: true, changedRows: fx.refChanged })));
        });
      } finally {
        await dropDb(name);
      }
      applyResults.push(problems.length ? { trial: `apply #${i} (after batch ${target})`, seed, problems } : null);
    }

    const rbResults: Array<Failure | null> = [];
    for (const [i, seed] of trialSeeds(opts, 'connection-loss-rollback', n).entries()) {
      const target = new Prng(seed).int(2, Math.max(2, batches - 2));
      const name = await cloneDb(fx.applied, 'conn_r');
      const problems: string[] = [];
      try {
        let seen = 0;
        let killer: Promise<string | null> | undefined;
        const first = await runBelay(['--json', 'rollback', '1', '--db', dbUrl(name)], {
          onLine: (l) => {
            if (l.includes('"rollback-batch"') && ++seen === target) killer = terminateMidBatch(name, performance.now() + 10_000);
          },
        });
        const state = killer ? await killer : null;
        states[state ?? 'never'] = (states[state ?? 'never'] ?? 0) + 1;
        if (state === null) problems.push(`belay's backend was never caught mid-batch after rollback batch ${target}`);
        else check(first, problems);
        const again = await runBelay(['rollback', '1', '--db', dbUrl(name), '--wait']);
        if (again.code !== 0) problems.push(`re-run exited ${again.code}: ${again.stderr.trim().slice(0, 300)}`);
        await withDb(name, async (db) => {
          problems.push(...compareTables(fx.baseSums, await tableChecksums(db), 'after re-run of rollback'));
          const st = await runState(db, MIGRATION_ID);
          if (st.runs[0]?.status !== 'rolled_back') problems.push(`run is ${JSON.stringify(st.runs)} (expected rolled_back)`);
        });
      } finally {
        await dropDb(name);
      }
      rbResults.push(problems.length ? { trial: `rollback #${i} (after batch ${target})`, seed, problems } : null);
    }
    const caught = Object.entries(states)
      .map(([s, c]) => `${c}× ${s}`)
      .join(', ');
    return [
      outcome(
        'connection-loss/apply',
        'pg_terminate_backend(belay) mid-batch during apply, re-run',
        applyResults,
        `backend ended while: ${caught}; stop = exit 4, resumable`,
      ),
      outcome('connection-loss/rollback', 'pg_terminate_backend(belay) mid-batch during rollback, re-run', rbResults, 'stop = exit 4, re-run restores all'),
    ];
  },
};
