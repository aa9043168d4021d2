// Ctrl-C and SIGTERM during apply and rollback (issue 17): the batch in flight commits, the run is left paused
// (a rollback part-way) with no transaction or lock behind it, the command exits 130 or 143 and says how to go
// on; a second Ctrl-C cancels the statement in flight. The commands run as child processes, on the server and on PGlite.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { type Db, openDb } from '../src/db/connection.ts';
import { EXIT } from '../src/errors.ts';
import { runCli } from './helpers/cli.ts';
import { scalar, withDb } from './helpers/fixture.ts';

const ROWS = 3000;

/** Every UPDATE statement on work sleeps `seconds`: batches slow enough to be interrupted, on apply and rollback alike. */
const slowBy = (seconds: number) => `CREATE OR REPLACE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(${seconds}); RETURN NULL; END $$;`;

const SCHEMA = `CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
INSERT INTO work SELECT g, g, NULL FROM generate_series(1, ${ROWS}) g;
${slowBy(0.1)}
CREATE TRIGGER slow AFTER UPDATE ON work FOR EACH STATEMENT EXECUTE FUNCTION slow();`;

function migrationDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-signals-'));
  writeFileSync(
    path.join(dir, 'migration.ts'),
    `export default ${JSON.stringify({
      id: 'fill-out',
      purpose: 'Fill work.out from work.w (signal tests).',
      tables: ['work'],
      steps: [{ kind: 'batched', name: 'fill', table: 'work', writes: ['out'], decide: 'SELECT id, w * 2 AS out FROM work WHERE out IS NULL' }],
    })};`,
  );
  return dir;
}

/** What an interrupted command must leave: no other session in a transaction, no lock on the table. */
async function assertNothingHeld(db: Db): Promise<void> {
  const open = await scalar(
    db,
    `SELECT count(*)::int AS v FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL`,
  );
  assert.equal(open, 0, 'no transaction left open');
  assert.equal(
    await scalar(db, `SELECT count(*)::int AS v FROM pg_locks l WHERE l.relation = 'work'::regclass AND l.pid <> pg_backend_pid()`),
    0,
    'no lock left on the table',
  );
}

const committed = (db: Db, runId: number) => scalar(db, `SELECT count(*)::int AS v FROM belay.batches WHERE run_id = $1`, [runId]).then(Number);

test('server: Ctrl-C during apply commits the batch in flight, pauses the run, exits 130; belay apply resumes it to completion', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    const dir = migrationDir();
    let sent = false;
    const r = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100', '--json'], {
      onLine: (line, child) => {
        if (!sent && line.includes('"type":"batch-committed"')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.ok(sent, r.stderr);
    assert.equal(r.code, EXIT.interrupted, r.stderr);
    assert.match(r.stderr, /SIGINT: stopping the run after the batch in flight/);
    assert.match(r.stderr, /error \[BELAY_INTERRUPTED\].*paused/);
    assert.match(r.stderr, /what to do: Resume it with belay apply .*migration/);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const result = lines.find((l) => l.type === 'result');
    assert.equal(result.status, 'paused');
    // the last line is the error, for a machine: code, exit code, what to do
    assert.deepEqual([lines.at(-1).type, lines.at(-1).code, lines.at(-1).exitCode], ['error', 'BELAY_INTERRUPTED', EXIT.interrupted]);
    assert.match(lines.at(-1).fix, /belay apply/);
    const runId = result.runId as number;
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'paused');
    await assertNothingHeld(db);
    const batches = await committed(db, runId);
    assert.ok(batches >= 1 && batches < ROWS / 100, `stopped part-way (${batches} batches)`);
    // every committed batch is whole: its rows written, none of the next
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`)), batches * 100);

    const again = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100']);
    assert.equal(again.code, EXIT.ok, again.stderr);
    assert.match(again.stderr, /resumed from its last checkpoint/);
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'completed');
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), ROWS);
  });
});

test('server: Ctrl-C during apply --workers 2 stops every worker after its batch in flight, pauses the run, exits 130; belay apply resumes it', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    const dir = migrationDir();
    let sent = false;
    const r = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100', '--workers', '2', '--json'], {
      onLine: (line, child) => {
        if (!sent && line.includes('"type":"batch-committed"')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.equal(r.code, EXIT.interrupted, r.stderr);
    assert.match(r.stdout, /"type":"workers-started"/);
    const runId = Number(await scalar(db, `SELECT max(id) AS v FROM belay.runs`));
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'paused');
    await assertNothingHeld(db);
    const batches = await committed(db, runId);
    assert.ok(batches < ROWS / 100, `stopped part-way (${batches} batches)`);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`)), batches * 100);
    const again = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100', '--workers', '2']);
    assert.equal(again.code, EXIT.ok, again.stderr);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), ROWS);
  });
});

