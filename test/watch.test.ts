// belay watch (issue 20): the dashboard's JSON and server-sent events against a real apply running in another
// process, its commands taken by that process exactly as belay pause | resume | tune leave them, what it
// refuses (no token, another site, another Host name, --read-only), no password shown; the page in headless
// Chromium; and on PGlite, the library's server next to an apply in the same process.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { type Db, openDb } from '../src/db/connection.ts';
import { EXIT } from '../src/errors.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { startWatch } from '../src/watch/server.ts';
import type { RunView } from '../src/watch/snapshot.ts';
import { BELAY, runCli, TSX } from './helpers/cli.ts';
import { ROOT } from './helpers/flagship.ts';
import { inline, scalar, until, withDb } from './helpers/fixture.ts';
import { type Browser, launchChromium, NO_BROWSER } from './helpers/tools.ts';

const ROWS = 9000;
const SCHEMA = `CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
INSERT INTO work SELECT g, g, NULL FROM generate_series(1, ${ROWS}) g;`;
const PASSWORD = 'watch-s3cret-pw';

/** 90 batches of 100 rows, each about 150 ms long through its verify (which returns no rows). */
const input = {
  id: 'fill-out',
  purpose: 'Fill work.out from work.w (watch tests).',
  tables: ['work'],
  checks: [
    {
      kind: 'sql' as const,
      code: 'ROUND_W',
      severity: 'info' as const,
      message: 'rows whose w is a multiple of 1000',
      sql: 'SELECT id FROM work WHERE w % 1000 = 0',
    },
  ],
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
};

const tmp = mkdtempSync(path.join(tmpdir(), 'belay-watch-'));
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  rmSync(tmp, { recursive: true, force: true });
});

const status = (db: Db, runId: number) => scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]);
const batchCount = async (db: Db, runId: number) => Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId]));
const controlsTaken = async (db: Db, runId: number) =>
  (
    await db.query<{ data: { command: string; settings: object; requestedBy: { application?: string; osUser?: string } } }>(
      `SELECT data FROM belay.events WHERE run_id = $1 AND type = 'control-taken' ORDER BY id`,
      [runId],
    )
  ).rows.map((r) => r.data);

/** The URL of the server with a password in it (the test server trusts 127.0.0.1, so it is never checked). */
function withPassword(url: string): string {
  const u = new URL(url);
  if (!u.password) u.password = PASSWORD;
  return u.toString();
}

/** `belay watch` as a child process, until stop(): resolves once it printed its URL (with --json). */
async function spawnWatch(args: string[]): Promise<{ url: string; stop(): Promise<number | null>; output(): string }> {
  const child: ChildProcess = spawn(process.execPath, ['--import', TSX, BELAY, 'watch', '--port', '0', '--json', ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      output += d;
      const m = /"url":"([^"]+)"/.exec(output);
      if (m) resolve(m[1]!);
    });
    child.stderr!.on('data', (d) => (output += d));
    void closed.then((code) => reject(new Error(`belay watch exited (${code}) before serving: ${output}`)));
  });
  return {
    url,
    output: () => output,
    async stop() {
      child.kill('SIGINT');
      return closed;
    },
  };
}

/** The next `n` views of the server-sent stream for a run, `data` of each snapshot event. */
async function snapshots(base: string, runId: number, n: number): Promise<Array<{ runs: Array<{ id: number; status: string }>; view: RunView; raw: string }>> {
  const ctl = new AbortController();
  const res = await fetch(`${base}api/stream?run=${runId}`, { signal: ctl.signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const out: Array<{ runs: Array<{ id: number; status: string }>; view: RunView; raw: string }> = [];
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    let end = text.indexOf('\n\n');
    while (end >= 0) {
      const ev = text.slice(0, end);
      text = text.slice(end + 2);
      const data = /^data: (.*)$/m.exec(ev)?.[1];
      assert.match(ev, /^event: snapshot$/m, ev);
      out.push({ ...JSON.parse(data!), raw: data! });
      end = text.indexOf('\n\n');
    }
    if (out.length >= n) break;
  }
  ctl.abort();
  return out;
}

/** A request with headers fetch will not send (Host): status and body. */
function raw(base: string, opts: { method?: string; path: string; headers: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const tokenOf = (html: string) => /data-token="([^"]+)"/.exec(html)![1]!;
const post = (base: string, runId: number, token: string | undefined, body: object, headers: Record<string, string> = {}) =>
  fetch(`${base}api/runs/${runId}/control`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { 'x-belay-token': token } : {}), ...headers },
    body: JSON.stringify(body),
  });

