// Mistakes in a migration's SQL found by belay check before anything runs (issue 15, item 5), and keys
// that cannot tell rows apart (item 4): a typo, an alias that does not match `writes`, a missing key
// column, a type the column does not take, a generated column, a broken verification; each reported
// with its step, field, line and column and what to do, never in terms of belay's own SQL (BELAY_CHECK_SQL,
// exit 3), and apply refuses before any backup or write.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { BelayError } from '../src/errors.ts';
import { safeApply } from '../src/run/pipeline.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { checksumOf, type LoadedMigration, validate } from '../src/spec/load.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { checksums } from './helpers/flagship.ts';

const SCHEMA = `
CREATE TABLE t (id int PRIMARY KEY, v int, w int, label text, total int GENERATED ALWAYS AS (w * 2) STORED);
CREATE TABLE nokey (a int, b int);
CREATE TABLE uk (code text NOT NULL, maybe text UNIQUE, plain text NOT NULL, v int);
CREATE UNIQUE INDEX uk_code ON uk (code);
CREATE TABLE pairs (a int, b text, v int, PRIMARY KEY (a, b));
CREATE TABLE pairs_id (a int, b text, id bigint NOT NULL UNIQUE, v int, PRIMARY KEY (a, b));
INSERT INTO t (id, v, w, label) SELECT g, NULL, g, 'n' || g FROM generate_series(1, 20) g;
INSERT INTO nokey VALUES (1, 1);
INSERT INTO uk VALUES ('a', 'x', 'p', 1), ('b', NULL, 'p', 2);
`;

function spec(input: Partial<MigrationInput> & { steps: MigrationInput['steps'] }): LoadedMigration {
  const s = validate({ id: 'proj', purpose: 'projection mistakes for the tests', tables: ['t', 'nokey', 'uk', 'pairs', 'pairs_id'], ...input }, 'test');
  return { spec: s, file: 'test', params: {}, checksum: checksumOf(s, {}) };
}
const step = (projection: string, extra: Record<string, unknown> = {}) => ({
  kind: 'batched' as const,
  name: 's',
  table: 't',
  writes: ['v'],
  projection,
  ...extra,
});

async function refused(db: Db, m: LoadedMigration): Promise<BelayError> {
  const err = await runChecks(db, m).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof BelayError, `refused with a BelayError, got ${String(err)}`);
  return err;
}

/** The problem is named in the user's terms: belay's own aliases (p, belay_*) never appear. */
function inUserTerms(message: string): void {
  assert.doesNotMatch(message, /\bp\.|"p"|belay_/, message);
}

