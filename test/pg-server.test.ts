// The server npm test runs on (test/helpers/pg-server.ts): the embedded PostgreSQL 15 where nothing answers,
// the given or found server otherwise, and a clear refusal where a server answers but turns the tests away.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { test } from 'node:test';
import pg from 'pg';
import { SERVER } from './helpers/fresh-db.ts';
import { testServer } from './helpers/pg-server.ts';

/** A port where nothing listens (taken from the system, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function query(url: string, sql: string): Promise<string> {
  const c = new pg.Client({ connectionString: `${url}/postgres`, connectionTimeoutMillis: 3000 });
  await c.connect();
  try {
    return String(Object.values((await c.query(sql)).rows[0] as object)[0]);
  } finally {
    await c.end();
  }
}

test('where nothing answers, an embedded PostgreSQL 15 starts with trust for user postgres and C.UTF-8 or C, and stop() removes it', async () => {
  const port = await closedPort();
  const s = await testServer({ BELAY_TEST_PROBE: `postgres://postgres@127.0.0.1:${port}` });
  let dir: string | undefined;
  try {
    assert.match(s.origin, new RegExp(`^nothing answers at postgres://postgres@127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\): an embedded PostgreSQL 15\\.`));
    dir = /in (\S+)$/.exec(s.origin)?.[1];
    assert.ok(dir && existsSync(dir), 'the temporary folder exists while it runs');
    assert.match(s.url, /^postgres:\/\/postgres@127\.0\.0\.1:\d+$/);
    assert.notEqual(s.url, `postgres://postgres@127.0.0.1:${port}`);
    assert.match(await query(s.url, 'SHOW server_version_num'), /^15\d{4}$/);
    assert.match(await query(s.url, "SELECT datcollate FROM pg_database WHERE datname = 'postgres'"), /^C(\.UTF-8)?$/);
    assert.equal(await query(s.url, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = 'postgres'"), 'UTF8');
  } finally {
    await s.stop();
  }
  assert.equal(existsSync(dir!), false, 'the folder is removed');
  await assert.rejects(query(s.url, 'SELECT 1'), /ECONNREFUSED/, 'the server is stopped');
});

test('BELAY_TEST_SERVER is used as given, and a server that answers is used as it is', async () => {
  assert.equal((await testServer({ BELAY_TEST_SERVER: 'postgres://someone@db.example:6543' })).url, 'postgres://someone@db.example:6543');
  const found = await testServer({ BELAY_TEST_PROBE: SERVER });
  assert.equal(found.url, SERVER);
  assert.equal(found.origin, `the server at ${SERVER}`);
});

test('a server that answers but refuses the tests is reported, not replaced by an embedded one', async () => {
  const probe = SERVER.replace(/^postgres:\/\/[^@/]+@/, 'postgres://belay_no_such_role@');
  await assert.rejects(
    testServer({ BELAY_TEST_PROBE: probe }),
    /a server answers at postgres:\/\/belay_no_such_role@.* but refuses the tests: .*belay_no_such_role.*BELAY_TEST_SERVER/,
  );
});
