// apply --workers N: a step's decided keys split into N disjoint key ranges, applied at once on N connections.
// The same final data as one worker, exact after a SIGKILL and a resume, undone byte for byte, one run at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import type { RunResult } from '../src/contract.ts';
import { UsageError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { requestControl } from '../src/state/controls.ts';
import type { BelayEvent } from '../src/state/events.ts';
import { runCli } from './helpers/cli.ts';
import { withDb } from './helpers/fixture.ts';
import { checksums, FLAGSHIP, flagship, writtenIds } from './helpers/flagship.ts';

const ROWS = 3_000;

/** Every row of every flagship table as text, in key order: equal means byte for byte. */
async function dump(db: Db): Promise<string> {
  const r = await db.query<{ s: string }>(`SELECT (SELECT md5(string_agg(e::text, '|' ORDER BY id)) FROM "EventType" e)
    || (SELECT md5(string_agg(u::text, '|' ORDER BY id)) FROM users u)
    || (SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM "_user_eventtype" x) AS s`);
  return r.rows[0]!.s;
}

/** Batches never overlap (within a round), no key is written twice, and the counts add up. */
async function assertTiled(db: Db, runId: number): Promise<void> {
  const b = await db.query<{ round: number; lo: number; hi: number; rows_changed: number }>(
    `SELECT round, lo::int AS lo, hi::int AS hi, rows_changed FROM belay.batches WHERE run_id = $1 ORDER BY round, lo::int`,
    [runId],
  );
  for (let i = 1; i < b.rows.length; i++) {
    const [p, c] = [b.rows[i - 1]!, b.rows[i]!];
    if (p.round === c.round) assert.ok(c.lo > p.hi, `batch [${c.lo}, ${c.hi}] starts after [${p.lo}, ${p.hi}] ended`);
  }
  const written = await writtenIds(db, runId);
  const changed = b.rows.reduce((n, r) => n + r.rows_changed, 0);
  assert.equal(written.length, changed, 'one decided row per changed row');
  assert.equal(new Set(written).size, changed, 'no row written twice');
}

async function reference(): Promise<Record<string, string>> {
  return withDb('postgres', async ({ db }) => {
    await generate(db, { rows: ROWS, seed: 21 });
    const r = await apply(db, await flagship(), { batchSize: 60 });
    assert.equal(r.status, 'completed');
    return checksums(db);
  });
}

test('--workers 3 ends with the same data as one worker; each worker keeps to its range; rollback restores byte for byte', async () => {
  const expected = await reference();
  await withDb('postgres', async ({ db }) => {
    await generate(db, { rows: ROWS, seed: 21 });
    const before = await dump(db);
    const events: BelayEvent[] = [];
    const r = await safeApply(db, await flagship(), { batchSize: 60, workers: 3, backup: false, onEvent: (e) => events.push(e) });
    assert.equal(r.status, 'completed', String(r.error?.message));
    assert.deepEqual(await checksums(db), expected, 'the same tables as a run with one worker');
    await assertTiled(db, r.runId);
    const started = events.find((e) => e.type === 'workers-started');
    assert.ok(started && started.type === 'workers-started' && started.workers === 3, 'round 0 is walked by 3 workers');
    const ranges = await db.query<{ worker: number; after: number | null; upper: number | null; done: boolean }>(
      `SELECT worker, after_key::int AS after, upper_key::int AS upper, done FROM belay.ranges WHERE run_id = $1 AND round = 0 ORDER BY worker`,
      [r.runId],
    );
    assert.equal(ranges.rows.length, 3);
    assert.ok(
      ranges.rows.every((x) => x.done),
      'every range done',
    );
    // every committed batch of a worker lies inside its range
    for (const e of events) {
      if (e.type !== 'batch-committed' || e.round !== 0) continue;
      assert.notEqual(e.worker, undefined, 'a worker wrote it');
      const g = ranges.rows[e.worker!]!;
      assert.ok((g.after === null || Number(e.lo) > g.after) && (g.upper === null || Number(e.hi) <= g.upper), `batch [${e.lo}, ${e.hi}] in range ${e.worker}`);
    }
    const byWorker = new Set(events.flatMap((e) => (e.type === 'batch-committed' && e.worker !== undefined ? [e.worker] : [])));
    assert.equal(byWorker.size, 3, 'all three workers committed batches');
    const nos = (await db.query<{ batch_no: number }>(`SELECT batch_no FROM belay.batches WHERE run_id = $1 ORDER BY 1`, [r.runId])).rows.map(
      (x) => x.batch_no,
    );
    assert.equal(new Set(nos).size, nos.length, 'batch numbers are unique');

    const rb = await rollback(db, r.runId);
    assert.equal(rb.status, 'rolled_back');
    assert.equal(rb.conflictCount, 0);
    assert.equal(await dump(db), before, 'rollback restores every table byte for byte');
  });
});

test('SIGKILL during a 3-worker apply, then resume (same or other --workers), equals an uninterrupted run', async (t) => {
  const expected = await reference();
  for (const [killAfter, resumeWith] of [
    [7, '3'],
    [12, '1'],
  ] as const) {
    t.diagnostic(`SIGKILL after ${killAfter} batches, resumed with --workers ${resumeWith}`);
    await withDb('postgres', async (f) => {
      await generate(f.db, { rows: ROWS, seed: 21 });
      const args = ['apply', FLAGSHIP, '--db', f.url, '--batch-size', '60', '--no-backup'];
      const killed = await runCli(['--json', ...args, '--workers', '3'], { killAfterBatches: killAfter });
      assert.equal(killed.signal, 'SIGKILL', `the kill landed before the run finished (code ${killed.code}): ${killed.stderr}`);
      const mid = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.ranges WHERE NOT done`);
      assert.ok(mid.rows[0]!.n > 0, 'the kill left ranges unfinished');
      const done = await runCli([...args, '--workers', resumeWith]);
      assert.equal(done.code, 0, `the re-run resumes and completes: ${done.stderr}`);
      assert.match(done.stderr, /resumed from its last checkpoint/);
      assert.deepEqual(await checksums(f.db), expected, 'ends as the uninterrupted run');
      const runs = await f.db.query<{ id: number; status: string }>(`SELECT id::int AS id, status FROM belay.runs`);
      assert.deepEqual(
        runs.rows.map((r) => r.status),
        ['completed'],
        'one run, completed',
      );
      await assertTiled(f.db, runs.rows[0]!.id);
    });
  }
});

test('the advisory lock refuses a second apply while a 3-worker apply runs', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await generate(db, { rows: ROWS, seed: 21 });
    const other = await openDb(url);
    try {
      let second: Promise<RunResult> | undefined;
      const r = await safeApply(db, await flagship(), {
        batchSize: 20,
        workers: 3,
        backup: false,
        onEvent: (e) => {
          if (e.type === 'batch-committed' && !second) second = flagship().then((m) => safeApply(other, m, { workers: 3, backup: false }));
        },
      });
      assert.equal(r.status, 'completed', String(r.error?.message));
      const s = await second!;
      assert.equal(s.status, 'refused');
      assert.equal(s.error?.code, 'BELAY_LOCKED', String(s.error?.message));
    } finally {
      await other.close();
    }
  });
});

test('a pause, then an abort --rollback, from another connection stop all three workers; the rollback is exact', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await generate(db, { rows: ROWS, seed: 21 });
    const before = await dump(db);
    const other = await openDb(url);
    try {
      let committed = 0;
      let asked: Promise<unknown> | undefined;
      const events: BelayEvent[] = [];
      const r = await safeApply(db, await flagship(), {
        batchSize: 40,
        workers: 3,
        backup: false,
        onEvent: (e) => {
          events.push(e);
          if (e.type !== 'batch-committed' || ++committed !== 6) return;
          const paused = (async () => {
            await requestControl(other, e.runId, 'pause', {}, { osUser: 'test' });
            for (let i = 0; i < 100; i++) {
              const s = await other.query<{ status: string }>(`SELECT status FROM belay.runs WHERE id = $1`, [e.runId]);
              if (s.rows[0]?.status === 'paused') break;
              await new Promise((res) => setTimeout(res, 100));
            }
            // the other workers finish the batch they are in, then wait with no transaction open
            const open = async () =>
              (
                await other.query<{ n: number }>(
                  `SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name LIKE 'belay worker%' AND xact_start IS NOT NULL`,
                )
              ).rows[0]!.n;
            for (let i = 0; i < 30 && (await open()) > 0; i++) await new Promise((res) => setTimeout(res, 100));
            await new Promise((res) => setTimeout(res, 500));
            assert.equal(await open(), 0, 'no worker holds a transaction while paused');
          })();
          // whatever the checks found, the run is let go
          asked = paused.finally(() => requestControl(other, e.runId, 'abort-rollback', {}, { osUser: 'test' }));
        },
      });
      await asked;
      assert.equal(r.status, 'rolled_back', String(r.error?.message));
      assert.equal(await dump(db), before, 'every committed batch of every worker undone, byte for byte');
      const left = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.batches WHERE run_id = $1 AND rolled_back_at IS NULL`, [r.runId]);
      assert.equal(left.rows[0]!.n, 0);
    } finally {
      await other.close();
    }
  });
});

