// kill -9 during apply, then re-run: the state equals that of an uninterrupted run, no batch applied twice.
// Short version for npm test; `npm run reliability` runs the long one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { withDb } from './helpers/fixture.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { checksums, FLAGSHIP, flagship, writtenIds } from './helpers/flagship.ts';
import { apply } from '../src/execute/apply.ts';
import { rng, runCli } from './helpers/cli.ts';

const ROWS = 3_000;
const TRIALS = Number(process.env.BELAY_CRASH_TRIALS ?? 2);
/** Fixed, so that a run is reproducible; BELAY_CRASH_SEED replays another. */
const SEED = Number(process.env.BELAY_CRASH_SEED ?? 20_261_201);

/** Batches must tile the key space: no range twice, no overlap, and counts that add up. */
async function assertNoBatchTwice(db: Db): Promise<void> {
  const b = await db.query<{ batch_no: number; lo: number; hi: number; rows_changed: number }>(
    `SELECT batch_no, lo::int AS lo, hi::int AS hi, rows_changed FROM belay.batches ORDER BY batch_no`,
  );
  for (let i = 1; i < b.rows.length; i++) {
    assert.equal(b.rows[i]!.batch_no, b.rows[i - 1]!.batch_no + 1, 'batch numbers have no gap or repeat');
    assert.ok(b.rows[i]!.lo > b.rows[i - 1]!.hi, `batch ${b.rows[i]!.batch_no} starts after the previous one ended`);
  }
  const runId = Number((await db.query<{ id: number }>(`SELECT max(id)::int AS id FROM belay.runs`)).rows[0]!.id);
  const written = await writtenIds(db, runId);
  const changed = b.rows.reduce((n, r) => n + r.rows_changed, 0);
  assert.equal(written.length, changed, 'one decided row per changed row');
  assert.equal(new Set(written).size, changed, 'no row written twice');
}

for (const kind of DB_KINDS) {
  test(`SIGKILL during apply, then re-run, equals an uninterrupted run (${kind}, seed ${SEED})`, async (t) => {
    const random = rng(SEED);
    // the reference: an uninterrupted run on the same generated data
    const expected = await withDb(kind, async (ref) => {
      await generate(ref.db, { rows: ROWS, seed: 21 });
      const r = await apply(ref.db, await flagship(), { batchSize: 60 });
      assert.equal(r.status, 'completed');
      return await checksums(ref.db);
    });

    for (let trial = 0; trial < TRIALS; trial++) {
      // after 1 to 20 committed batches of the 29: the kill lands mid-run
      const killAfter = 1 + Math.floor(random() * 20);
      t.diagnostic(`trial ${trial}: SIGKILL after ${killAfter} batches (replay with BELAY_CRASH_SEED=${SEED})`);
      await withDb(
        kind,
        async (f) => {
          await generate(f.db, { rows: ROWS, seed: 21 });
          if (kind === 'pglite') await f.db.close(); // one process at a time opens a PGlite folder
          const killed = await runCli(['--json', 'apply', FLAGSHIP, '--db', f.url, '--batch-size', '60'], { killAfterBatches: killAfter });
          assert.equal(killed.signal, 'SIGKILL', `trial ${trial}: the kill landed before the run finished (code ${killed.code}): ${killed.stderr}`);
          const done = await runCli(['apply', FLAGSHIP, '--db', f.url, '--batch-size', '60']);
          assert.equal(done.code, 0, `the re-run resumes and completes: ${done.stderr}`);
          assert.match(done.stderr, /resumed from its last checkpoint/);
          const db = kind === 'pglite' ? await openDb(f.url) : f.db;
          try {
            assert.deepEqual(await checksums(db), expected, `trial ${trial} (kill after ${killAfter} ms) ends as the uninterrupted run`);
            await assertNoBatchTwice(db);
            const runs = await db.query<{ status: string }>(`SELECT status FROM belay.runs`);
            assert.deepEqual(
              runs.rows.map((r) => r.status),
              ['completed'],
              'one run, completed',
            );
          } finally {
            if (kind === 'pglite') await db.close();
          }
        },
        { persistent: true },
      );
    }
  });
}