for (const kind of DB_KINDS) {
  describe(`projection mistakes and keys on ${kind}`, () => {
    let shared: { db: Db; drop(): Promise<void> };
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      await shared.db.exec(SCHEMA);
    });
    after(() => shared.drop());

    test("regression: an alias that does not match writes passed belay check and failed in apply naming belay's alias p", async () => {
      const { db } = shared;
      const err = await refused(db, spec({ steps: [step('SELECT id,\n       w * 2 AS vv\n  FROM t WHERE id BETWEEN $1 AND $2')] }));
      assert.equal(err.code, 'BELAY_CHECK_SQL');
      assert.equal(err.exitCode, 3);
      assert.equal(err.details.field, 'steps.0.projection (s)');
      assert.match(err.message, /steps\.0\.projection \(s\): returns no column named "v", which the step writes \(writes: "v"\); it returns "vv"/);
      assert.match(err.message, /at line 2, column 8:\n\s+w \* 2 AS vv\n\s+\^/);
      assert.match(err.message, /fix: Name the column exactly as the table does: … AS "v"/);
      inUserTerms(err.message);
    });

    test('an unquoted alias folded to lower case is named as such', async () => {
      const { db } = shared;
      await db.exec('ALTER TABLE t ADD COLUMN "userId" int');
      try {
        const err = await refused(db, spec({ steps: [step('SELECT id, w AS userId FROM t WHERE id BETWEEN $1 AND $2', { writes: ['userId'] })] }));
        assert.match(err.message, /returns no column named "userId".*it returns "userid"/);
        assert.match(err.message, /a name without double quotes is folded to lower case/);
        inUserTerms(err.message);
      } finally {
        await db.exec('ALTER TABLE t DROP COLUMN "userId"');
      }
    });

    test('a typo inside the projection, a missing key, a type the column does not take, a generated column: each with its place', async () => {
      const { db } = shared;
      let err = await refused(db, spec({ steps: [step('SELECT id, w * 2 AS v\n  FROM t WHERE idd BETWEEN $1 AND $2')] }));
      assert.match(err.message, /steps\.0\.projection \(s\): column "idd" does not exist/);
      assert.match(err.message, /at line 2, column 16:\n\s+FROM t WHERE idd/);
      inUserTerms(err.message);
      err = await refused(db, spec({ steps: [step('SELECT w * 2 AS v FROM t WHERE id BETWEEN $1 AND $2')] }));
      assert.match(err.message, /returns no column named "id", the key of step "s" \(its columns: "v"\)/);
      err = await refused(db, spec({ steps: [step('SELECT id,\n  label AS v FROM t WHERE id BETWEEN $1 AND $2')] }));
      assert.match(err.message, /returns "v" as text, which cannot be written into "t"\."v" \(integer\)/);
      assert.match(err.message, /at line 2, column 3/);
      assert.match(err.message, /Cast it in the projection \(… ::integer AS "v"\)/);
      inUserTerms(err.message);
      err = await refused(db, spec({ steps: [step('SELECT id::text AS id, w AS v FROM t WHERE id BETWEEN $1 AND $2')] }));
      assert.match(err.message, /returns its key "id" as text, which does not compare with "t"\."id" \(integer\)/);
      err = await refused(db, spec({ steps: [step('SELECT id, w AS total FROM t WHERE id BETWEEN $1 AND $2', { writes: ['total'] })] }));
      assert.match(err.message, /"total" is a generated column/);
      inUserTerms(err.message);
    });

    test('the in-batch verification and the post-run verifications are planned too; every problem of the migration is listed at once', async () => {
      const { db } = shared;
      const m = spec({
        steps: [
          step('SELECT id, w AS v FROM t WHERE id BETWEEN $1 AND $2', { verify: 'SELECT w.id FROM written w\n WHERE w.nosuch IS NULL' }),
          { kind: 'batched', name: 's2', table: 't', writes: ['w'], projection: 'SELECT id, v AS ww FROM t WHERE id BETWEEN $1 AND $2' },
        ],
        verify: [{ name: 'after', sql: 'SELECT id FROM t WHERE gone > 0' }],
      });
      const before = await checksums(db, ['t']);
      const err = await refused(db, m);
      const problems = err.details.problems as Array<{ field: string; step: string | null }>;
      assert.deepEqual(
        problems.map((p) => p.field),
        ['steps.0.verify (s)', 'steps.1.projection (s2)', 'verify.0.sql (after)'],
      );
      assert.match(err.message, /has 3 problems/);
      assert.match(err.message, /steps\.0\.verify \(s\): column w\.nosuch does not exist[^\n]*\n\s+at line 2, column 8/);
      assert.deepEqual(await checksums(db, ['t']), before, 'nothing changed');
      // a post-run verification that names a column a plain-SQL step creates is not a mistake
      const later = spec({
        steps: [
          { kind: 'sql', name: 'add', up: 'ALTER TABLE t ADD COLUMN gone int', down: 'ALTER TABLE t DROP COLUMN gone' },
          step('SELECT id, w AS v FROM t WHERE id BETWEEN $1 AND $2'),
        ],
        verify: [{ name: 'after', sql: 'SELECT id FROM t WHERE gone > 0' }],
      });
      assert.equal((await runChecks(db, later)).ok, true);
    });

    test('apply refuses a projection mistake with exit 3 before any backup or write', async () => {
      const { db } = shared;
      const before = await checksums(db, ['t']);
      const r = await safeApply(db, spec({ id: 'proj-apply', steps: [step('SELECT id, w * 2 AS vv FROM t WHERE id BETWEEN $1 AND $2')] }), {
        batchSize: 5,
      }).catch((e: unknown) => ({ error: e as BelayError }));
      assert.equal(r.error?.code, 'BELAY_CHECK_SQL');
      assert.equal(r.error?.exitCode, 3);
      assert.deepEqual(await checksums(db, ['t']), before);
      const n = async (sql: string) => Number((await db.query<{ n: number }>(sql)).rows[0]!.n);
      assert.equal(await n(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'belay_backup'`), 0, 'no backup copy');
    });

    test('keys: a table with no primary key, a declared key without a unique index, a nullable unique key are refused (BELAY_KEY, exit 3); a unique NOT NULL key is accepted', async () => {
      const { db } = shared;
      const keyStep = (table: string, key: string | undefined) => ({
        kind: 'batched' as const,
        name: 'k',
        table,
        ...(key ? { key } : {}),
        writes: ['v'],
        projection: `SELECT ${key ?? 'a'}, 1 AS v FROM ${table} WHERE ${key ?? 'a'} BETWEEN $1 AND $2`,
      });
      const noPk = await refused(
        db,
        spec({ steps: [{ kind: 'batched', name: 'k', table: 'nokey', writes: ['b'], projection: 'SELECT a, b FROM nokey WHERE a BETWEEN $1 AND $2' }] }),
      );
      assert.deepEqual([noPk.code, noPk.exitCode, noPk.details.field], ['BELAY_KEY', 3, 'steps.0.key']);
      assert.match(noPk.message, /table "nokey" has no primary key/);
      assert.match(noPk.fix!, /Add a primary key to "nokey"/);
      const candidates = await refused(db, spec({ steps: [keyStep('uk', undefined)] }));
      assert.match(candidates.fix!, /Name one of its unique NOT NULL columns with key: in step "k" \("code"\)/);
      const plain = await refused(db, spec({ steps: [keyStep('uk', 'plain')] }));
      assert.equal(plain.code, 'BELAY_KEY');
      assert.match(plain.message, /key "plain" of step "k" does not tell the rows of "uk" apart: no unique index covers exactly this column/);
      const maybe = await refused(db, spec({ steps: [keyStep('uk', 'maybe')] }));
      assert.match(maybe.message, /key "maybe" .*: it is not NOT NULL/);
      const ok = await runChecks(db, spec({ steps: [keyStep('uk', 'code')] }));
      assert.equal(ok.ok, true);
    });

    test('keys: a composite primary key with a projection per key range is refused at check (BELAY_KEY, exit 3) with what would do; with decide: it is taken', async () => {
      const { db } = shared;
      const pairStep = (table: string, key?: string) => ({
        kind: 'batched' as const,
        name: 'k',
        table,
        ...(key ? { key } : {}),
        writes: ['v'],
        projection: `SELECT ${key ?? 'a'}, 1 AS v FROM ${table} WHERE ${key ?? 'a'} BETWEEN $1 AND $2`,
      });
      const bare = await refused(db, spec({ steps: [pairStep('pairs')] }));
      assert.deepEqual([bare.code, bare.exitCode, bare.details.field], ['BELAY_KEY', 3, 'steps.0.key']);
      assert.match(bare.message, /table "pairs" has a composite primary key \("a", "b"\), and step "k" has a projection per key range/);
      assert.match(bare.fix!, /Write the rule as decide:/);
      assert.doesNotMatch(bare.fix!, /key:/);
      const withId = await refused(db, spec({ steps: [pairStep('pairs_id')] }));
      assert.match(withId.fix!, /or name one of its unique NOT NULL columns with key: in step "k" \("id"\)/);
      assert.equal((await runChecks(db, spec({ steps: [pairStep('pairs_id', 'id')] }))).ok, true);
      // the same rule over the whole table walks the composite key itself
      const { projection: _, ...whole } = pairStep('pairs');
      assert.equal((await runChecks(db, spec({ steps: [{ ...whole, decide: 'SELECT a, b, 1 AS v FROM pairs' }] }))).ok, true);
    });
  });
}
