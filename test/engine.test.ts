// The core engine on both databases: the flagship contract against an independent computation,
// exact rollback, resumability, locking, keys of every supported type, bad specs.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { expectedAfter } from '../examples/event-type-owner/reference.ts';
import { EXIT, LockedError, SpecError, StateError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { loadMigration } from '../src/spec/load.ts';
import { acquireMigrationLock } from '../src/state/lock.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { checksums, flagship, rowsWithout, writtenIds } from './helpers/flagship.ts';
import { withDb, withSession } from './helpers/fixture.ts';

const ROWS = 3_000;

function specFile(body: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-spec-'));
  const file = path.join(dir, 'migration.ts');
  writeFileSync(file, body);
  return file;
}

for (const kind of DB_KINDS) {
  describe(`engine on ${kind}`, () => {
    test('flagship: every row ends as the independent computation says; nothing else changes', async () => {
      await withDb(kind, async (f) => {
        const truth = await generate(f.db, { rows: ROWS, seed: 7 });
        const expected = await expectedAfter(f.db);
        const otherColumns = await rowsWithout(f.db, 'userId');
        const before = await checksums(f.db, ['_user_eventtype', 'users']);
        const r = await apply(f.db, await flagship(), { batchSize: 257 });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.ok(r.steps[0]!.batches > 5, 'several batches ran');
        const owners = await f.db.query<{ id: number; userId: number | null }>(`SELECT id, "userId" FROM "EventType" ORDER BY id`);
        assert.equal(owners.rows.length, expected.owner.size);
        for (const row of owners.rows) {
          assert.equal(row.userId === null ? null : Number(row.userId), expected.owner.get(Number(row.id)), `EventType ${row.id}`);
        }
        // clause 3: the planted assign rows got exactly their planted owner
        for (const [id, owner] of truth.expectedOwner) assert.equal(expected.owner.get(id), owner);
        assert.equal(r.steps[0]!.rowsChanged, truth.categories.assign.length);
        // clauses 4-6: unowned, ambiguous, conflicting, owned, inconsistent and team rows kept their userId
        for (const cat of ['unowned', 'ambiguous', 'conflictExisting', 'conflictPair', 'team'] as const) {
          for (const id of truth.categories[cat]) assert.equal(expected.owner.get(id), null, `${cat} ${id}`);
        }
        // clause 7: every other column of every row, and the other tables, byte-for-byte the same
        assert.deepEqual(await rowsWithout(f.db, 'userId'), otherColumns);
        assert.deepEqual(await checksums(f.db, ['_user_eventtype', 'users']), before);
      });
    });

    test('a listener that throws is isolated: the run completes, the failure is recorded, the other events still flow', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 600, seed: 3 });
        let calls = 0;
        const r = await apply(f.db, await flagship(), {
          batchSize: 100,
          onEvent: (e) => {
            calls++;
            if (e.type === 'batch-committed') throw new Error('the dashboard is down');
          },
        });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.ok(r.steps[0]!.batches > 1);
        assert.ok(calls >= 2, 'the listener was called before it failed');
        const ev = await f.db.query<{ data: { event: string; message: string } }>(
          `SELECT data FROM belay.events WHERE run_id = $1 AND type = 'listener-failed'`,
          [r.runId],
        );
        assert.equal(ev.rows.length, 1);
        assert.deepEqual(ev.rows[0]!.data, { event: 'batch-committed', message: 'the dashboard is down' });
      });
    });

    test('rollback after apply restores every touched table to its checksum; a changed row is left alone unless forced', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 1_500, seed: 11 });
        const before = await checksums(f.db);
        const r = await apply(f.db, await flagship(), { batchSize: 200 });
        assert.equal(r.status, 'completed');
        assert.notDeepEqual(await checksums(f.db), before);
        // someone edits a row the migration wrote
        const id = (await writtenIds(f.db, r.runId))[0]!;
        await f.db.query(`UPDATE "EventType" SET "userId" = NULL WHERE id = $1`, [id]);
        const rb = await rollback(f.db, r.runId);
        assert.equal(rb.conflictCount, 1);
        assert.deepEqual(rb.conflicts[0]!.keys, [id]);
        assert.equal(rb.restored, r.steps[0]!.rowsChanged - 1);
        // the conflicting row was set back to NULL by hand, which is also its before-image: all tables are back
        assert.deepEqual(await checksums(f.db), before);
        const again = await rollback(f.db, r.runId);
        assert.equal(again.status, 'nothing-to-do');
      });
    });

    test('rollback --force overwrites a row changed after the migration', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 800, seed: 5 });
        const before = await checksums(f.db);
        const r = await apply(f.db, await flagship(), { batchSize: 100 });
        const id = (await writtenIds(f.db, r.runId))[0]!;
        const u = await f.db.query<{ id: number }>(`SELECT id FROM users ORDER BY id LIMIT 1`);
        await f.db.query(`UPDATE "EventType" SET "userId" = $2 WHERE id = $1`, [id, u.rows[0]!.id]);
        const rb = await rollback(f.db, r.runId, { force: true });
        assert.equal(rb.conflictCount, 0);
        assert.deepEqual(await checksums(f.db), before);
      });
    });

    test('ambiguous=lowest policy assigns the lowest valid user, still respecting slug conflicts', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 1_200, seed: 3 });
        const expected = await expectedAfter(f.db, { ambiguous: 'lowest' });
        const r = await apply(f.db, await flagship({ ambiguous: 'lowest' }), { batchSize: 150 });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const owners = await f.db.query<{ id: number; userId: number | null }>(`SELECT id, "userId" FROM "EventType"`);
        for (const row of owners.rows) assert.equal(row.userId === null ? null : Number(row.userId), expected.owner.get(Number(row.id)));
        assert.equal(r.steps[0]!.rowsChanged, expected.changed.length);
      });
    });

    test('an in-batch verification failing for more rows than maxRejected rolls that batch back and stops the run', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 1000) g;`);
        const file = specFile(`export default {
          id: 'verify-fails', purpose: 'sets v = id, but the verification refuses ids above 450',
          tables: ['t'],
          steps: [{ kind: 'batched', name: 's', table: 't', writes: ['v'], batchSize: 100,
            projection: 'SELECT id, id AS v FROM t WHERE id BETWEEN $1 AND $2',
            verify: 'SELECT id FROM written WHERE id > 450' }],
        };`);
        const r = await apply(f.db, await loadMigration(file));
        assert.equal(r.status, 'failed');
        assert.equal(r.error?.code, 'BELAY_VERIFY');
        assert.equal(r.error?.exitCode, EXIT.verification);
        const c = await f.db.query<{ changed: number; max: number }>(
          `SELECT count(*) FILTER (WHERE v <> 0)::int AS changed, max(id) FILTER (WHERE v <> 0)::int AS max FROM t`,
        );
        assert.equal(c.rows[0]!.changed, 400, 'batches 1-4 committed, batch 5 rolled back');
        assert.equal(c.rows[0]!.max, 400);
        const u = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.batches`);
        assert.equal(u.rows[0]!.n, 4, 'no checkpoint of the rolled-back batch');
      });
    });

    test('single-transaction mode is all or nothing', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 500) g;`);
        const file = specFile(`export default {
          id: 'single', purpose: 'sets v = id in one transaction; fails near the end',
          tables: ['t'], options: { mode: 'single', batchSize: 100 },
          steps: [{ kind: 'batched', name: 's', table: 't', writes: ['v'],
            projection: 'SELECT id, id AS v FROM t WHERE id BETWEEN $1 AND $2',
            verify: 'SELECT id FROM written WHERE id > 480' }],
        };`);
        const r = await apply(f.db, await loadMigration(file));
        assert.equal(r.status, 'failed');
        const c = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM t WHERE v <> 0`);
        assert.equal(c.rows[0]!.n, 0, 'nothing committed');
        const b = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.batches`);
        assert.equal(b.rows[0]!.n, 0, 'no checkpoint survived');
      });
    });

    test('text, uuid and bigint keys with sparse values: every row once, exact rollback', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`
          CREATE TABLE kt (k text PRIMARY KEY, v text);
          INSERT INTO kt SELECT 'key-' || lpad((g * 7919 % 100000)::text, 6, '0') || CASE WHEN g % 3 = 0 THEN ' é''"' ELSE '' END, NULL FROM generate_series(1, 700) g;
          CREATE TABLE ku (k uuid PRIMARY KEY, v int);
          INSERT INTO ku SELECT md5(g::text)::uuid, NULL FROM generate_series(1, 700) g;
          CREATE TABLE kb (k bigint PRIMARY KEY, v int);
          INSERT INTO kb SELECT g * 1000000007::bigint, NULL FROM generate_series(1, 700) g;`);
        const before = await checksums(f.db, ['kt', 'ku', 'kb']);
        const file = specFile(`export default {
          id: 'keys', purpose: 'fills v for three tables keyed by text, uuid and sparse bigint',
          tables: ['kt', 'ku', 'kb'], options: { batchSize: 64 },
          steps: [
            { kind: 'batched', name: 'text', table: 'kt', writes: ['v'], projection: "SELECT k, upper(k) AS v FROM kt WHERE k BETWEEN $1 AND $2" },
            { kind: 'batched', name: 'uuid', table: 'ku', writes: ['v'], projection: "SELECT k, length(k::text) AS v FROM ku WHERE k BETWEEN $1 AND $2" },
            { kind: 'batched', name: 'bigint', table: 'kb', writes: ['v'], projection: "SELECT k, (k % 97)::int AS v FROM kb WHERE k BETWEEN $1 AND $2" },
          ],
        };`);
        const r = await apply(f.db, await loadMigration(file));
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        for (const s of r.steps) {
          assert.equal(s.rowsDone, 700, s.name);
          assert.equal(s.rowsChanged, 700, s.name);
          assert.equal(s.batches, 11, `${s.name}: ceil(700/64) batches, none empty`);
        }
        const bad = await f.db.query<{ n: number }>(
          `SELECT (SELECT count(*) FROM kt WHERE v IS DISTINCT FROM upper(k)) + (SELECT count(*) FROM ku WHERE v IS NULL) + (SELECT count(*) FROM kb WHERE v IS DISTINCT FROM (k % 97)::int) AS n`,
        );
        assert.equal(Number(bad.rows[0]!.n), 0);
        await rollback(f.db, r.runId);
        assert.deepEqual(await checksums(f.db, ['kt', 'ku', 'kb']), before);
      });
    });

    test('a changed spec refuses to resume a stopped run', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 300) g;`);
        const body = (limit: number) => `export default {
          id: 'resume', purpose: 'sets v = 1 but stops at a verification the first time',
          tables: ['t'], options: { batchSize: 50 },
          steps: [{ kind: 'batched', name: 's', table: 't', writes: ['v'],
            projection: 'SELECT id, 1 AS v FROM t WHERE id BETWEEN $1 AND $2',
            verify: 'SELECT id FROM written WHERE id > ${limit}' }],
        };`;
        const r1 = await apply(f.db, await loadMigration(specFile(body(120))));
        assert.equal(r1.status, 'failed');
        const changed = await apply(f.db, await loadMigration(specFile(body(1000))));
        assert.equal(changed.status, 'refused', 'returned, not thrown');
        assert.ok(changed.error instanceof StateError && changed.error.code === 'BELAY_SPEC_CHANGED');
        assert.equal(changed.runId, r1.runId, 'the result names the run that blocks');
        // the same spec resumes from its checkpoint (and fails at the same place)
        const r2 = await apply(f.db, await loadMigration(specFile(body(120))));
        assert.equal(r2.resumed, true);
        assert.equal(r2.runId, r1.runId);
      });
    });

    test('a bad spec is refused before anything touches the database', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t SELECT g, 0 FROM generate_series(1, 10) g;`);
        const before = await checksums(f.db, ['t']);
        const cases: Array<[string, RegExp]> = [
          [`export default { id: 'x', purpose: 'a purpose long enough', tables: ['t'], steps: [] }`, /steps: must have at least one step/],
          [
            `export default { id: 'Bad Id', purpose: 'a purpose long enough', tables: ['t'], steps: [{ kind: 'sql', name: 'a', up: 'SELECT 1', down: null }] }`,
            /id: must be lower-case/,
          ],
          [
            `export default { id: 'x', purpose: 'a purpose long enough', tables: ['t'], steps: [{ kind: 'batched', name: 'a', table: 't', writes: ['v'], projection: 'SELEC id FROM t' }] }`,
            /does not parse[\s\S]*line 1, column 1/,
          ],
          [
            `export default { id: 'x', purpose: 'a purpose long enough', tables: ['t'], steps: [{ kind: 'batched', name: 'a', table: 'other', writes: ['v'], projection: 'SELECT id FROM t' }] }`,
            /not listed in tables/,
          ],
          [`export default { id: 'x', purpose: 'a purpose long enough', tables: ['t'], stepz: [] }`, /Unrecognized key|stepz/],
        ];
        for (const [body, message] of cases) {
          await assert.rejects(
            loadMigration(specFile(body)),
            (e: unknown) => e instanceof SpecError && e.exitCode === EXIT.spec && message.test(e.message) && e.message.includes('migration.ts'),
            body,
          );
        }
        // a spec naming a column that does not exist fails when it meets the database, and changes nothing
        const m = await loadMigration(
          specFile(
            `export default { id: 'x', purpose: 'a purpose long enough', tables: ['t'], steps: [{ kind: 'batched', name: 'a', table: 't', writes: ['nope'], projection: 'SELECT id, 1 AS nope FROM t WHERE id BETWEEN $1 AND $2' }] }`,
          ),
        );
        const r = await apply(f.db, m);
        assert.equal(r.error?.code, 'BELAY_SPEC');
        assert.match(r.error!.message, /column "nope" does not exist in table "t"/);
        assert.deepEqual(await checksums(f.db, ['t']), before);
      });
    });
  });
}

test('a second concurrent apply of the same migration is refused (server)', async () => {
  await withDb('postgres', (f) =>
    withSession(f.url, async (other) => {
      await generate(f.db, { rows: 300, seed: 2 });
      const m = await flagship();
      const { ensureState } = await import('../src/state/schema.ts');
      await ensureState(other);
      const release = await acquireMigrationLock(other, m.spec.id);
      const locked = await apply(f.db, m);
      assert.equal(locked.status, 'refused', 'returned, not thrown');
      assert.ok(locked.error instanceof LockedError && locked.error.exitCode === EXIT.locked);
      const n = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.runs`);
      assert.equal(n.rows[0]!.n, 0, 'the refused apply recorded no run');
      await release();
      const r = await apply(f.db, m);
      assert.equal(r.status, 'completed');
    }),
  );
});