test('the throttle holds every worker while an old transaction is open, and all go on when it ends', async () => {
  const expected = await reference();
  await withDb('postgres', async ({ db, url }) => {
    await generate(db, { rows: ROWS, seed: 21 });
    const other = await openDb(url);
    try {
      const committed: number[] = [];
      let opened: Promise<void> | undefined;
      let window: { from: number; to: number } | undefined;
      const events: BelayEvent[] = [];
      const r = await safeApply(db, await flagship(), {
        batchSize: 20,
        workers: 3,
        backup: false,
        throttle: { maxTransactionAgeMs: 300, pollMs: 100 },
        onEvent: (e) => {
          events.push(e);
          if (e.type === 'batch-committed') committed.push(performance.now());
          // before the first batch: every worker finds the transaction there
          if (e.type !== 'step-started') return;
          opened = (async () => {
            await other.query('BEGIN');
            await other.query('SELECT txid_current()');
            const from = performance.now();
            await new Promise((res) => setTimeout(res, 2_500));
            await other.query('COMMIT');
            window = { from, to: performance.now() };
          })();
        },
      });
      await opened;
      assert.equal(r.status, 'completed', String(r.error?.message));
      assert.deepEqual(await checksums(db), expected);
      const throttled = events.filter((e) => e.type === 'throttled');
      assert.ok(throttled.length >= 2, `more than one worker waited: ${throttled.length}`);
      // from the moment the transaction is older than the limit (plus a batch in flight) until it ends, no batch commits
      const held = committed.filter((t) => t > window!.from + 300 + 600 && t < window!.to);
      assert.equal(held.length, 0, `batches committed while the throttle held: ${held.length}`);
      assert.ok(
        committed.some((t) => t > window!.to),
        'the workers went on after it ended',
      );
    } finally {
      await other.close();
    }
  });
});

test('PGlite refuses --workers 2 with a usage error (exit 2), and nothing is written', async () => {
  await withDb('pglite', async ({ db }) => {
    await generate(db, { rows: 200, seed: 21 });
    await assert.rejects(
      async () => safeApply(db, await flagship(), { workers: 2, backup: false }),
      (err: unknown) => err instanceof UsageError && /PGlite is a single session/.test(err.message),
    );
    const s = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname = 'belay'`);
    assert.equal(s.rows[0]!.n, 0, 'no state schema was created');
  });
  await withDb(
    'pglite',
    async (f) => {
      await f.db.close();
      const r = await runCli(['apply', FLAGSHIP, '--db', f.url, '--workers', '2']);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /PGlite is a single session/);
      assert.match(r.stderr, /--workers 1/);
    },
    { persistent: true },
  );
});
