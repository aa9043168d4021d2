// Every number and plan field is validated on load, with one set of zod schemas (src/spec/numbers.ts) for
// the command line and the plan file, and refused before anything is written (exit 2).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type Db, openDb } from '../src/db/connection.ts';
import { EXIT, SpecError, UsageError } from '../src/errors.ts';
import { readPlanFile, writePlanFile } from '../src/plan/plan.ts';
import { plan, safeApply } from '../src/run/pipeline.ts';
import { MAX_BATCH_SIZE } from '../src/spec/define.ts';
import { loadMigration, validate } from '../src/spec/load.ts';
import { NUMBERS, parseNumber } from '../src/spec/numbers.ts';
import { belay } from './helpers/capture.ts';
import { checksums } from './helpers/flagship.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'belay-input-'));

const SCHEMA = `CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
CREATE TABLE other (id int PRIMARY KEY);
INSERT INTO work SELECT g, g, NULL FROM generate_series(1, 300) g;
INSERT INTO other SELECT g FROM generate_series(1, 5) g;`;

async function workMigration(dir: string) {
  const file = path.join(dir, 'migration.ts');
  writeFileSync(
    file,
    `export default {
    id: 'fill-out', purpose: 'Fill work.out from work.w (input validation tests).', tables: ['work', 'other'],
    steps: [{ kind: 'batched', name: 'fill', table: 'work', writes: ['out'], projection: 'SELECT id, w * 2 AS out FROM work WHERE id BETWEEN $1 AND $2' }],
  };`,
  );
  return loadMigration(file);
}