async function startApply(db: Db, url: string) {
  await db.exec(SCHEMA);
  const dir = mkdtempSync(path.join(tmp, 'migration-'));
  writeFileSync(path.join(dir, 'migration.ts'), `export default ${JSON.stringify(input)};`);
  const applying = runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100']);
  const runId = await until('the run', async () => Number((await scalar(db, `SELECT max(id) AS v FROM belay.runs`).catch(() => null)) ?? 0));
  await until('two batches', async () => (await batchCount(db, runId)) >= 2);
  return { applying, runId };
}

test('server: the JSON and the event stream follow a running apply; pause, tune and resume from the dashboard are taken by it; no password shown', async () => {
  await withDb('postgres', async ({ db, url }) => {
    const watch = await spawnWatch(['--db', withPassword(url)]);
    try {
      const { applying, runId } = await startApply(db, url);
      const page = await fetch(watch.url);
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'none'; script-src 'nonce-/);
      assert.equal(page.headers.get('x-frame-options'), 'DENY');
      const html = await page.text();
      // self-contained: the only reference is the empty icon, the only URL the SVG namespace
      assert.deepEqual(html.match(/\b(src|href)="[^"]*"/g), ['href="data:,"']);
      assert.deepEqual([...new Set(html.match(/https?:\/\/[^'"\s]*/g))], ['http://www.w3.org/2000/svg']);
      assert.ok(html.includes('127.0.0.1'), 'the database is named');
      assert.ok(!html.includes(PASSWORD), 'no password in the page');
      const token = tokenOf(html);

      const runs = (await (await fetch(`${watch.url}api/runs`)).json()) as { runs: Array<{ id: number; status: string; migrationId: string }> };
      assert.deepEqual(
        runs.runs.map((r) => [r.id, r.migrationId, r.status]),
        [[runId, 'fill-out', 'running']],
      );
      const missing = await fetch(`${watch.url}api/runs/999`);
      assert.equal(missing.status, 404);
      assert.match(JSON.stringify(await missing.json()), /BELAY_NO_RUN/);
      // the stream: the run moves from one view to the next, with a pace and an ETA while it runs
      const views = await snapshots(watch.url, runId, 3);
      const [first, , last] = views.map((v) => v.view);
      assert.ok(last!.run.rowsDone > first!.run.rowsDone, `rows done ${first!.run.rowsDone} then ${last!.run.rowsDone}`);
      assert.equal(last!.run.rowsTotal, ROWS);
      assert.ok(last!.batches.length > first!.batches.length || last!.batches.at(-1)!.batchNo > first!.batches.at(-1)!.batchNo, 'new batches in the chart');
      assert.ok(last!.batches.every((b) => b.durationMs > 100 && b.rows === 100));
      assert.ok(last!.rowsPerSec > 50 && last!.rowsPerSec < 5000, `rows/s ${last!.rowsPerSec}`);
      assert.ok(last!.etaSec! > 0 && last!.etaSec! < 600, `ETA ${last!.etaSec}`);
      assert.equal(last!.lockWaiters, 0);
      assert.equal(last!.throttle.state, 'clear');
      assert.ok(last!.events.some((e) => e.type === 'run-started'));
      assert.deepEqual(
        last!.findings.map((f) => [f.source, f.name, f.result, f.count]),
        [['check', 'ROUND_W', 'info', ROWS / 1000]],
      );
      assert.ok(views.every((v) => !v.raw.includes(PASSWORD)));

      // refused: no token, a wrong one, another site's origin, another Host name, bad commands
      assert.equal((await post(watch.url, runId, undefined, { command: 'pause' })).status, 403);
      assert.equal((await post(watch.url, runId, 'x'.repeat(token.length), { command: 'pause' })).status, 403);
      assert.equal((await post(watch.url, runId, token, { command: 'pause' }, { origin: 'http://evil.example' })).status, 403);
      const rebound = await raw(watch.url, { path: '/', headers: { host: `evil.example:${new URL(watch.url).port}` } });
      assert.equal(rebound.status, 421);
      assert.ok(!rebound.body.includes(token), 'a rebound name does not get the token');
      const text = await raw(watch.url, {
        method: 'POST',
        path: `/api/runs/${runId}/control`,
        headers: { 'x-belay-token': token, 'content-type': 'text/plain' },
        body: '{"command":"pause"}',
      });
      assert.equal(text.status, 415);
      const unknown = await post(watch.url, runId, token, { command: 'drop' });
      assert.equal(unknown.status, 400);
      assert.match(JSON.stringify(await unknown.json()), /BELAY_USAGE.*unknown command .*drop/);
      const zero = await post(watch.url, runId, token, { command: 'tune', settings: { targetMs: 0 } });
      assert.equal(zero.status, 400);
      assert.match(JSON.stringify(await zero.json()), /targetMs 0 must be at least 1/);
      assert.equal((await controlsTaken(db, runId)).length, 0, 'nothing refused reached the run');
      assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.controls`)), 0);

      const paused = await post(watch.url, runId, token, { command: 'pause' });
      assert.equal(paused.status, 200);
      assert.match(((await paused.json()) as { said: string }).said, new RegExp(`run ${runId}: pause left for the running apply .*holding no lock`));
      await until('the run paused', async () => (await status(db, runId)) === 'paused');
      const atPause = await batchCount(db, runId);
      const [whilePaused] = await snapshots(watch.url, runId, 1);
      assert.equal(whilePaused!.view.run.status, 'paused');
      assert.equal(whilePaused!.view.etaSec, null);
      assert.ok(whilePaused!.view.events.some((e) => e.type === 'control-taken' && e.data.command === 'pause'));
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(await batchCount(db, runId), atPause, 'no batch while paused');
      assert.equal((await post(watch.url, runId, token, { command: 'tune', settings: { targetMs: 300 } })).status, 200);
      assert.equal((await post(watch.url, runId, token, { command: 'resume' })).status, 200);
      // the throttle state as the run records it: a transaction held open past a limit tuned from the page
      const other = await openDb(url);
      try {
        await other.query('BEGIN');
        await other.query('SELECT txid_current()');
        assert.equal((await post(watch.url, runId, token, { command: 'tune', settings: { maxTransactionAgeMs: 300 } })).status, 200);
        const held = await until('the run throttled', async () => {
          const v = (await (await fetch(`${watch.url}api/runs/${runId}`)).json()) as RunView;
          return v.throttle.state === 'throttled' && v;
        });
        assert.match(held.throttle.reasons.join(), /1 transaction\(s\) older than 300 ms/);
        assert.equal(held.run.status, 'running');
      } finally {
        await other.query('COMMIT');
        await other.close();
      }
      await until('the throttle released', async () => ((await (await fetch(`${watch.url}api/runs/${runId}`)).json()) as RunView).throttle.state === 'clear');
      const done = await applying;
      assert.equal(done.code, EXIT.ok, done.stderr);
      assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), ROWS);
      const taken = await controlsTaken(db, runId);
      assert.deepEqual(
        taken.map((c) => c.command),
        ['pause', 'tune', 'resume', 'tune'],
      );
      assert.deepEqual(taken[1]!.settings, { targetMs: 300 });
      assert.deepEqual(taken[3]!.settings, { maxTransactionAgeMs: 300 });
      assert.ok(
        taken.every((c) => c.requestedBy.application === 'belay watch' && c.requestedBy.osUser),
        JSON.stringify(taken),
      );
      const [finished] = await snapshots(watch.url, runId, 1);
      assert.equal(finished!.view.run.status, 'completed');
      assert.equal(finished!.view.run.rowsDone, ROWS);
      assert.deepEqual(finished!.view.throttle.tuned?.settings, { targetMs: 300, maxTransactionAgeMs: 300 });
      // over: the same refusal as belay pause
      const late = await post(watch.url, runId, token, { command: 'pause' });
      assert.equal(late.status, 409);
      assert.match(JSON.stringify(await late.json()), /BELAY_RUN_NOT_ACTIVE.*is completed/);
    } finally {
      assert.equal(await watch.stop(), EXIT.ok, watch.output());
    }
    assert.ok(!watch.output().includes(PASSWORD), watch.output());
  });
});

test('server: --read-only shows the runs without buttons and refuses every command', async () => {
  await withDb('postgres', async ({ db, url }) => {
    const watch = await spawnWatch(['--db', url, '--read-only']);
    try {
      const { applying, runId } = await startApply(db, url);
      const html = await (await fetch(watch.url)).text();
      assert.ok(html.includes('data-read-only="true"') && !html.includes('id="pause"'));
      const r = await post(watch.url, runId, tokenOf(html), { command: 'abort' });
      assert.equal(r.status, 403);
      assert.match(JSON.stringify(await r.json()), /read-only/);
      assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.controls`)), 0, 'nothing left for the run');
      // belay abort still works beside it: read-only is the dashboard's, not the run's
      assert.equal((await runCli(['abort', String(runId), '--db', url])).code, EXIT.ok);
      assert.equal((await applying).code, EXIT.aborted);
      assert.deepEqual(
        (await controlsTaken(db, runId)).map((c) => c.command),
        ['abort'],
      );
    } finally {
      await watch.stop();
    }
  });
});

test('server: the page in headless Chromium loads without console errors, its chart moves, and Pause, the batch target and Resume (each confirmed) are taken by the running apply', {
  skip: NO_BROWSER,
}, async () => {
  await withDb('postgres', async ({ db, url }) => {
    const watch = await spawnWatch(['--db', url]);
    browser ??= await launchChromium(tmp);
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (req) => {
      if (!req.url().startsWith(watch.url)) problems.push(`request to ${req.url()}`);
    });
    const questions: string[] = [];
    let answer = false;
    page.on('dialog', (d) => {
      questions.push(d.message());
      void (answer ? d.accept() : d.dismiss());
    });
    try {
      const { applying, runId } = await startApply(db, url);
      await page.goto(`${watch.url}?run=${runId}`, { waitUntil: 'load' });
      await page.locator('#status', { hasText: 'running' }).waitFor();
      const chart = page.locator('#chart svg');
      const before = await chart.getAttribute('data-last-batch');
      assert.ok(before, 'the chart shows batches');
      await page.waitForFunction((b) => document.querySelector('#chart svg')?.getAttribute('data-last-batch') !== b, before, { timeout: 20_000 });
      assert.ok((await page.locator('#chart svg rect.bar').count()) >= 2);
      assert.equal(await page.locator('#chart svg polyline.waits').count(), 1);
      const box = await chart.boundingBox();
      assert.ok(box && box.width > 300 && box.height > 80, `chart is ${JSON.stringify(box)}`);
      assert.match((await page.locator('#rate b').textContent()) ?? '', /^[1-9][\d,]*$/);
      assert.match((await page.locator('#eta b').textContent()) ?? '', /\d+ s$/);
      assert.ok((await page.locator('#runs tr[data-run]').count()) === 1);
      assert.match((await page.locator('#findings').textContent()) ?? '', /ROUND_W/);

      // every button asks first: answered no, nothing is left for the run
      await page.locator('#pause').click();
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM belay.controls`)), 0);
      answer = true;
      await page.locator('#pause').click();
      await until('the run paused', async () => (await status(db, runId)) === 'paused');
      await page.locator('#status', { hasText: 'paused' }).waitFor();
      assert.match((await page.locator('#message').textContent()) ?? '', /pause left for the running apply/);
      await page.locator('#events tr[data-type="control-taken"]').first().waitFor();
      const atPause = await batchCount(db, runId);
      await page.locator('#target').fill('250');
      await page.locator('#tune').click();
      await until('the tune taken', async () => (await controlsTaken(db, runId)).some((c) => c.command === 'tune'));
      await until('resume enabled', async () => page.locator('#resume').isEnabled());
      await page.locator('#resume').click();
      await until('the run going on', async () => (await batchCount(db, runId)) > atPause);
      const done = await applying;
      assert.equal(done.code, EXIT.ok, done.stderr);
      await page.locator('#status', { hasText: 'completed' }).waitFor();
      assert.deepEqual(
        (await controlsTaken(db, runId)).map((c) => c.command),
        ['pause', 'tune', 'resume'],
      );
      assert.deepEqual((await controlsTaken(db, runId))[1]!.settings, { targetMs: 250 });
      assert.equal(questions.length, 4);
      assert.match(questions[2]!, /Set the batch target of .* to 250 ms\?/);
      assert.match(questions[0]!, new RegExp(`^Pause run ${runId} \\(fill-out\\)`));
      await page.screenshot({ path: path.join(process.env.BELAY_WATCH_SCREENSHOT ?? tmp, 'watch.png'), fullPage: true });
      assert.deepEqual(problems, []);
    } finally {
      await page.close();
      await watch.stop();
    }
  });
});

test('pglite: the library server follows an apply in the same process; pause, resume and abort --rollback from it are taken', async () => {
  await withDb('pglite', async ({ db }) => {
    await db.exec(SCHEMA.replace(String(ROWS), '3000'));
    const w = await startWatch(db, { port: 0, pollMs: 200 });
    try {
      let runId = 0;
      const applying = safeApply(db, inline(input), { backup: false, batchSize: 100 });
      runId = await until('the run', async () => Number((await scalar(db, `SELECT max(id) AS v FROM belay.runs`).catch(() => null)) ?? 0));
      await until('a batch', async () => (await batchCount(db, runId)) >= 1);
      // one thread for both: the apply's queries and the server's take turns, so the pause comes first
      const token = tokenOf(await (await fetch(w.url)).text());
      const p = await post(w.url, runId, token, { command: 'pause' });
      assert.equal(p.status, 200, await p.clone().text());
      await until('the run paused', async () => (await status(db, runId)) === 'paused');
      const view = (await (await fetch(`${w.url}api/runs/${runId}`)).json()) as RunView;
      assert.equal(view.run.status, 'paused');
      assert.ok(view.run.rowsDone > 0 && view.run.rowsDone < 3000, `rows done ${view.run.rowsDone}`);
      assert.equal(view.lockWaiters, null, 'no lock waiters on PGlite (one session)');
      const [s] = await snapshots(w.url, runId, 1);
      assert.equal(s!.view.run.status, 'paused');
      assert.ok(s!.runs.some((r) => r.id === runId && r.status === 'paused'));
      const atResume = await batchCount(db, runId);
      assert.equal((await post(w.url, runId, token, { command: 'resume' })).status, 200);
      await until('a batch after resume', async () => (await batchCount(db, runId)) > atResume);
      // abort with roll back, as belay abort --rollback: every committed batch undone
      assert.equal((await post(w.url, runId, token, { command: 'abort-rollback' })).status, 200);
      const r = await applying;
      assert.equal(r.status, 'rolled_back', r.error?.message ?? '');
      assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`)), 0);
      assert.deepEqual(
        (await controlsTaken(db, runId)).map((c) => c.command),
        ['pause', 'resume', 'abort-rollback'],
      );
    } finally {
      await w.close();
    }
  });
});
