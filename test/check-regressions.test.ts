// Regression tests of issue 15 in the check, plan and verify stages, each named after the defect it guards.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { findSeqScans } from '../src/plan/explain.ts';
import { plan, safeApply } from '../src/run/pipeline.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { loadMigration } from '../src/spec/load.ts';
import { getRounds } from '../src/verify/record.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { checksums } from './helpers/flagship.ts';
import { inline, withDb } from './helpers/fixture.ts';

const spec = (input: MigrationInput) => inline(input, 'test');

async function expectedChanges(db: Db, runId: number) {
  const rounds = await getRounds(db, runId);
  return rounds[0]!.checks.find((c) => c.name === 'expected-changes')!;
}

const T = `CREATE TABLE t (id int PRIMARY KEY, v int, w int NOT NULL);
INSERT INTO t SELECT g, NULL, g FROM generate_series(1, 30) g;`;
const fill = {
  kind: 'batched' as const,
  name: 'fill',
  table: 't',
  writes: ['v'],
  projection: 'SELECT id, w * 2 AS v FROM t WHERE id BETWEEN $1 AND $2 AND w <= 20',
};

for (const kind of DB_KINDS) {
  test(`${kind}: regression: every info finding was taken for rows to change, so an informational check failed expected-changes`, async () => {
    await withDb(kind, async (f) => {
      await f.db.exec(T);
      const checks = (changes: number) => [
        // informational: rows the migration leaves alone (10 rows); never rows to change
        { kind: 'sql' as const, code: 'LEFT_ALONE', severity: 'info' as const, message: 'rows with w > 20 stay NULL', sql: 'SELECT id FROM t WHERE w > 20' },
        {
          kind: 'classify' as const,
          code: 'ROWS',
          sql: `SELECT CASE WHEN w <= ${changes} THEN 'fill' END AS category, id FROM t`,
          categories: [{ value: 'fill', code: 'FILL', severity: 'info' as const, changes: true, message: 'rows the step fills' }],
        },
      ];
      const r = await safeApply(f.db, spec({ id: 'fill-v', purpose: 'fill v for the rows with w <= 20', tables: ['t'], checks: checks(20), steps: [fill] }), {
        backup: false,
      });
      assert.equal(r.status, 'completed', r.error?.message ?? '');
      const ok = await expectedChanges(f.db, r.runId);
      assert.equal(ok.result, 'pass', JSON.stringify(ok));
      assert.match(ok.message, /\(FILL\)/, 'only the declared category counts');
      // a declaration that disagrees with the run is still caught
      await f.db.exec('UPDATE t SET v = NULL');
      const wrong = await safeApply(
        f.db,
        spec({ id: 'fill-v2', purpose: 'fill v, the rows to change miscounted', tables: ['t'], checks: checks(15), steps: [fill] }),
        { backup: false },
      );
      assert.equal(wrong.error?.code, 'BELAY_VERIFY');
      const bad = await expectedChanges(f.db, wrong.runId);
      assert.equal(bad.result, 'fail');
      assert.deepEqual(bad.sample, [{ categories: ['FILL'], expected: 15, changed: 20 }]);
      // nothing declares the rows to change: the comparison is skipped, not failed by an info finding
      await f.db.exec('UPDATE t SET v = NULL');
      const none = await safeApply(
        f.db,
        spec({ id: 'fill-v3', purpose: 'fill v, no rows-to-change declared', tables: ['t'], checks: [checks(20)[0]!], steps: [fill] }),
        { backup: false },
      );
      assert.equal(none.status, 'completed', none.error?.message ?? '');
      assert.equal((await expectedChanges(f.db, none.runId)).result, 'skipped');
    });
  });

  test(`${kind}: regression: the NOT NULL recipe (SQL step ADD COLUMN, batched backfill, SQL step SET NOT NULL): a not-null check on the new column was refused`, async () => {
    await withDb(kind, async (f) => {
      await f.db.exec(`CREATE TABLE people (id int PRIMARY KEY, email text);
        INSERT INTO people SELECT g, CASE WHEN g % 10 = 0 THEN NULL ELSE 'P' || g || '@Example.com' END FROM generate_series(1, 50) g;`);
      const recipe = (projection: string) =>
        spec({
          id: 'email-norm',
          purpose: 'add email_norm, backfill it in batches, then make it NOT NULL',
          tables: ['people'],
          checks: [{ kind: 'not-null', code: 'NORM_SET', table: 'people', column: 'email_norm', step: 'backfill' }],
          steps: [
            { kind: 'sql', name: 'add-column', up: 'ALTER TABLE people ADD COLUMN email_norm text', down: 'ALTER TABLE people DROP COLUMN email_norm' },
            { kind: 'batched', name: 'backfill', table: 'people', writes: ['email_norm'], projection },
            {
              kind: 'sql',
              name: 'set-not-null',
              up: 'ALTER TABLE people ALTER COLUMN email_norm SET NOT NULL',
              down: 'ALTER TABLE people ALTER COLUMN email_norm DROP NOT NULL',
            },
          ],
        });
      const before = await checksums(f.db, ['people']);
      const leaky = await runChecks(f.db, recipe('SELECT id, lower(email) AS email_norm FROM people WHERE id BETWEEN $1 AND $2'), { sample: 100 });
      assert.deepEqual(leaky.previewedSteps, ['add-column'], 'the ADD COLUMN ran inside the check, rolled back');
      const norm = leaky.findings.find((x) => x.code === 'NORM_SET')!;
      assert.deepEqual(
        norm.sample.map((x) => Number(x.id)),
        [10, 20, 30, 40, 50],
        'rows whose email is NULL stay NULL',
      );
      assert.deepEqual(leaky.blocking, ['NORM_SET']);
      assert.ok(leaky.findings.some((x) => x.code === 'SQL_STEP_PREVIEW:add-column' && x.severity === 'info'));
      const good = await runChecks(f.db, recipe("SELECT id, coalesce(lower(email), 'none-' || id) AS email_norm FROM people WHERE id BETWEEN $1 AND $2"));
      assert.equal(good.ok, true);
      assert.equal(good.findings.find((x) => x.code === 'NORM_SET')!.count, 0);
      // nothing stayed: the column does not exist, the data is as it was
      const col = await f.db.query(`SELECT 1 FROM pg_attribute WHERE attrelid = 'people'::regclass AND attname = 'email_norm'`);
      assert.equal(col.rows.length, 0);
      assert.deepEqual(await checksums(f.db, ['people']), before);
    });
  });

  test(`${kind}: regression: plan proposed an index that exists (the primary key), ignored tempIndexes, and proposed one twice`, async () => {
    await withDb(kind, async (f) => {
      await f.db.exec(`CREATE TABLE big (id int PRIMARY KEY, grp int NOT NULL, v int);
        INSERT INTO big SELECT g, g % 100, g FROM generate_series(1, 20000) g; ANALYZE big;`);
      const explain = async (sql: string) => {
        await f.db.query('BEGIN');
        try {
          // the planner may prefer a sequential scan over an existing index (a wide range): what plan then sees
          await f.db.query('SET LOCAL enable_indexscan = off');
          await f.db.query('SET LOCAL enable_bitmapscan = off');
          const r = await f.db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) ${sql}`);
          const v = Object.values(r.rows[0]!)[0];
          return typeof v === 'string' ? JSON.parse(v) : v;
        } finally {
          await f.db.query('ROLLBACK');
        }
      };
      const byKey = await findSeqScans(f.db, await explain('SELECT * FROM big WHERE id BETWEEN 1 AND 15000'), 's', 1000);
      assert.equal(byKey.length, 1, JSON.stringify(byKey));
      assert.deepEqual([byKey[0]!.proposedIndex, byKey[0]!.servedBy], [null, 'big_pkey']);
      const twice = await findSeqScans(f.db, await explain('SELECT * FROM big WHERE grp = 5 UNION ALL SELECT * FROM big WHERE grp = 7'), 's', 1000);
      assert.deepEqual(
        twice.map((x) => x.proposedIndex?.name ?? `served by ${x.servedBy}`),
        ['belay_tmp_big_grp', 'served by belay_tmp_big_grp'],
        'proposed once',
      );
      const declared = await findSeqScans(f.db, await explain('SELECT * FROM big WHERE grp = 5'), 's', 1000, [
        { name: 'my_grp', table: 'big', columns: '"grp"' },
      ]);
      assert.deepEqual([declared[0]!.proposedIndex, declared[0]!.servedBy], [null, 'my_grp']);
      // through belay plan: a declared temporary index is not proposed again, and the plan says it measured without it
      await f.db.exec(
        `CREATE TABLE grp_owner (grp int PRIMARY KEY, owner int NOT NULL); INSERT INTO grp_owner SELECT g, g * 7 FROM generate_series(0, 99) g; ANALYZE grp_owner;`,
      );
      const dir = mkdtempSync(path.join(tmpdir(), 'belay-regress-'));
      const file = (temp: string) => {
        const p = path.join(dir, `m${temp ? '-temp' : ''}.ts`);
        writeFileSync(
          p,
          `export default {
          id: 'grp-scan', purpose: 'Join on an unindexed column of a large table (plan regression test).', tables: ['big', 'grp_owner'],
          ${temp}
          steps: [{ kind: 'batched', name: 'copy', table: 'grp_owner', writes: ['owner'],
            projection: 'SELECT o.grp, coalesce((SELECT max(b.id) FROM big b WHERE b.v = o.owner), 0) AS owner FROM grp_owner o WHERE o.grp BETWEEN $1 AND $2' }],
        };`,
        );
        return p;
      };
      const plain = await plan(f.db, await loadMigration(file('')), { samples: 1, largeTableRows: 2000 });
      assert.deepEqual(plain.proposedIndexes, [{ name: 'belay_tmp_big_v', table: 'big', columns: '"v"' }]);
      const withTemp = await plan(f.db, await loadMigration(file(`tempIndexes: [{ name: 'tmp_big_v', table: 'big', columns: 'v' }],`)), {
        samples: 1,
        largeTableRows: 2000,
      });
      assert.deepEqual(withTemp.proposedIndexes, []);
      assert.equal(withTemp.steps[0]!.seqScans.find((s) => s.table === 'big')?.servedBy, 'tmp_big_v');
      assert.match(withTemp.steps[0]!.note ?? '', /calibrated without the temporary indexes tmp_big_v/);
    });
  });

  test(`${kind}: regression: min(uuid), which PostgreSQL 15 lacks, in the whole key range of the unique-after and not-null predictions`, async () => {
    await withDb(kind, async (f) => {
      await f.db.exec(`CREATE TABLE u (id uuid PRIMARY KEY, slug text, owner int);
        CREATE UNIQUE INDEX u_owner_slug ON u (owner, slug);
        INSERT INTO u VALUES ('00000000-0000-0000-0000-000000000001', 'a', NULL), ('00000000-0000-0000-0000-000000000002', 'a', NULL), ('00000000-0000-0000-0000-000000000003', 'b', 1);`);
      const r = await runChecks(
        f.db,
        spec({
          id: 'uuid',
          purpose: 'give every row owner 1 (uuid keys)',
          tables: ['u'],
          checks: [{ kind: 'not-null', code: 'OWNER_SET', table: 'u', column: 'owner', step: 's' }],
          steps: [{ kind: 'batched', name: 's', table: 'u', writes: ['owner'], projection: 'SELECT id, 1 AS owner FROM u WHERE id BETWEEN $1 AND $2' }],
        }),
        { sample: 10 },
      );
      const unique = r.findings.find((x) => x.code === 'UNIQUE:u_owner_slug@s')!;
      assert.deepEqual(
        unique.sample.map((x) => [x.id, x.collidesWith]),
        [
          ['00000000-0000-0000-0000-000000000001', '00000000-0000-0000-0000-000000000002'],
          ['00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000001'],
        ],
      );
      assert.equal(r.findings.find((x) => x.code === 'OWNER_SET')!.count, 0);
    });
  });
}
