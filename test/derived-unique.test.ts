// Unique violations derived from the catalog, with nothing declared in the spec (issue: a second unique
// index over the written column, "EventType_userId_parentId_key", let a Cal.com backfill pass its checks
// and fail half-way). On the Cal.com-shaped data, the flagship migration, unchanged: belay check lists
// every colliding row with the row it meets, and apply refuses with exit 6 before any backup or write.
// Then the rules on small tables: partial, expression, NULLS NOT DISTINCT, collations, unchanged rows,
// declared checks not reported twice.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { derivedUniqueCode } from '../src/checks/derived-unique.ts';
import { type CheckFinding, type CheckReport, runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { safeApply } from '../src/run/pipeline.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { type CalcomTruth, seedCalcom } from './fixtures/calcom/seed.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { checksums, flagship } from './helpers/flagship.ts';
import { inline } from './helpers/fixture.ts';

const ALL = 1_000_000;
const PARENT_KEY = derivedUniqueCode('EventType_userId_parentId_key', 'assign-owner');
const CALCOM_TABLES = ['EventType', '_user_eventtype', 'users', 'Team', 'Membership', 'Schedule', 'Host', 'Webhook'];

const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);
const find = (r: CheckReport, code: string): CheckFinding => {
  const f = r.findings.find((x) => x.code === code);
  assert.ok(f, `finding ${code} in ${r.findings.map((x) => x.code).join(', ')}`);
  return f;
};
const ids = (f: CheckFinding, col = 'id') => sorted(f.sample.map((x) => Number(x[col])));

const spec = (input: MigrationInput) => inline(input, 'test');

async function count(db: Db, sql: string): Promise<number> {
  return Number((await db.query<{ n: number }>(sql)).rows[0]!.n);
}