async function runsOf(db: Db): Promise<number> {
  const r = await db.query<{ ok: boolean }>(`SELECT to_regclass('belay.runs') IS NOT NULL AS ok`);
  if (!r.rows[0]!.ok) return 0;
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.runs`)).rows[0]!.n;
}

test('regression (numbers): 1e12, 0x10, " 7 ", "", -5, 0, 1.5 are not numbers of a flag; the schema gives one message', () => {
  for (const text of ['1e12', '0x10', ' 7 ', '', '-5', '+7', '1_000', '1.5', 'Infinity', 'NaN']) {
    assert.throws(
      () => parseNumber('--batch-size', NUMBERS.batchSize, text),
      (e: unknown) => e instanceof UsageError && e.exitCode === EXIT.usage && e.message.includes(`"${text}"`),
      text,
    );
  }
  assert.throws(() => parseNumber('--batch-size', NUMBERS.batchSize, '0'), /--batch-size "0" must be at least 1/);
  assert.throws(() => parseNumber('--batch-size', NUMBERS.batchSize, String(MAX_BATCH_SIZE + 1)), new RegExp(`must be at most ${MAX_BATCH_SIZE}`));
  assert.throws(() => parseNumber('--target-ms', NUMBERS.targetBatchMs, '1000000000'), /must be at most 60000/);
  assert.throws(() => parseNumber('run id', NUMBERS.id, '1e3'), /run id "1e3" must be a whole number written in decimal digits/);
  assert.equal(parseNumber('--batch-size', NUMBERS.batchSize, '007'), 7);
  assert.equal(parseNumber('--max-drift', NUMBERS.percent, '12.5'), 12.5);
});

test('regression (numbers): the command line refuses --batch-size 1e12 / 0x10 / " 7 ", run id 1e3, --target-ms 0 with exit 2 and no database change', async () => {
  await withDb('postgres', async (f) => {
    await f.db.exec(SCHEMA);
    const dir = tmp();
    await workMigration(dir);
    const before = await checksums(f.db, ['work', 'other']);
    const cases: Array<[string[], RegExp]> = [
      [['apply', dir, '--batch-size', '1e12'], /--batch-size "1e12" must be a whole number/],
      [['apply', dir, '--batch-size', '0x10'], /--batch-size "0x10"/],
      [['apply', dir, '--batch-size', ' 7 '], /--batch-size " 7 "/],
      [['apply', dir, '--batch-size', '1000000000000'], new RegExp(`must be at most ${MAX_BATCH_SIZE}`)],
      [['apply', dir, '--target-ms', '0'], /--target-ms "0" must be at least 1/],
      [['plan', dir, '--target-ms', '1000000000'], /must be at most 60000/],
      [['report', '1e3'], /run id "1e3"/],
      [['rollback', '0x1'], /run id "0x1"/],
      [['status', '--limit', '-1'], /--limit "-1"/],
    ];
    for (const [args, message] of cases) {
      const r = await belay([...args, '--db', f.url]);
      assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
    }
    assert.deepEqual(await checksums(f.db, ['work', 'other']), before);
    assert.equal((await f.db.query(`SELECT 1 FROM pg_namespace WHERE nspname = 'belay'`)).rowCount, 0, 'belay did not even create its schema');
  });
});

test('regression (batch size cap): a fixed size above the cap is refused from the library and the spec, as from the command line', async () => {
  assert.throws(
    () =>
      validate({
        id: 'x',
        purpose: 'a purpose of some length',
        tables: ['t'],
        steps: [{ kind: 'batched', name: 's', table: 't', writes: ['v'], projection: 'SELECT 1', batchSize: MAX_BATCH_SIZE + 1 }],
      }),
    SpecError,
  );
  assert.throws(
    () =>
      validate({
        id: 'x',
        purpose: 'a purpose of some length',
        tables: ['t'],
        options: { batchSize: 1e12 },
        steps: [{ kind: 'batched', name: 's', table: 't', writes: ['v'], projection: 'SELECT 1' }],
      }),
    SpecError,
  );
  await withDb('pglite', async (f) => {
    await f.db.exec(SCHEMA);
    const m = await workMigration(tmp());
    for (const opts of [{ batchSize: 1e12 }, { batchSize: 0 }, { batchSize: 2.5 }, { targetBatchMs: 0 }, { targetBatchMs: 1e9 }, { targetBatchMs: -1 }]) {
      await assert.rejects(safeApply(f.db, m, opts), (e: unknown) => e instanceof UsageError, JSON.stringify(opts));
    }
    assert.equal(await runsOf(f.db), 0, 'refused before a run record');
  });
});

const EDITS: Array<[string, (p: Record<string, unknown>) => void, RegExp]> = [
  ['batchSize 0', (p) => (p.batchSize = 0), /batchSize 0: must be at least 1/],
  ['batchSize -5', (p) => (p.batchSize = -5), /batchSize -5: must be at least 1/],
  ['batchSize "abc"', (p) => (p.batchSize = 'abc'), /batchSize "abc": must be a whole number/],
  ['batchSize 1e12', (p) => (p.batchSize = 1e12), new RegExp(`must be at most ${MAX_BATCH_SIZE}`)],
  ['batchSize 2.5', (p) => (p.batchSize = 2.5), /batchSize 2.5: must be a whole number/],
  ['mode "weird"', (p) => (p.mode = 'weird'), /mode "weird": must be "single" or "batched"/],
  ['targetBatchMs 0', (p) => (p.targetBatchMs = 0), /targetBatchMs 0: must be at least 1/],
  ['targetBatchMs -1', (p) => (p.targetBatchMs = -1), /targetBatchMs -1: must be at least 1/],
  ['targetBatchMs 1e9', (p) => (p.targetBatchMs = 1e9), /targetBatchMs 1000000000: must be at most 60000/],
  ['tables []', (p) => (p.tables = []), /tables \[\]: must list every table/],
  ['a table left out', (p) => (p.tables = (p.tables as unknown[]).slice(0, 1)), /the plan lists \["work"\], the migration touches \["work","other"\]/],
  ['a fingerprint edited', (p) => ((p.tables as Array<Record<string, unknown>>)[0]!.fingerprint = 'x'), /tables\.0\.fingerprint "x": must be a sha256/],
];

for (const kind of DB_KINDS) {
  describe(`plan file on ${kind}`, () => {
    test('regression (plan file): a hand-edited plan.json is refused with exit 2 (BELAY_PLAN_FILE) before anything is written', async () => {
      await withDb(
        kind,
        async (f) => {
          const dir = tmp();
          await f.db.exec(SCHEMA);
          const m = await workMigration(dir);
          const p = await plan(f.db, m, { exact: true, samples: 1 });
          const file = path.join(dir, 'plan.json');
          writePlanFile(file, p);
          const good = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
          assert.equal(readPlanFile(file).batchSize, p.batchSize, 'the plan as made reads back');
          const before = await checksums(f.db, ['work', 'other']);
          if (kind === 'pglite') await f.db.close();
          for (const [what, edit, message] of EDITS) {
            const bad = structuredClone(good);
            edit(bad);
            const edited = path.join(dir, `edited.json`);
            writeFileSync(edited, JSON.stringify(bad));
            const r = await belay(['apply', edited, '--db', f.url]);
            assert.equal(r.code, EXIT.usage, `${what}: ${r.stderr}`);
            assert.match(r.stderr, /BELAY_PLAN_FILE/, what);
            assert.match(r.stderr, message, what);
          }
          const db = kind === 'pglite' ? await openDb(f.url) : f.db;
          try {
            assert.deepEqual(await checksums(db, ['work', 'other']), before, 'nothing written');
            assert.equal(await runsOf(db), 0, 'no run recorded');
          } finally {
            if (kind === 'pglite') await db.close();
          }
        },
        { persistent: true },
      );
    });
  });
}
