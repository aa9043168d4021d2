// A batched step's wholeTableProjection, on both databases: the whole-table predictions run it, and a dry
// run proves it writes what the batches write (same rows, same values) or fails naming the difference.
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { expectedAfter } from '../examples/event-type-owner/reference.ts';
import { runChecks } from '../src/checks/run-checks.ts';
import { dryRun } from '../src/run/dry-run.ts';
import { loadMigration } from '../src/spec/load.ts';
import { checksums, flagship } from './helpers/flagship.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';

function specFile(body: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'belay-whole-')), 'migration.ts');
  writeFileSync(file, body);
  return file;
}

// item.code gets 'c-' || id; the range projection is right, the whole-table forms below are not always
const ITEMS = `CREATE TABLE item (id int PRIMARY KEY, code text, qty int NOT NULL);
CREATE UNIQUE INDEX item_code_key ON item (code);
INSERT INTO item SELECT g, NULL, g % 7 FROM generate_series(1, 300) g;`;
const itemSpec = (whole: string) => `export default {
  id: 'item-code', purpose: 'Give every item a code (test of wholeTableProjection).',
  tables: ['item'],
  checks: [{ kind: 'unique-after', code: 'UNIQUE_CODE', step: 'code', index: 'item_code_key' }],
  steps: [{ kind: 'batched', name: 'code', table: 'item', writes: ['code'],
    projection: "SELECT id, 'c-' || id AS code FROM item WHERE id BETWEEN $1 AND $2",
    wholeTableProjection: ${JSON.stringify(whole)} }],
  options: { batchSize: 40 },
};`;

for (const kind of DB_KINDS) {
  describe(`wholeTableProjection on ${kind}`, () => {
    test('flagship: the whole-table form writes exactly what the batches write, under both policies', async () => {
      const f = await freshDb(kind);
      try {
        await generate(f.db, { rows: 700, seed: 11 });
        const before = await checksums(f.db);
        for (const ambiguous of ['skip', 'lowest'] as const) {
          const m = await flagship({ ambiguous });
          const expected = await expectedAfter(f.db, { ambiguous });
          const r = await dryRun(f.db, m, { batchSize: 53 });
          const w = r.steps[0]!.wholeTable;
          assert.ok(w, 'the dry run compared the two forms');
          assert.equal(w.agrees, true, JSON.stringify(w));
          assert.equal(w.wholeTable.rows, expected.changed.length, `${ambiguous}: rows the reference says change`);
          assert.ok(r.steps[0]!.batches.length > 5, 'several batches, so twins fall in different batches');
          assert.equal(r.ok, true);
        }
        assert.deepEqual(await checksums(f.db), before, 'the dry runs changed nothing');
      } finally {
        await f.drop();
      }
    });

    test('a whole-table form that differs: the check predicts from it, the dry run fails naming the difference', async () => {
      const f = await freshDb(kind);
      try {
        await f.db.exec(ITEMS);
        const right = await loadMigration(specFile(itemSpec("SELECT id, 'c-' || id AS code FROM item")));
        const ok = await dryRun(f.db, right);
        assert.equal(ok.steps[0]!.wholeTable?.agrees, true);
        assert.equal(ok.steps[0]!.wholeTable?.wholeTable.rows, 300);
        assert.equal(ok.ok, true);

        // gives items 7 and 8 the same code: only the whole-table form says so, and the prediction sees it
        const colliding = await loadMigration(specFile(itemSpec("SELECT id, 'c-' || CASE WHEN id = 8 THEN 7 ELSE id END AS code FROM item")));
        const checks = await runChecks(f.db, colliding);
        const u = checks.findings.find((x) => x.code === 'UNIQUE_CODE')!;
        assert.equal(u.count, 2, 'items 7 and 8 collide');
        assert.deepEqual(u.sample.map((x) => [x.id, x.collidesWith]), [[7, 8], [8, 7]]);
        const bad = await dryRun(f.db, colliding);
        assert.equal(bad.ok, false);
        assert.equal(bad.steps[0]!.wholeTable?.agrees, false);
        assert.equal(bad.steps[0]!.wholeTable?.wholeTable.rows, 300, 'same count, different values');

        // one row fewer
        const fewer = await dryRun(f.db, await loadMigration(specFile(itemSpec("SELECT id, 'c-' || id AS code FROM item WHERE id <> 150"))));
        assert.equal(fewer.ok, false);
        assert.deepEqual([fewer.steps[0]!.wholeTable?.wholeTable.rows, fewer.steps[0]!.wholeTable?.batches.rows], [299, 300]);
        const left = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM item WHERE code IS NOT NULL`);
        assert.equal(left.rows[0]!.n, 0, 'dry runs leave the table as it was');
      } finally {
        await f.drop();
      }
    });
  });
}