test('server: a second Ctrl-C cancels the statement in flight (its batch rolls back) and exits 130, the run paused and resumable', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    // three batches of 2 s: the first signal lands in the second batch, the second cancels it
    await db.exec(slowBy(2));
    await db.query(`DELETE FROM work WHERE id > 300`);
    const dir = migrationDir();
    let sent = false;
    const r = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100', '--json'], {
      onLine: (line, child) => {
        if (sent || !line.includes('"type":"batch-committed"')) return;
        sent = true;
        setTimeout(() => child.kill('SIGINT'), 500);
        setTimeout(() => child.kill('SIGINT'), 800);
      },
    });
    assert.equal(r.code, EXIT.interrupted, r.stderr);
    assert.match(r.stderr, /SIGINT again: cancelling the statement in flight/);
    assert.match(r.stderr, /error \[BELAY_INTERRUPTED\]/);
    const runId = Number(await scalar(db, `SELECT max(id) AS v FROM belay.runs`));
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'paused');
    await assertNothingHeld(db);
    // the second batch was cancelled, not committed (left alone it would have committed 1.2 s later)
    assert.equal(await committed(db, runId), 1);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`)), 100);

    await db.exec(slowBy(0));
    const again = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100']);
    assert.equal(again.code, EXIT.ok, again.stderr);
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), 300);
  });
});

test('server: SIGTERM during rollback commits the undo batch in flight, leaves the run rolling_back, exits 143; rollback again finishes it', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await db.exec(SCHEMA);
    await db.exec(slowBy(0));
    const dir = migrationDir();
    const applied = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '100', '--json']);
    assert.equal(applied.code, EXIT.ok, applied.stderr);
    const runId = JSON.parse(applied.stdout.trim().split('\n').at(-1)!).runId as number;
    await db.exec(slowBy(0.1));
    let sent = false;
    const r = await runCli(['rollback', String(runId), '--db', url, '--json'], {
      onLine: (line, child) => {
        if (!sent && line.includes('"type":"rollback-batch"')) {
          sent = true;
          child.kill('SIGTERM');
        }
      },
    });
    assert.equal(r.code, EXIT.terminated, r.stderr);
    assert.match(r.stderr, /SIGTERM: stopping the rollback after the batch in flight/);
    assert.match(r.stderr, new RegExp(`Finish it with belay rollback ${runId}`));
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.find((l) => l.type === 'result').status, 'interrupted');
    assert.equal(lines.at(-1).code, 'BELAY_INTERRUPTED');
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'rolling_back');
    await assertNothingHeld(db);
    const left = Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NOT NULL`));
    assert.ok(left > 0 && left < ROWS && left % 100 === 0, `stopped between undo batches (${left} rows still written)`);

    await db.exec(slowBy(0));
    const again = await runCli(['rollback', String(runId), '--db', url]);
    assert.equal(again.code, EXIT.ok, again.stderr);
    assert.equal(await scalar(db, `SELECT status AS v FROM belay.runs WHERE id = $1`, [runId]), 'rolled_back');
    assert.equal(Number(await scalar(db, `SELECT count(*)::int AS v FROM work WHERE out IS NULL`)), ROWS);
  });
});

test('pglite: Ctrl-C during apply pauses the run after the batch in flight and exits 130; belay apply resumes it', async () => {
  const dir = migrationDir();
  const url = `pglite:${path.join(dir, 'db')}`;
  try {
    const db = await openDb(url);
    await db.exec(`CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
      INSERT INTO work SELECT g, g, NULL FROM generate_series(1, ${ROWS}) g;`);
    await db.close();
    let sent = false;
    const r = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '50', '--json'], {
      onLine: (line, child) => {
        if (!sent && line.includes('"type":"batch-committed"')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    });
    assert.equal(r.code, EXIT.interrupted, r.stderr);
    const seen = await openDb(url);
    try {
      assert.equal(await scalar(seen, `SELECT status AS v FROM belay.runs ORDER BY id DESC LIMIT 1`), 'paused');
      assert.ok(Number(await scalar(seen, `SELECT count(*)::int AS v FROM work WHERE out IS NULL`)) > 0, 'stopped part-way');
    } finally {
      await seen.close();
    }
    const again = await runCli(['apply', dir, '--db', url, '--no-backup', '--batch-size', '50']);
    assert.equal(again.code, EXIT.ok, again.stderr);
    assert.match(again.stderr, /resumed from its last checkpoint/);
    const check = await openDb(url);
    try {
      assert.equal(Number(await scalar(check, `SELECT count(*)::int AS v FROM work WHERE out = w * 2`)), ROWS);
    } finally {
      await check.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
