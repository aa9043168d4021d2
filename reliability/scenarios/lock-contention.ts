// 3. Lock contention: another transaction holds row locks (SELECT … FOR UPDATE) on rows that an early
// batch writes, for a few seconds. The batch must time out (lock_timeout), retry with backoff, and
// complete once the lock is gone; no single wait may exceed lock_timeout (+ slack for the poll).
import { auditBatches, compareTables, runState, tableChecksums } from '../lib/audit.ts';
import { runBelay } from '../lib/belay-cli.ts';
import { flagshipFixture, MIGRATION_ID, sizes } from '../lib/flagship.ts';
import { Prng } from '../lib/prng.ts';
import { cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { flagshipWithOptions } from '../lib/spec-files.ts';
import { type Failure, outcome, type Outcome, type Scenario, type SuiteOptions, trialSeeds } from '../lib/suite.ts';
import { openDb } from '../../src/db/connection.ts';

export const LOCK_TIMEOUT_MS = 200;
/** Poll interval and statement set-up before the lock wait starts. */
export const WAIT_SLACK_MS = 150;

export const lockContention: Scenario = {
  name: 'lock-contention',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const { rows, batch } = sizes(opts.short);
    const n = opts.trials === undefined ? (opts.short ? 1 : 5) : Math.max(1, Math.ceil(opts.trials / 10));
    const holdMs = opts.short ? 1_500 : 3_000;
    const fx = await flagshipFixture(rows, batch, opts.seed);
    // the keys each batch of the reference run changed: the holder locks those of one early batch
    const changedByBatch = await withDb(fx.applied, async (db) => {
      const r = await db.query<{ batch_no: number; keys: number[] }>(
        `SELECT b.batch_no, array_agg(d.k::int ORDER BY d.k) AS keys FROM belay.batches b JOIN belay."decision_r1_s0" d
            ON d.round = b.round AND d.skipped IS NULL AND d.k BETWEEN b.lo::int AND b.hi::int
          WHERE b.run_id = 1 GROUP BY b.batch_no ORDER BY b.batch_no`,
      );
      return r.rows;
    });
    const spec = flagshipWithOptions({ lockTimeoutMs: LOCK_TIMEOUT_MS });
    const results: Array<Failure | null> = [];
    let maxWait = 0;
    let retries = 0;
    try {
      for (const [i, seed] of trialSeeds(opts, 'lock-contention', n).entries()) {
        const target = changedByBatch[new Prng(seed).int(1, Math.min(3, changedByBatch.length - 1))]!;
        const name = await cloneDb(fx.base, 'lock');
        const problems: string[] = [];
        const holder = await openDb(dbUrl(name), { applicationName: 'belay-reliability-holder' });
        const poller = await openDb(dbUrl(name), { applicationName: 'belay-reliability-poller' });
        try {
          await holder.query('BEGIN');
          const locked = await holder.query(`SELECT id FROM "EventType" WHERE id = ANY($1::int[]) FOR UPDATE`, [target.keys]);
          let released = false;
          let releaseTimer: NodeJS.Timeout | undefined;
          const release = async () => {
            if (released) return;
            released = true;
            await holder.query('COMMIT');
          };
          // the longest lock wait of belay's backend, as the server sees it
          let polling = true;
          let trialMax = 0;
          const poll = (async () => {
            while (polling) {
              const r = await poller.query<{ ms: number }>(
                `SELECT (extract(epoch FROM clock_timestamp() - query_start) * 1000)::float8 AS ms FROM pg_stat_activity
                  WHERE datname = current_database() AND application_name = 'belay' AND wait_event_type = 'Lock'`,
              );
              for (const x of r.rows) trialMax = Math.max(trialMax, x.ms);
              await new Promise((res) => setTimeout(res, 10));
            }
          })();
          const events: Array<{ type: string; sqlstate?: string; batchNo?: number }> = [];
          const run = await runBelay(['--json', 'apply', spec.dir, '--db', dbUrl(name), '--batch-size', String(fx.batch)], {
            onLine: (l) => {
              if (!l.startsWith('{')) return;
              const e = JSON.parse(l) as { type: string; sqlstate?: string; batchNo?: number };
              events.push(e);
              if (e.type === 'batch-retry' && !releaseTimer) releaseTimer = setTimeout(() => void release(), holdMs);
            },
          });
          clearTimeout(releaseTimer);
          await release();
          polling = false;
          await poll;
          maxWait = Math.max(maxWait, trialMax);
          const tried = events.filter((e) => e.type === 'batch-retry');
          retries += tried.length;
          if (run.code !== 0) problems.push(`apply exited ${run.code}: ${run.stderr.trim().slice(0, 300)}`);
          if (tried.length === 0) problems.push(`no batch-retry event although ${locked.rowCount} rows of batch ${target.batch_no} were locked`);
          if (tried.some((e) => e.sqlstate !== '55P03')) problems.push(`retries for other reasons: ${JSON.stringify(tried.map((e) => e.sqlstate))}`);
          if (trialMax > LOCK_TIMEOUT_MS + WAIT_SLACK_MS) problems.push(`a lock wait lasted ${Math.round(trialMax)} ms, lock_timeout is ${LOCK_TIMEOUT_MS} ms`);
          await withDb(name, async (db) => {
            problems.push(...compareTables(fx.refSums, await tableChecksums(db), 'after contention'));
            const st = await runState(db, MIGRATION_ID);
            if (st.runs.length !== 1 || st.runs[0]!.status !== 'completed') problems.push(`runs: ${JSON.stringify(st.runs)}`);
            const a = await db.query<{ attempts: number }>(`SELECT attempts FROM belay.batches WHERE run_id = 1 AND batch_no = $1`, [target.batch_no]);
            if ((a.rows[0]?.attempts ?? 0) < 2) problems.push(`batch ${target.batch_no} recorded ${a.rows[0]?.attempts} attempt(s)`);
            if (st.runs[0]) problems.push(...(await auditBatches(db, 1, { base: fx.baseImages, afterMatchesTable: true, changedRows: fx.refChanged })));
          });
        } finally {
          await holder.close();
          await poller.close();
          await dropDb(name);
        }
        results.push(problems.length ? { trial: `#${i} (batch ${target.batch_no} locked)`, seed, problems } : null);
      }
    } finally {
      spec.remove();
    }
    return [
      outcome(
        'lock-contention',
        `FOR UPDATE on a batch's rows for ${holdMs / 1000} s, lock_timeout ${LOCK_TIMEOUT_MS} ms`,
        results,
        `${retries} retries (55P03); longest lock wait ${Math.round(maxWait)} ms (limit ${LOCK_TIMEOUT_MS} + ${WAIT_SLACK_MS})`,
      ),
    ];
  },
};
