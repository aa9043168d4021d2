// The short version of the reliability suite (npm run reliability is the full one): a few crash trials
// per command, one lost connection and one lock contention, 15 bad-input cases sampled deterministically,
// against the PostgreSQL server (crash tests need a real server: PGlite has one connection and no process
// to kill). The secrets sweep has a test of its own (secrets.test.ts); concurrent load runs only in the
// full suite (it needs a long apply).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { renderFailures, renderTable, runSuite } from '../reliability/run.ts';

test('reliability (short): every guarantee holds under crashes, lost connections, lock contention, bad input', { timeout: 900_000 }, async () => {
  const lines: string[] = [];
  const rows = await runSuite({ seed: 20260101, short: true, parallel: 2, log: (s) => lines.push(s) }, [
    'crash',
    'connection-loss',
    'lock-contention',
    'bad-input',
  ]);
  const table = renderTable(rows);
  assert.equal(rows.length, 6, `every scenario reported:\n${table}`);
  assert.ok((rows.find((r) => r.scenario === 'crash/apply')?.trials ?? 0) >= 3, `three crash trials per command:\n${table}\n${renderFailures(rows)}`);
  assert.ok((rows.find((r) => r.scenario === 'bad-input')?.trials ?? 0) >= 15, `15 bad-input cases:\n${table}`);
  const failed = rows.filter((r) => r.failures.length > 0);
  assert.equal(failed.length, 0, `\n${table}\n${renderFailures(rows)}\n${lines.join('\n')}`);
});
