// Messages and state after failures: what happened, how many times, who holds the lock, that the run is
// resumable and the command that resumes it; bad input exits with its documented code and changes nothing.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConnectionError, EXIT } from '../src/errors.ts';
import { openDb } from '../src/db/connection.ts';
import { belay } from './helpers/capture.ts';
import { checksums } from './helpers/flagship.ts';
import { DB_KINDS, SERVER } from './helpers/fresh-db.ts';
import { withDb, withSession } from './helpers/fixture.ts';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'belay-msg-'));

const SCHEMA = `CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
INSERT INTO work SELECT g, g, NULL FROM generate_series(1, 300) g;`;

/** A migration folder over work; `step` overrides fields of its one step, `extra` adds top-level fields. */
function workSpec(dir: string, step: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): string {
  writeFileSync(
    path.join(dir, 'migration.ts'),
    `export default ${JSON.stringify({
      id: 'fill-out',
      purpose: 'Fill work.out from work.w (message tests).',
      tables: ['work'],
      steps: [
        { kind: 'batched', name: 'fill', table: 'work', writes: ['out'], projection: 'SELECT id, w * 2 AS out FROM work WHERE id BETWEEN $1 AND $2', ...step },
      ],
      options: { batchSize: 100 },
      ...extra,
    })};`,
  );
  return dir;
}

for (const kind of DB_KINDS) {
  describe(`spec names on ${kind}`, () => {
    test('regression (spec names): a missing table or column exits 3 and leaves no run, so the fixed spec applies (not BELAY_SPEC_CHANGED)', async () => {
      await withDb(
        kind,
        async (f) => {
          const dir = tmp();
          await f.db.exec(SCHEMA);
          const before = await checksums(f.db, ['work']);
          if (kind === 'pglite') await f.db.close();
          const broken: Array<[string, () => void, RegExp]> = [
            ['a written column that does not exist', () => workSpec(dir, { writes: ['outt'] }), /column "outt" does not exist in table "work"/],
            ['a table that does not exist', () => workSpec(dir, {}, { tables: ['work', 'wrok'] }), /tables\.1: table "wrok" does not exist/],
            ['a key that does not exist', () => workSpec(dir, { key: 'ident' }), /steps\.0 \(fill\).*column "ident" does not exist/],
            [
              'a projection naming a missing column',
              () => workSpec(dir, { projection: 'SELECT id, ww * 2 AS out FROM work WHERE id BETWEEN $1 AND $2' }),
              /steps\.0\.projection \(fill\).*column "ww" does not exist[\s\S]*line 1/,
            ],
            [
              'a check naming a missing table',
              () =>
                workSpec(dir, {}, { checks: [{ kind: 'sql', code: 'NEG', severity: 'error', message: 'negative', sql: 'SELECT id FROM wrk WHERE w < 0' }] }),
              /checks\.0\.sql \(NEG\).*relation "wrk" does not exist/,
            ],
            [
              'a verify reading a missing column of written',
              () => workSpec(dir, { verify: 'SELECT id FROM written WHERE outt IS NULL' }),
              /steps\.0\.verify.*column "outt" does not exist/,
            ],
            // planned as its batches write it (checks/projection-check.ts): BELAY_CHECK_SQL, exit 3 too
            [
              'a projection without the key column',
              () => workSpec(dir, { projection: 'SELECT w * 2 AS out FROM work WHERE id BETWEEN $1 AND $2' }),
              /BELAY_CHECK_SQL[\s\S]*steps\.0\.projection \(fill\): returns no column named "id", the key of step "fill"/,
            ],
            [
              'a projection of the wrong type',
              () => workSpec(dir, { projection: "SELECT id, 'x' || w AS out FROM work WHERE id BETWEEN $1 AND $2" }),
              /BELAY_CHECK_SQL[\s\S]*returns "out" as text, which cannot be written into "?work"?\."out" \(integer\)/,
            ],
            [
              'an orphans check on a missing column',
              () =>
                workSpec(
                  dir,
                  {},
                  { checks: [{ kind: 'orphans', code: 'ORPH', table: 'work', column: 'parent', references: { table: 'work', column: 'id' } }] },
                ),
              /checks\.0\.column: column "parent" does not exist/,
            ],
          ];
          for (const [what, write, message] of broken) {
            write();
            const r = await belay(['apply', dir, '--db', f.url]);
            assert.equal(r.code, EXIT.spec, `${what}: exit ${r.code}: ${r.stderr}`);
            assert.match(r.stderr, /BELAY_SPEC|BELAY_CHECK_SQL/, what);
            assert.match(r.stderr, message, what);
          }
          const db = kind === 'pglite' ? await openDb(f.url) : f.db;
          try {
            assert.deepEqual(await checksums(db, ['work']), before, 'nothing written');
            const runs = await db.query(
              `SELECT 1 FROM pg_namespace n JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname = 'belay' AND c.relname = 'runs'`,
            );
            if (runs.rowCount) assert.equal((await db.query(`SELECT 1 FROM belay.runs`)).rowCount, 0, 'no run record left behind');
          } finally {
            if (kind === 'pglite') await db.close();
          }
          // the corrected spec starts a run of its own
          workSpec(dir);
          const ok = await belay(['apply', dir, '--db', f.url, '--no-backup']);
          assert.equal(ok.code, EXIT.ok, ok.stderr);
          assert.doesNotMatch(ok.stderr, /BELAY_SPEC_CHANGED/);
        },
        { persistent: true },
      );
    });
  });
}

