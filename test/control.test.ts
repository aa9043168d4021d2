// Control of a running apply from another terminal (issue 20): pause holds no lock and no open transaction
// until resume; tune changes the batch target in place; abort --rollback undoes; who asked is recorded.
// The server test runs apply and the commands as separate processes; PGlite (one process) through the library.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { EXIT } from '../src/errors.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { requestControl } from '../src/state/controls.ts';
import type { BelayEvent } from '../src/state/events.ts';
import { migrationLockHolder } from '../src/state/lock.ts';
import { runCli } from './helpers/cli.ts';
import { inline, scalar, until, withDb } from './helpers/fixture.ts';

const SCHEMA = `CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
INSERT INTO work SELECT g, g, NULL FROM generate_series(1, 6000) g;`;

/** 60 batches of 100 rows, each made to last about 150 ms by its verify (which returns no rows): long enough for a command from another process. */
const input = (id = 'fill-out') => ({
  id,
  purpose: 'Fill work.out from work.w (control tests).',
  tables: ['work'],
  steps: [
    {
      kind: 'batched' as const,
      name: 'fill',
      table: 'work',
      writes: ['out'],
      decide: 'SELECT id, w * 2 AS out FROM work WHERE out IS NULL',
      verify: "SELECT 1 AS id FROM (SELECT pg_sleep(0.15)::text AS z) s WHERE s.z = 'never'",
    },
  ],
});

test('server: pause from another process holds no lock and no transaction until resume; tune applies in place; who asked is recorded', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    const dir = mkdtempSync(path.join(tmpdir(), 'belay-control-'));
    writeFileSync(path.join(dir, 'migration.ts'), `export default ${JSON.stringify(input())};`);
    const applying = runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100']);
    const runId = await until('the run', async () => Number((await scalar(db, `SELECT max(id) AS v FROM belay.runs`).catch(() => null)) ?? 0));
    await until('two batches', async () => Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId])) >= 2);
    const paused = await runCli(['pause', String(runId), '--db', url]);
    assert.equal(paused.code, EXIT.ok, paused.stderr);
    await until('the run paused', async () => (await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId])) === 'paused');
    const pid = await migrationLockHolder(db, 'fill-out');
    assert.ok(pid, 'the apply process still holds its run');
    assert.equal(
      Number(await scalar(db, `SELECT count(*)::int AS v FROM pg_locks WHERE pid = $1 AND locktype IN ('relation', 'tuple', 'transactionid')`, [pid])),
      0,
      'no lock held while paused',
    );
    assert.equal(await scalar(db, `SELECT state AS v FROM pg_stat_activity WHERE pid = $1`, [pid]), 'idle', 'no transaction open while paused');
    const batches = Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId]));
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId])), batches, 'no batch while paused');
    const tuned = await runCli(['tune', String(runId), '--db', url, '--max-lock-waiters', '3']);
    assert.equal(tuned.code, EXIT.ok, tuned.stderr);
    const resumed = await runCli(['resume', String(runId), '--db', url]);
    assert.equal(resumed.code, EXIT.ok, resumed.stderr);
    const done = await applying;
    assert.equal(done.code, EXIT.ok, done.stderr);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), 6000);
    const taken = (
      await db.query<{ data: { command: string; settings: object; requestedBy: { osUser?: string; role?: string } } }>(
        `SELECT data FROM belay.events WHERE run_id = $1 AND type = 'control-taken' ORDER BY id`,
        [runId],
      )
    ).rows.map((r) => r.data);
    assert.deepEqual(
      taken.map((c) => c.command),
      ['pause', 'tune', 'resume'],
    );
    assert.deepEqual(taken[1]!.settings, { maxLockWaiters: 3 });
    assert.ok(
      taken.every((c) => c.requestedBy.role === 'postgres' && c.requestedBy.osUser),
      JSON.stringify(taken),
    );
    assert.match(done.stdout + done.stderr, /pause asked by/);
    // once the run is over there is nothing to control
    const late = await runCli(['pause', String(runId), '--db', url]);
    assert.equal(late.code, EXIT.state, late.stderr);
    assert.match(late.stderr, /BELAY_RUN_NOT_ACTIVE[\s\S]*is completed/);
  });
});

test('server: abort --rollback from another process undoes every committed batch', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    const dir = mkdtempSync(path.join(tmpdir(), 'belay-control-'));
    writeFileSync(path.join(dir, 'migration.ts'), `export default ${JSON.stringify(input())};`);
    const applying = runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100']);
    const runId = await until('the run', async () => Number((await scalar(db, `SELECT max(id) AS v FROM belay.runs`).catch(() => null)) ?? 0));
    await until('three batches', async () => Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId])) >= 3);
    const aborted = await runCli(['abort', String(runId), '--db', url, '--rollback']);
    assert.equal(aborted.code, EXIT.ok, aborted.stderr);
    const done = await applying;
    assert.equal(done.code, EXIT.aborted, done.stderr);
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'rolled_back');
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`)), 0, 'every batch undone');
  });
});

test('pglite: a pause left for the run waits until resume; tune changes the target in place', async () => {
  await withDb('pglite', async ({ db }) => {
    await db.exec(SCHEMA);
    const events: BelayEvent[] = [];
    let statusWhilePaused: unknown;
    const asker = { osUser: 'ops', host: 'elsewhere' };
    const r = await safeApply(db, inline(input()), {
      backup: false,
      batchSize: 100,
      targetBatchMs: 500,
      onEvent: (e) => events.push(e),
      stages: (s) => [
        ...s,
        {
          name: 'another-terminal',
          batches: {
            async afterBatch(ctx, b) {
              if (b.batchNo !== 2) return 'continue';
              await requestControl(ctx.db, ctx.runId, 'pause', {}, asker);
              await requestControl(ctx.db, ctx.runId, 'tune', { targetMs: 120 }, asker);
              // resume once the pause is taken (the apply yields to the event loop between batches, so a
              // fixed delay could land before it on a slow machine), after 400 ms paused
              void (async () => {
                const t0 = Date.now();
                for (;;) {
                  statusWhilePaused = await scalar(ctx.db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [ctx.runId]);
                  if (statusWhilePaused === 'paused' || Date.now() - t0 > 20_000) break;
                  await new Promise((r) => setTimeout(r, 50));
                }
                await new Promise((r) => setTimeout(r, 400));
                await requestControl(ctx.db, ctx.runId, 'resume', {}, asker);
              })();
              return 'continue';
            },
          },
        },
      ],
    });
    assert.equal(r.status, 'completed', r.error?.message ?? '');
    assert.equal(statusWhilePaused, 'paused');
    const taken = events.flatMap((e) => (e.type === 'control-taken' ? [e.command] : []));
    assert.deepEqual(taken, ['pause', 'tune', 'resume']);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), 6000);
  });
});
