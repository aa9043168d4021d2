// The monitoring window on both databases: a quiet round passes; a planted violation alerts, the webhook
// receiver (loopback) gets the alert JSON, the round and alert are recorded; metrics serve the gauges.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { main } from '../src/cli/main.ts';
import type { Db } from '../src/db/connection.ts';
import { EXIT, UsageError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { formatDuration, parseDuration } from '../src/verify/duration.ts';
import { type Alert, monitorRun } from '../src/verify/monitor.ts';
import { getRun } from '../src/state/runs.ts';
import { getRounds } from '../src/verify/record.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';
import { flagship } from './helpers/flagship.ts';

const ROWS = 800;

/** An http server on 127.0.0.1 that keeps every JSON body POSTed to it. */
async function receiver(): Promise<{ url: string; bodies: Alert[]; close(): Promise<void> }> {
  const bodies: Alert[] = [];
  const server = createServer((req, res) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      bodies.push(JSON.parse(data) as Alert);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook?token=secret`;
  return { url, bodies, close: () => new Promise((r) => server.close(() => r())) };
}

test('durations parse like 24h, 5m, 30s and refuse bare numbers', () => {
  assert.equal(parseDuration('24h'), 86_400_000);
  assert.equal(parseDuration('5m'), 300_000);
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('1.5h'), 5_400_000);
  assert.equal(formatDuration(300_000), '5m');
  assert.throws(
    () => parseDuration('300', '--every'),
    (e: unknown) => e instanceof UsageError && /--every "300"/.test(e.message),
  );
  assert.throws(() => parseDuration('0s'), UsageError);
});

for (const kind of DB_KINDS) {
  describe(`monitor on ${kind}`, () => {
    test('quiet, then a planted violation alerts: webhook receives the JSON, round and alert recorded, metrics served', async () => {
      await withDb(kind, async (f) => {
        const hook = await receiver();
        try {
          const truth = await generate(f.db, { rows: ROWS, seed: 21 });
          const r = await apply(f.db, await flagship(), { batchSize: 200 });
          assert.equal(r.status, 'completed', r.error?.message ?? '');

          const quiet = await monitorRun(f.db, r.runId, { once: true, webhook: hook.url });
          assert.equal(quiet.status, 'ok');
          assert.equal(quiet.rounds.length, 1);
          assert.deepEqual(
            quiet.rounds[0]!.checks.map((c) => c.name),
            ['owner-deleted', 'new-inconsistencies', 'no-missed-rows', 'owners-exist'],
          );
          assert.equal(hook.bodies.length, 0);

          // planted: an assigned row moved to a user it has no link with (a new inconsistency)
          const victim = truth.categories.assign[3]!;
          const u = await f.db.query<{ id: number }>(`INSERT INTO users (username, email) VALUES ('intruder', 'i@example.com') RETURNING id`);
          await f.db.query(`UPDATE "EventType" SET "userId" = $1 WHERE id = $2`, [u.rows[0]!.id, victim]);

          let scraped = '';
          const seen: Alert[] = [];
          const loud = await monitorRun(f.db, r.runId, {
            forMs: 60_000,
            everyMs: 50,
            webhook: hook.url,
            metricsPort: 0,
            onAlert: (a) => seen.push(a),
            onRound: async (_round, m) => {
              scraped = await (await fetch(`http://127.0.0.1:${m!.port}/metrics`)).text();
            },
          });
          assert.equal(loud.status, 'alerted');
          assert.equal(loud.rounds.length, 1, 'the window ends after the round that alerted');
          assert.equal(hook.bodies.length, 1);
          const a = hook.bodies[0]!;
          assert.equal(a.run, r.runId);
          assert.equal(a.migration, 'event-type-owner');
          assert.equal(a.check, 'new-inconsistencies');
          assert.equal(a.count, 1);
          assert.equal(a.threshold, 0);
          assert.equal(Number((a.sample[0] as { id: number }).id), victim);
          assert.ok(!Number.isNaN(Date.parse(a.at)));
          assert.equal(seen[0]!.delivered?.status, 204);

          // metrics: one gauge per check, the run's rows changed and status
          const line = (name: string, check?: string) => scraped.split('\n').find((l) => l.startsWith(name) && (!check || l.includes(`check="${check}"`)));
          assert.match(line('belay_check_rows', 'new-inconsistencies') ?? '', / 1$/);
          assert.match(line('belay_check_rows', 'owner-deleted') ?? '', / 0$/);
          assert.ok(line('belay_check_last_run_timestamp_seconds', 'owner-deleted'));
          assert.ok(line('belay_check_errors_total', 'owner-deleted'));
          assert.match(line('belay_run_rows_changed') ?? '', new RegExp(` ${r.steps[0]!.rowsChanged}$`));
          assert.match(line('belay_run_status') ?? '', /status="completed".* 1$/);

          // recorded: both rounds, the alert with its delivery, the window in the run's summary (webhook token left out)
          const rounds = await getRounds(f.db, r.runId, 'monitor');
          assert.equal(rounds.length, 2);
          assert.deepEqual(
            rounds.map((x) => x.ok),
            [true, false],
          );
          assert.equal((rounds[1]!.alerts as Alert[])[0]!.check, 'new-inconsistencies');
          const mon = (await getRun(f.db, r.runId)).summary.monitor as Record<string, unknown>;
          assert.equal(mon.rounds, 2);
          assert.equal(mon.alerts, 1);
          assert.equal(mon.status, 'alerted');
          assert.ok(!String(mon.webhook).includes('secret'));

          // a check that errors alerts too (a dropped column), and the CLI ends with exit 7 (server: a second connection)
          if (kind === 'postgres') {
            await f.db.query(`UPDATE "EventType" SET "userId" = NULL WHERE id = $1`, [victim]);
            await f.db.query(`UPDATE "EventType" SET "userId" = $1 WHERE id = $2`, [truth.expectedOwner.get(victim), victim]);
            assert.equal(await main(['node', 'belay', '--db', f.url, 'monitor', String(r.runId), '--once']), EXIT.ok);
            await f.db.exec(`ALTER TABLE users RENAME TO users_gone`);
            const code = await main(['node', 'belay', '--db', f.url, 'monitor', String(r.runId), '--once', '--webhook', hook.url]);
            assert.equal(code, EXIT.verification);
            assert.ok(hook.bodies.length >= 2);
            assert.ok(hook.bodies.slice(1).every((b) => b.error !== undefined && b.count === 0));
          }
        } finally {
          await hook.close();
        }
      });
    });
  });
}

test('monitor: an unusable webhook URL is refused before the database is touched', async () => {
  // no database at all: the URL is checked first
  await assert.rejects(monitorRun({} as Db, 1, { webhook: 'ftp://example.com' }), UsageError);
  await assert.rejects(monitorRun({} as Db, 1, { webhook: 'not a url' }), UsageError);
});
