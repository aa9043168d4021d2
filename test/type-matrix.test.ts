// Exact before-images (issue 15): a step that writes columns of every awkward type is undone byte for
// byte, by rollback and by the psql script, on both databases. The decision keeps the before-images in the
// columns' own types; a row's text form tells -0 from 0, 1.0 from 1.00 in jsonb, and infinity from a date.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { rollbackScript } from '../src/rollback/rollback-script.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { inline, withDb } from './helpers/fixture.ts';
import { NO_PSQL, runScript } from './helpers/tools.ts';

const SCHEMA = `
CREATE TYPE pair AS (x int, y text);
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE m (
  id int PRIMARY KEY, f8 float8, f4 real, n numeric, ts timestamptz, b bytea, ta text[], ia int[][],
  c pair, d positive, e mood, j jsonb, iv interval
);
INSERT INTO m VALUES
  (1, '-0', '-0', 123456789012345678901234567890.123, 'infinity', '\\x00ff', '{"a b",NULL,"c\\"d"}', '{{1,2},{3,4}}',
   ROW(1, 'x'), 1, 'sad', '{"a": 1.0, "b": [1.00, null]}', '1 year 2 mons 3 days 04:05:06.789'),
  (2, 'NaN', 'NaN', '0.000000000000000000000000000001', '-infinity', '', '{}', '{}', ROW(NULL, NULL), 2, 'ok', '1.00', '-1 day'),
  (3, 'Infinity', '-Infinity', 'NaN', '2024-02-29 23:59:59.999999+00', '\\x5c27', '{""}', '{{NULL}}', NULL, NULL, NULL, 'null', '0'),
  (4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  (5, 1e308, 1.17549435e-38, -0.0, '1970-01-01 00:00:00+00', '\\xdeadbeef', '{"é","☃"}', '{{-2147483648}}', ROW(-1, ''), 2147483647, 'happy',
   '{"nested": {"k": "v\\u00e9w\\n"}}', '178000000 years');
`;

/** Every row as its text form, which keeps what a comparison of values would not (-0, numeric scale, jsonb digits). */
const rows = async (db: Db) => (await db.query<{ r: string }>(`SELECT m::text AS r FROM m ORDER BY id`)).rows.map((x) => x.r);

const migration = inline({
  id: 'type-matrix',
  purpose: 'Overwrite a column of every awkward type, to prove the undo exact.',
  tables: ['m'],
  steps: [
    {
      kind: 'batched',
      name: 'overwrite',
      table: 'm',
      writes: ['f8', 'f4', 'n', 'ts', 'b', 'ta', 'ia', 'c', 'd', 'e', 'j', 'iv'],
      decide: `SELECT id, 0.5::float8 AS f8, 0.5::real AS f4, 7::numeric AS n, '2000-01-01'::timestamptz AS ts, '\\x01'::bytea AS b,
        '{z}'::text[] AS ta, '{{7}}'::int[][] AS ia, ROW(9, 'z')::pair AS c, 9::positive AS d, 'ok'::mood AS e, '{"z": 0}'::jsonb AS j,
        '1 second'::interval AS iv FROM m`,
    },
  ],
  options: { batchSize: 2 },
});

for (const kind of DB_KINDS) {
  describe(`exact before-images on ${kind}`, () => {
    test('rollback restores every type byte for byte: -0, NaN, ±Infinity, 30-digit numeric, infinity timestamps, bytea, arrays, composite, domain, enum, jsonb digits, interval, NULLs', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const before = await rows(db);
        const r = await safeApply(db, migration, { backup: false, adapt: false, batchSize: 2 });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.equal(r.steps[0]!.rowsChanged, 5);
        assert.notDeepEqual(await rows(db), before);
        const rb = await rollback(db, r.runId);
        assert.equal(rb.status, 'rolled_back');
        assert.deepEqual(await rows(db), before);
      });
    });

    test('the psql rollback script restores every type byte for byte', { skip: kind === 'postgres' && NO_PSQL }, async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(SCHEMA);
        const before = await rows(f.db);
        const r = await safeApply(f.db, migration, { backup: false, adapt: false, batchSize: 2 });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        await runScript(f, (await rollbackScript(f.db, r.runId)).text!);
        assert.deepEqual(await rows(f.db), before);
      });
    });
  });
}