test('regression (connection URL): a port that is not a number and a trailing % exit 4 (BELAY_CONNECTION), not 1, and never show the password', async () => {
  const host = new URL(SERVER).host;
  const urls = [
    `postgres://u:PortPw-1x@${host.split(':')[0]}:abc/db`,
    `postgres://u:PctPw-2x@${host}/db%`,
    `postgres://u:PctPw-3x%@${host}/db`,
    `postgres://u:PctPw-4x@${host}/db?sslmode=%zz`,
  ];
  for (const url of urls) {
    const pw = /:([A-Za-z]+Pw-\dx)/.exec(url)![1]!;
    await assert.rejects(openDb(url), (e: unknown) => e instanceof ConnectionError && e.exitCode === EXIT.connection && !e.message.includes(pw), url);
    const r = await belay(['status', '--db', url]);
    assert.equal(r.code, EXIT.connection, `${url}: ${r.stderr}`);
    assert.match(r.stderr, /BELAY_CONNECTION/);
    assert.match(r.stderr, /port "abc" is not a number|"%" that is not followed by two hex digits/);
    assert.ok(!`${r.stdout}${r.stderr}`.includes(pw), r.stderr);
  }
});

test('regression (lock retries): exhausted lock retries say how many attempts, who holds the lock, that the run is resumable and the command; the resume completes', async () => {
  await withDb('postgres', (f) =>
    withSession(
      f.url,
      async (holder) => {
        const dir = tmp();
        await f.db.exec(SCHEMA);
        workSpec(dir, {}, { options: { batchSize: 100, lockTimeoutMs: 50, maxRetries: 2 } });
        // the application holds one row of the second batch and does not commit
        await holder.query('BEGIN');
        await holder.query('UPDATE work SET w = w WHERE id = 150');
        const pid = (await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
        const r = await belay(['apply', dir, '--db', f.url, '--no-backup', '--no-throttle']);
        assert.equal(r.code, EXIT.database, r.stderr);
        assert.match(r.stderr, /BELAY_LOCK_TIMEOUT/);
        assert.match(r.stderr, /step "fill", the batch after key 100 \(1 batch committed before it\)/);
        assert.match(r.stderr, /in 3 attempts \(2 retries with backoff\)/);
        assert.match(r.stderr, new RegExp(`pid ${pid} \\(user postgres, application "app-holding-a-row", idle in transaction`));
        assert.match(r.stderr, new RegExp(`pg_terminate_backend\\(${pid}\\)`));
        assert.match(r.stderr, /Run 1 is resumable/);
        assert.ok(r.stderr.includes(`belay apply ${path.join(dir, 'migration.ts')}`), r.stderr);
        const run = (await f.db.query<{ status: string; code: string }>(`SELECT status, error->>'code' AS code FROM belay.runs WHERE id = 1`)).rows[0]!;
        assert.deepEqual(run, { status: 'failed', code: 'BELAY_LOCK_TIMEOUT' }, 'the run is left resumable, not running');
        await holder.query('ROLLBACK');
        const again = await belay(['apply', dir, '--db', f.url, '--no-backup', '--no-throttle']);
        assert.equal(again.code, EXIT.ok, again.stderr);
        assert.match(again.stderr, /resumed/);
        assert.equal((await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM work WHERE out = w * 2`)).rows[0]!.n, 300);
      },
      { applicationName: 'app-holding-a-row' },
    ),
  );
});

test('regression (monitor): after the server drops the session and refuses connections for a while, monitor reconnects with backoff and alerts only on what it saw', async () => {
  await withDb('postgres', async (f) => {
    const dbName = new URL(f.url).pathname.slice(1);
    const admin = await openDb(`${SERVER}/postgres`);
    try {
      await withSession(
        f.url,
        async (mon) => {
          await f.db.exec(SCHEMA);
          const dir = tmp();
          workSpec(dir, {}, { monitor: [{ name: 'out-missing', sql: 'SELECT id FROM work WHERE out IS NULL', alertAbove: 0 }] });
          const { safeApply } = await import('../src/run/pipeline.ts');
          const { loadMigration } = await import('../src/spec/load.ts');
          const { monitorRun } = await import('../src/verify/monitor.ts');
          const r = await safeApply(f.db, await loadMigration(dir), { backup: false });
          assert.equal(r.status, 'completed');
          const reconnects: number[] = [];
          let rounds = 0;
          let outage: Promise<void> | undefined;
          const raised: string[] = [];
          const result = await monitorRun(mon, r.runId, {
            forMs: 60_000,
            everyMs: 200,
            onReconnect: (x) => reconnects.push(x.waitMs),
            onAlert: (a) => raised.push(`${a.check}:${a.count}${a.error ? ':error' : ''}`),
            onRound: async () => {
              rounds++;
              if (rounds === 2) {
                // what a restart looks like to the client: the session ends, and new ones are refused for a while
                await admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS false`);
                await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'belay-monitor-test'`, [
                  dbName,
                ]);
                outage = new Promise((res) => setTimeout(res, 1_800))
                  .then(() => admin.query(`ALTER DATABASE ${dbName} ALLOW_CONNECTIONS true`))
                  .then(() => undefined);
              }
              // after the outage, something the window does see
              if (rounds === 4) await f.db.query('UPDATE work SET out = NULL WHERE id = 7');
            },
          });
          await outage;
          assert.ok(result.reconnects >= 1, `reconnected (${result.reconnects})`);
          assert.ok(reconnects.length >= 2, `more than one attempt while connections were refused: waits ${reconnects.join(', ')} ms`);
          assert.ok(
            reconnects.every((w, i) => i === 0 || w >= reconnects[i - 1]!),
            `backoff grows: ${reconnects.join(', ')}`,
          );
          assert.equal(result.status, 'alerted', 'the planted row is seen');
          assert.deepEqual(
            result.alerts.map((a) => [a.check, a.count]),
            [['out-missing', 1]],
            'one alert: the planted row, none for the outage',
          );
          assert.deepEqual(raised, ['out-missing:1'], 'nothing was raised (webhook, stderr) for the rounds the outage broke');
          const recorded = await f.db.query<{ ok: boolean; errors: number }>(
            `SELECT v.ok, (SELECT count(*)::int FROM belay.verification_results x WHERE x.verification_id = v.id AND x.result = 'error') AS errors
      FROM belay.verifications v WHERE v.run_id = $1 AND v.source = 'monitor' ORDER BY v.id`,
            [r.runId],
          );
          assert.ok(recorded.rows.length >= 4, `rounds before and after the outage are recorded (${recorded.rows.length})`);
          assert.equal(recorded.rows.filter((x) => x.errors > 0).length, 0, 'no round recorded a check error for the outage');
          assert.deepEqual(recorded.rows.filter((x) => !x.ok).length, 1);
        },
        { applicationName: 'belay-monitor-test' },
      );
    } finally {
      await admin.query(`ALTER DATABASE ${new URL(f.url).pathname.slice(1)} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await admin.close();
    }
  });
});

/** A tmpfs of `kb` kB owned by the server's user, for a tablespace that fills up (root only, the server on this machine). */
function smallDisk(kb: number): { dir: string; remove: () => void } | undefined {
  if (process.getuid?.() !== 0 || !['127.0.0.1', 'localhost'].includes(new URL(SERVER).hostname)) return undefined;
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-tablespace-'));
  const ok =
    spawnSync('sh', ['-c', `mount -t tmpfs -o size=${kb}k,mode=0700 tmpfs "$0" && chown postgres:postgres "$0"`, dir], { stdio: 'ignore' }).status === 0;
  const remove = () => {
    spawnSync('umount', [dir], { stdio: 'ignore' });
    rmSync(dir, { recursive: true, force: true });
  };
  if (!ok) remove();
  return ok ? { dir, remove } : undefined;
}

test('regression (disk full): a server disk that fills up mid-run says so, that the run is resumable and the command; moved to a disk with room, the resume completes', async (t) => {
  const disk = smallDisk(512);
  if (!disk) return t.skip('needs root, mount and the server on this machine');
  const space = `belay_t_small_${randomBytes(4).toString('hex')}`;
  const dir = tmp();
  try {
    await withDb('postgres', async (f) => {
      await f.db.exec(`CREATE TABLESPACE ${space} LOCATION '${disk.dir}'`);
      await f.db.exec(`CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int, pad text) WITH (fillfactor = 100) TABLESPACE ${space};
      INSERT INTO work SELECT g, g, NULL, repeat(md5(g::text), 30) FROM generate_series(1, 300) g;`);
      workSpec(dir);
      const r = await belay(['apply', dir, '--db', f.url, '--no-backup', '--no-throttle']);
      assert.equal(r.code, EXIT.database, r.stderr);
      assert.match(r.stderr, /BELAY_DISK_FULL/);
      assert.match(r.stderr, /run 1, step "fill", the batch after key \d+ \(\d+ batch(es)? committed before it\): the database server ran out of disk space/);
      assert.match(r.stderr, /SQLSTATE 53100/);
      assert.match(r.stderr, /Run 1 is resumable/);
      assert.ok(r.stderr.includes(`belay apply ${path.join(dir, 'migration.ts')}`), r.stderr);
      assert.equal((await f.db.query<{ status: string }>(`SELECT status FROM belay.runs WHERE id = 1`)).rows[0]!.status, 'failed');
      // room made (the table moved to the default tablespace): the same command resumes and completes
      await f.db.exec(`ALTER TABLE work SET TABLESPACE pg_default`);
      const again = await belay(['apply', dir, '--db', f.url, '--no-backup', '--no-throttle']);
      assert.equal(again.code, EXIT.ok, again.stderr);
      assert.equal((await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM work WHERE out = w * 2`)).rows[0]!.n, 300);
    });
  } finally {
    // the tablespace holds the database's table: it can go once the database is dropped
    const a = await openDb(`${SERVER}/postgres`);
    await a.exec(`DROP TABLESPACE IF EXISTS ${space}`).catch(() => undefined);
    await a.close();
    disk.remove();
  }
});
