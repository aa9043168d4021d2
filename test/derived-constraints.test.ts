// Constraints predicted from the catalog with nothing declared (issue 15, item 1): foreign keys from a
// written column and into one, CHECKs, domains (over domains), NOT NULL and exclusion
// constraints, on the rows a step writes. Each prediction is compared with what the server itself says
// when the same rows are written (inside a transaction that is rolled back), so a wrong or missing
// prediction fails the test; apply refuses with exit 6 before any backup or write.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type CheckFinding, type CheckReport, runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { DbError } from '../src/errors.ts';
import { safeApply } from '../src/run/pipeline.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { checksums } from './helpers/flagship.ts';
import { inline } from './helpers/fixture.ts';

const ALL = 1_000_000;
const TABLES = ['owners', 'items', 'refs'];

const SCHEMA = `
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN small AS posint CHECK (VALUE < 100);
CREATE TABLE owners (id int PRIMARY KEY, code text UNIQUE, want_code text);
CREATE TABLE items (
  id int PRIMARY KEY,
  owner int REFERENCES owners (id),
  parent int REFERENCES items (id),
  qty small,
  label text NOT NULL DEFAULT 'x',
  lo int, hi int,
  during int4range,
  live boolean NOT NULL DEFAULT true,
  w_owner int, w_parent int, w_qty int, w_label text, w_lo int, w_hi int, w_during int4range,
  CONSTRAINT items_lo_hi CHECK (lo <= hi),
  CONSTRAINT items_no_overlap EXCLUDE USING gist (during WITH &&) WHERE (live)
);
CREATE TABLE refs (id int PRIMARY KEY, owner_code text REFERENCES owners (code));
INSERT INTO owners VALUES (1, 'a', 'a2'), (2, 'b', 'b2'), (3, 'c', NULL);
INSERT INTO refs VALUES (1, 'a'), (2, 'a');
INSERT INTO items (id, owner, parent, qty, label, lo, hi, during, live, w_owner, w_parent, w_qty, w_label, w_lo, w_hi, w_during) VALUES
  (1, NULL, NULL, 5,    'one',   1, 2, '[1,5)',   true,  1,    NULL, 50,   'uno',  1,  3,  '[1,5)'),
  (2, NULL, 1,    5,    'two',   1, 2, '[10,15)', true,  99,   98,   0,    NULL,   5,  4,  '[3,7)'),
  (3, 1,    NULL, NULL, 'three', 1, 2, '[20,25)', false, NULL, 1,    150,  'tres', 2,  2,  '[40,45)'),
  (4, NULL, NULL, 7,    'four',  1, 2, NULL,      true,  98,   4,    NULL, NULL,   9,  1,  '[42,48)'),
  (5, NULL, NULL, NULL, 'five',  1, 2, '[60,65)', true,  NULL, NULL, NULL, 'cinco', NULL, NULL, '[41,43)'),
  (6, NULL, NULL, NULL, 'six',   1, 2, '[21,23)', true,  NULL, NULL, NULL, 'seis', NULL, NULL, '[20,25)');
`;

const spec = (input: MigrationInput) => inline(input, 'test');

const step = (name: string, table: string, writes: string[], projection: string) => ({ kind: 'batched' as const, name, table, writes, projection });
const find = (r: CheckReport, code: string): CheckFinding => {
  const f = r.findings.find((x) => x.code === code);
  assert.ok(f, `finding ${code} in ${r.findings.map((x) => x.code).join(', ')}`);
  return f;
};
const ids = (f: CheckFinding) => f.sample.map((x) => Number(x.id)).sort((a, b) => a - b);

/** The SQLSTATE the server gives when `sql` runs (null: it succeeds); always rolled back. */
async function serverSays(db: Db, sql: string): Promise<string | null> {
  await db.query('BEGIN');
  try {
    await db.exec(sql);
    return null;
  } catch (err) {
    return err instanceof DbError ? (err.server.sqlstate ?? 'unknown') : 'unknown';
  } finally {
    await db.query('ROLLBACK');
  }
}

/** Row by row, which rows the server refuses to write (rolled back each time): what a prediction must list. */
async function refusedRows(db: Db, table: string, set: string, ids: number[], state: string): Promise<number[]> {
  const out: number[] = [];
  for (const id of ids) if ((await serverSays(db, `UPDATE ${table} SET ${set} WHERE id = ${id}`)) === state) out.push(id);
  return out;
}