for (const kind of DB_KINDS) {
  describe(`derived unique predictions on ${kind}`, () => {
    let shared: { db: Db; drop(): Promise<void> };
    let truth: CalcomTruth;
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      truth = await seedCalcom(shared.db, { seed: 5 });
    });
    after(() => shared.drop());

    test('Cal.com-shaped data, flagship unchanged: belay check lists every ("userId","parentId") collision with the row it meets', async () => {
      const { db } = shared;
      const m = await flagship();
      const before = await checksums(db, CALCOM_TABLES);
      // what the declared checks alone say: nothing blocks (the failure Cal.com met in production)
      const declaredOnly = await runChecks(db, m, { sample: ALL, derive: false });
      assert.equal(declaredOnly.ok, true);
      const r = await runChecks(db, m, { sample: ALL });
      assert.deepEqual(await checksums(db, CALCOM_TABLES), before, 'read-only');

      // the flagship's own categories agree with the seed's truth (the data set is what it claims)
      assert.equal(find(r, 'ASSIGN').count, truth.assign.size);
      assert.deepEqual(ids(find(r, 'UNOWNED')), sorted(truth.unowned));
      assert.deepEqual(ids(find(r, 'AMBIGUOUS')), sorted(truth.ambiguous));
      assert.deepEqual(ids(find(r, 'SLUG_CONFLICT')), sorted(truth.slugConflicts));
      assert.equal(find(r, 'UNIQUE_USER_SLUG').count, 0);

      const f = find(r, PARENT_KEY);
      assert.equal(f.kind, 'unique-after');
      assert.equal(f.severity, 'error');
      assert.deepEqual(f.derived, {
        source: 'catalog',
        step: 'assign-owner',
        table: 'EventType',
        index: 'EventType_userId_parentId_key',
        constraint: null,
        definition: 'CREATE UNIQUE INDEX "EventType_userId_parentId_key" ON public."EventType" USING btree ("userId", "parentId")',
      });
      assert.match(f.message, /EventType_userId_parentId_key/);
      assert.equal(f.count, truth.parentCollisions.size);
      assert.ok(f.count >= 12, `planted collisions: ${f.count}`);
      assert.deepEqual(ids(f), sorted(truth.parentCollisions.keys()));
      const existing = new Set(truth.parentCollisionsWithExisting);
      for (const row of f.sample) {
        const id = Number(row.id);
        assert.equal(Number(row.collidesWith), truth.parentCollisions.get(id), `row ${id} meets its planted counterpart`);
        assert.equal(Number(row.userId), truth.assign.get(id), 'the owner it would get');
        assert.ok(truth.managedParents.has(Number(row.parentId)), 'a child of a managed parent');
        assert.equal(row.collidesWithChanged, !existing.has(id), 'a pair changes both rows; an existing child stays');
      }
      // the declared unique-after on ("userId", slug) stands for its index: not derived a second time
      assert.deepEqual(
        r.findings.filter((x) => x.kind === 'unique-after').map((x) => x.code),
        ['UNIQUE_USER_SLUG', PARENT_KEY],
      );
      assert.equal(r.ok, false);
      assert.deepEqual(r.blocking, [PARENT_KEY]);
    });

    test('Cal.com-shaped data: apply refuses with exit 6 before any backup or write (no copy, no undo row, checksums unchanged)', async () => {
      const { db } = shared;
      const before = await checksums(db, CALCOM_TABLES);
      const r = await safeApply(db, await flagship(), { batchSize: 50 });
      assert.equal(r.status, 'failed');
      assert.equal(r.error?.code, 'BELAY_CHECKS');
      assert.equal(r.error?.exitCode, 6);
      assert.deepEqual(r.error?.details.blocking, [PARENT_KEY]);
      assert.match(r.error!.message, /UNIQUE:EventType_userId_parentId_key@assign-owner \(\d+ rows\)/);
      assert.deepEqual(await checksums(db, CALCOM_TABLES), before, 'no write');
      assert.equal(await count(db, `SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'belay_backup'`), 0, 'no backup copy');
      assert.equal(await count(db, 'SELECT count(*)::int AS n FROM belay.backups'), 0);
      assert.equal(await count(db, 'SELECT count(*)::int AS n FROM belay.undo'), 0, 'no undo row');
      assert.equal(await count(db, 'SELECT count(*)::int AS n FROM belay.batches'), 0, 'no batch');
      const stored = await db.query<{ code: string; outcome: string; row_count: number }>(
        `SELECT code, outcome, row_count::int AS row_count FROM belay.check_results WHERE run_id = $1 AND code = $2`,
        [r.runId, PARENT_KEY],
      );
      assert.deepEqual(
        stored.rows.map((x) => [x.outcome, x.row_count]),
        [['blocked', truth.parentCollisions.size]],
        'the prediction is stored with the run',
      );
    });
  });

  describe(`derived unique rules on ${kind}`, () => {
    let shared: { db: Db; drop(): Promise<void> };
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      await shared.db.exec(`
        CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
        CREATE TABLE t (
          id int PRIMARY KEY, a int, b text, code text, tag text COLLATE ci, live boolean NOT NULL DEFAULT true,
          want_a int, want_code text, want_tag text, email text,
          CONSTRAINT t_email_key UNIQUE (email) DEFERRABLE INITIALLY DEFERRED
        );
        CREATE UNIQUE INDEX t_a_live ON t (a) WHERE live;
        CREATE UNIQUE INDEX t_lower_code ON t (lower(code));
        CREATE UNIQUE INDEX t_ab_nnd ON t (a, b) NULLS NOT DISTINCT;
        CREATE UNIQUE INDEX t_tag ON t (tag);
        CREATE UNIQUE INDEX t_b ON t (b);
        INSERT INTO t (id, a, b, code, tag, live, want_a, want_code, want_tag, email) VALUES
          (1, 10,   'x', 'Alpha', 'Red',  true,  NULL, NULL,    NULL,   'one@example.com'),
          (2, NULL, 'y', 'beta',  'blue', true,  NULL, NULL,    NULL,   NULL),
          (3, NULL, 'z', NULL,    NULL,   false, 10,   'ALPHA', 'RED',  NULL),
          (4, NULL, 'w', NULL,    NULL,   true,  10,   'Gamma', 'BLUE', NULL),
          (5, NULL, 'v', NULL,    NULL,   true,  NULL, NULL,    NULL,   NULL),
          (6, 20,   'u', 'same',  NULL,   true,  20,   'same',  NULL,   NULL);
      `);
    });
    after(() => shared.drop());

    const step = (writes: string[], projection: string) => ({ kind: 'batched' as const, name: 's', table: 't', writes, projection });

    test('partial index: only rows its predicate holds collide; other unique indexes over the column each get their own finding', async () => {
      // ids 3 (not live) and 4 (live) both take a = 10, like id 1 (live)
      const m = spec({
        id: 'a',
        purpose: 'set a from want_a for the tests',
        tables: ['t'],
        steps: [step(['a'], 'SELECT id, want_a AS a FROM t WHERE id BETWEEN $1 AND $2 AND want_a IS NOT NULL')],
      });
      const r = await runChecks(shared.db, m, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => f.code),
        ['UNIQUE:t_a_live@s', 'UNIQUE:t_ab_nnd@s'],
        'every unique index reading a, none other',
      );
      const live = find(r, 'UNIQUE:t_a_live@s');
      assert.deepEqual(
        live.sample.map((x) => [x.id, x.a, x.collidesWith]),
        [[4, 10, 1]],
        'id 3 is outside the predicate',
      );
      // (a, b) NULLS NOT DISTINCT: every b differs, so no collision; id 6 keeps a = 20 and is not a change
      assert.equal(find(r, 'UNIQUE:t_ab_nnd@s').count, 0);
      assert.deepEqual(r.blocking, ['UNIQUE:t_a_live@s']);
    });

    test('expression index: lower(code) of the row as it will be; a collation of the column (case-insensitive ICU) compares as the index does', async () => {
      const m = spec({
        id: 'code',
        purpose: 'set code and tag from the wanted values',
        tables: ['t'],
        steps: [
          step(
            ['code', 'tag'],
            'SELECT id, want_code AS code, want_tag AS tag FROM t WHERE id BETWEEN $1 AND $2 AND (want_code IS NOT NULL OR want_tag IS NOT NULL)',
          ),
        ],
      });
      const r = await runChecks(shared.db, m, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => f.code),
        ['UNIQUE:t_lower_code@s', 'UNIQUE:t_tag@s'],
      );
      const lower = find(r, 'UNIQUE:t_lower_code@s');
      // 'ALPHA' (id 3) meets 'Alpha' (id 1); id 6 writes the code it has: no change, not counted
      assert.deepEqual(
        lower.sample.map((x) => [x.id, x['lower(code)'], x.collidesWith, x.collidesWithChanged]),
        [[3, 'alpha', 1, false]],
      );
      // the prediction compares as the database does: PGlite's ICU has no locale data, so there ci folds no case
      const folds = (await shared.db.query<{ eq: boolean }>(`SELECT 'Red' = 'RED' COLLATE ci AS eq`)).rows[0]!.eq;
      assert.equal(folds, kind === 'postgres');
      const tag = find(r, 'UNIQUE:t_tag@s');
      assert.deepEqual(
        tag.sample.map((x) => [x.id, x.collidesWith]),
        folds
          ? [
              [3, 1],
              [4, 2],
            ]
          : [],
        "'RED' = 'Red' and 'BLUE' = 'blue' where ci folds case",
      );
      // a projection whose value carries another collation: the column stores it, the index compares it under ci
      const other = spec({
        id: 'tag-c',
        purpose: 'set tag from a value collated otherwise',
        tables: ['t'],
        steps: [step(['tag'], 'SELECT id, want_tag COLLATE "C" AS tag FROM t WHERE id BETWEEN $1 AND $2 AND want_tag IS NOT NULL')],
      });
      const again = find(await runChecks(shared.db, other, { sample: ALL }), 'UNIQUE:t_tag@s');
      assert.deepEqual(
        again.sample.map((x) => [x.id, x.collidesWith]),
        folds
          ? [
              [3, 1],
              [4, 2],
            ]
          : [],
      );
    });

    test('NULLS NOT DISTINCT: NULLs collide; in a plain unique index they never do', async () => {
      // id 5 gets b = NULL: a plain unique index on b lets many NULLs in, (a, b) NULLS NOT DISTINCT meets no (NULL, NULL) yet;
      // then id 4 gets b = NULL as well: (NULL, NULL) twice under NULLS NOT DISTINCT
      const one = spec({
        id: 'b1',
        purpose: 'clear b of one row for the tests',
        tables: ['t'],
        steps: [step(['b'], 'SELECT id, NULL::text AS b FROM t WHERE id BETWEEN $1 AND $2 AND id = 5')],
      });
      let r = await runChecks(shared.db, one, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => [f.code, f.count]),
        [
          ['UNIQUE:t_ab_nnd@s', 0],
          ['UNIQUE:t_b@s', 0],
        ],
      );
      const two = spec({
        id: 'b2',
        purpose: 'clear b of two rows for the tests',
        tables: ['t'],
        steps: [step(['b'], 'SELECT id, NULL::text AS b FROM t WHERE id BETWEEN $1 AND $2 AND id IN (4, 5)')],
      });
      r = await runChecks(shared.db, two, { sample: ALL });
      assert.equal(find(r, 'UNIQUE:t_b@s').count, 0, 'NULLs are distinct in a plain unique index');
      const nnd = find(r, 'UNIQUE:t_ab_nnd@s');
      assert.deepEqual(
        nnd.sample.map((x) => [x.id, x.a, x.b, x.collidesWith]),
        [
          [4, null, null, 5],
          [5, null, null, 4],
        ],
      );
    });

    test('regression: unique-after counts rows whose value does not change (a row the projection returns with its own value is not a collision)', async () => {
      // id 1 is returned with the value it has (10), id 4 takes 10: only id 4 collides, with id 1, which stays as it is
      const m = spec({
        id: 'same',
        purpose: 'return a row unchanged beside one that collides',
        tables: ['t'],
        checks: [{ kind: 'unique-after', code: 'A_LIVE', step: 's', index: 't_a_live' }],
        steps: [step(['a'], 'SELECT id, CASE WHEN id = 1 THEN 10 ELSE 10 END AS a FROM t WHERE id BETWEEN $1 AND $2 AND id IN (1, 4)')],
      });
      const r = await runChecks(shared.db, m, { sample: ALL });
      const f = find(r, 'A_LIVE');
      assert.deepEqual(
        f.sample.map((x) => [x.id, x.collidesWith, x.collidesWithChanged]),
        [[4, 1, false]],
      );
      assert.equal(f.count, 1);
    });

    test('a declared unique-after on the index replaces the derived one (its code and severity); a deferrable unique constraint is predicted too', async () => {
      const writesA = step(['a', 'email'], "SELECT id, want_a AS a, 'one@example.com' AS email FROM t WHERE id BETWEEN $1 AND $2 AND id = 4");
      const declared = spec({
        id: 'decl',
        purpose: 'declare one index, leave the others to the catalog',
        tables: ['t'],
        checks: [{ kind: 'unique-after', code: 'LIVE_A', severity: 'warn', step: 's', index: 't_a_live' }],
        steps: [writesA],
      });
      const r = await runChecks(shared.db, declared, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => [f.code, f.severity, f.count, f.derived?.index ?? null]),
        [
          ['LIVE_A', 'warn', 1, null],
          ['UNIQUE:t_ab_nnd@s', 'error', 0, 't_ab_nnd'],
          ['UNIQUE:t_email_key@s', 'error', 1, 't_email_key'],
        ],
      );
      assert.equal(find(r, 'UNIQUE:t_email_key@s').derived?.constraint, 't_email_key');
      assert.deepEqual(r.blocking, ['UNIQUE:t_email_key@s'], 'a declared warn does not block; the deferred constraint does (it fails at commit)');
      assert.equal(find(r, 'UNIQUE:t_email_key@s').sample[0]!.collidesWith, 1);
    });
  });
}