for (const kind of DB_KINDS) {
  describe(`derived constraint predictions on ${kind}`, () => {
    let shared: { db: Db; drop(): Promise<void> };
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      await shared.db.exec(SCHEMA);
    });
    after(() => shared.drop());

    test('foreign key from a written column: a value missing in the parent is listed, NULL passes, the server agrees row by row', async () => {
      const { db } = shared;
      const m = spec({
        id: 'owner',
        purpose: 'set owner from w_owner for the tests',
        tables: ['items', 'owners'],
        steps: [step('s', 'items', ['owner'], 'SELECT id, w_owner AS owner FROM items WHERE id BETWEEN $1 AND $2')],
      });
      const before = await checksums(db, TABLES);
      const r = await runChecks(db, m, { sample: ALL });
      assert.deepEqual(await checksums(db, TABLES), before, 'read-only');
      const f = find(r, 'FOREIGN_KEY:items_owner_fkey@s');
      assert.equal(f.kind, 'foreign-key');
      assert.equal(f.severity, 'error');
      assert.deepEqual(
        f.sample.map((x) => [x.id, x.owner]),
        [
          [2, 99],
          [4, 98],
        ],
        'rows 2 and 4 point at owners that do not exist; 3 becomes NULL, 1 exists',
      );
      assert.deepEqual(await refusedRows(db, 'items', 'owner = w_owner', [1, 2, 3, 4, 5, 6], '23503'), [2, 4]);
      assert.deepEqual(f.derived, {
        source: 'catalog',
        step: 's',
        table: 'items',
        constraint: 'items_owner_fkey',
        definition: 'FOREIGN KEY ("owner") REFERENCES "public"."owners" ("id") ON UPDATE NO ACTION ON DELETE NO ACTION',
      });
      assert.deepEqual(r.blocking, ['FOREIGN_KEY:items_owner_fkey@s']);
    });

    test('a foreign key into the table itself: the parent must exist (row 2 → 98 does not, row 4 → itself does)', async () => {
      const { db } = shared;
      const m = spec({
        id: 'parent',
        purpose: 'set parent from w_parent for the tests',
        tables: ['items'],
        steps: [step('s', 'items', ['parent'], 'SELECT id, w_parent AS parent FROM items WHERE id BETWEEN $1 AND $2')],
      });
      const r = await runChecks(db, m, { sample: ALL });
      assert.deepEqual(ids(find(r, 'FOREIGN_KEY:items_parent_fkey@s')), [2]);
      assert.deepEqual(await refusedRows(db, 'items', 'parent = w_parent', [1, 2, 3, 4, 5, 6], '23503'), [2]);
    });

    test('a foreign key into a written column (ON UPDATE NO ACTION): changing a value still referenced is listed', async () => {
      const { db } = shared;
      const m = spec({
        id: 'code',
        purpose: 'rename owner codes for the tests',
        tables: ['owners', 'refs'],
        steps: [step('s', 'owners', ['code'], 'SELECT id, want_code AS code FROM owners WHERE id BETWEEN $1 AND $2')],
      });
      const r = await runChecks(db, m, { sample: ALL });
      const f = find(r, 'REFERENCED:refs_owner_code_fkey@s');
      // owner 1 ('a') is referenced twice by refs; owner 2 ('b') by nothing; owner 3 becomes NULL, unreferenced
      assert.deepEqual(
        f.sample.map((x) => [x.id, x.code, x.becomes, Number(x.referencedBy)]),
        [[1, 'a', { code: 'a2' }, 2]],
      );
      assert.deepEqual(await refusedRows(db, 'owners', 'code = want_code', [1, 2, 3], '23503'), [1]);
      assert.deepEqual(r.blocking, ['REFERENCED:refs_owner_code_fkey@s']);
    });

    test('CHECK and NOT NULL: the constraint evaluated on the row as it will be; a declared not-null check stands for the derived one', async () => {
      const { db } = shared;
      const m = spec({
        id: 'lohi',
        purpose: 'set lo, hi and label for the tests',
        tables: ['items'],
        steps: [
          step('s', 'items', ['lo', 'hi', 'label'], 'SELECT id, w_lo AS lo, w_hi AS hi, w_label AS label FROM items WHERE id BETWEEN $1 AND $2 AND id <> 5'),
        ],
      });
      const r = await runChecks(db, m, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => f.code),
        ['CHECK:items_lo_hi@s', 'NOT_NULL:label@s'],
      );
      const check = find(r, 'CHECK:items_lo_hi@s');
      assert.deepEqual(
        check.sample.map((x) => [x.id, x.lo, x.hi]),
        [
          [2, 5, 4],
          [4, 9, 1],
        ],
        'lo > hi; NULL bounds pass (id 6), id 5 not written',
      );
      assert.deepEqual(await refusedRows(db, 'items', 'lo = w_lo, hi = w_hi', [1, 2, 3, 4, 6], '23514'), [2, 4]);
      assert.deepEqual(ids(find(r, 'NOT_NULL:label@s')), [2, 4]);
      assert.deepEqual(await refusedRows(db, 'items', 'label = w_label', [1, 2, 3, 4, 6], '23502'), [2, 4]);
      const declared = spec({
        ...m.spec,
        checks: [{ kind: 'not-null', code: 'LABEL_SET', table: 'items', column: 'label', step: 's', severity: 'warn' }],
      } as MigrationInput);
      const again = await runChecks(db, declared, { sample: ALL });
      assert.deepEqual(
        again.findings.map((f) => f.code),
        ['LABEL_SET', 'CHECK:items_lo_hi@s'],
      );
    });

    test('only rows whose values change count: a NOT VALID CHECK that an existing row breaks is reported only where the step writes that row', async () => {
      const { db } = shared;
      await db.exec(`CREATE TABLE scores (id int PRIMARY KEY, score int, w int);
        INSERT INTO scores VALUES (1, 500, 500), (2, 5, 600), (3, 500, 7), (4, 5, 6);
        ALTER TABLE scores ADD CONSTRAINT scores_small CHECK (score < 100) NOT VALID;`);
      const m = spec({
        id: 'scores',
        purpose: 'set score from w for the tests',
        tables: ['scores'],
        steps: [step('s', 'scores', ['score'], 'SELECT id, w AS score FROM scores WHERE id BETWEEN $1 AND $2')],
      });
      const r = await runChecks(db, m, { sample: ALL });
      // row 1 is returned with the value it has: the batches do not write it, the server never re-checks it
      assert.deepEqual(
        find(r, 'CHECK:scores_small@s').sample.map((x) => [x.id, x.score]),
        [[2, 600]],
      );
      assert.deepEqual(await refusedRows(db, 'scores', 'score = w', [2, 3, 4], '23514'), [2]);
    });

    test('domains: every check of a domain over a domain, on the written values', async () => {
      const { db } = shared;
      const m = spec({
        id: 'qty',
        purpose: 'set qty for the tests',
        tables: ['items'],
        steps: [step('s', 'items', ['qty'], 'SELECT id, w_qty AS qty FROM items WHERE id BETWEEN $1 AND $2')],
      });
      const r = await runChecks(db, m, { sample: ALL });
      assert.deepEqual(
        r.findings.map((f) => [f.code, f.kind, f.count]),
        [
          ['DOMAIN:qty.small_check@s', 'domain', 1],
          ['DOMAIN:qty.posint_check@s', 'domain', 1],
        ],
      );
      // 150 passes posint and fails small; 0 the other way round; NULL passes both
      assert.deepEqual(
        find(r, 'DOMAIN:qty.small_check@s').sample.map((x) => [x.id, x.qty]),
        [[3, 150]],
      );
      assert.deepEqual(
        find(r, 'DOMAIN:qty.posint_check@s').sample.map((x) => [x.id, x.qty]),
        [[2, 0]],
      );
      assert.deepEqual(await refusedRows(db, 'items', 'qty = w_qty', [1, 2, 3, 4, 5, 6], '23514'), [2, 3]);
    });

    test('exclusion: a changed row meets a live row as it is, or another changed row; the predicate and unchanged rows are respected', async () => {
      const { db } = shared;
      // row 1 keeps [1,5); 2 → [3,7) meets 1; 3 is not live; 4 → [42,48) and 5 → [41,43) meet each other;
      // 6 → [20,25) meets only row 3, which is not live
      const m = spec({
        id: 'during',
        purpose: 'set during for the tests',
        tables: ['items'],
        steps: [step('s', 'items', ['during'], 'SELECT id, w_during AS during FROM items WHERE id BETWEEN $1 AND $2')],
      });
      const r = await runChecks(db, m, { sample: ALL });
      const f = find(r, 'EXCLUSION:items_no_overlap@s');
      assert.equal(f.kind, 'exclusion');
      assert.deepEqual(
        f.sample.map((x) => [x.id, x.during, x.collidesWith, x.collidesWithChanged]),
        [
          [2, '[3,7)', 1, false],
          [4, '[42,48)', 5, true],
          [5, '[41,43)', 4, true],
        ],
      );
      assert.equal(f.derived?.constraint, 'items_no_overlap');
      assert.equal(await serverSays(db, 'UPDATE items SET during = w_during'), '23P01');
      assert.equal(await serverSays(db, 'UPDATE items SET during = w_during WHERE id NOT IN (2, 4)'), null, 'without rows 2 and 4 nothing conflicts');
    });

    test('apply refuses with exit 6 before any backup or write when a derived prediction has rows', async () => {
      const { db } = shared;
      const m = spec({
        id: 'owner-apply',
        purpose: 'set owner from w_owner, applied, for the tests',
        tables: ['items', 'owners'],
        steps: [step('s', 'items', ['owner'], 'SELECT id, w_owner AS owner FROM items WHERE id BETWEEN $1 AND $2')],
      });
      const before = await checksums(db, TABLES);
      const r = await safeApply(db, m, { batchSize: 2 });
      assert.equal(r.error?.code, 'BELAY_CHECKS');
      assert.equal(r.error?.exitCode, 6);
      assert.deepEqual(r.error?.details.blocking, ['FOREIGN_KEY:items_owner_fkey@s']);
      assert.deepEqual(await checksums(db, TABLES), before, 'nothing written');
      const n = async (sql: string) => Number((await db.query<{ n: number }>(sql)).rows[0]!.n);
      assert.equal(await n(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'belay_backup'`), 0, 'no backup copy');
      assert.equal(await n('SELECT count(*)::int AS n FROM belay.undo'), 0);
    });
  });
}
