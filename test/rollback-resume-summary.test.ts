// After a rollback that stopped part-way and was run again, the run's summary counts the rows every
// invocation restored, not only the last one's (the totals come from belay.batches, not from one call).
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { rollback } from '../src/rollback/rollback.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { loadMigration } from '../src/spec/load.ts';
import { readSummary } from '../src/state/summary.ts';
import { withDb, withSession } from './helpers/fixture.ts';

test("regression (rollback summary): after a resumed rollback the summary counts all invocations' rows", async () => {
  await withDb('postgres', (f) =>
    withSession(
      f.url,
      async (holder) => {
        await f.db.exec(`CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
      INSERT INTO work SELECT g, g, NULL FROM generate_series(1, 300) g;`);
        const dir = mkdtempSync(path.join(tmpdir(), 'belay-rbsum-'));
        writeFileSync(
          path.join(dir, 'migration.ts'),
          `export default ${JSON.stringify({
            id: 'fill-out',
            purpose: 'Fill work.out from work.w (rollback summary test).',
            tables: ['work'],
            steps: [
              { kind: 'batched', name: 'fill', table: 'work', writes: ['out'], projection: 'SELECT id, w * 2 AS out FROM work WHERE id BETWEEN $1 AND $2' },
            ],
            options: { batchSize: 100, lockTimeoutMs: 50 },
          })};`,
        );
        const r = await safeApply(f.db, await loadMigration(dir), { backup: false, adapt: false, batchSize: 100 });
        assert.equal(r.status, 'completed');
        // a row of the first batch (restored last) is held: the rollback restores batches 3 and 2, then stops
        await holder.query('BEGIN');
        await holder.query('SELECT * FROM work WHERE id = 50 FOR UPDATE');
        await assert.rejects(rollback(f.db, r.runId, { maxRetries: 0 }));
        const part = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM work WHERE out IS NULL`);
        assert.equal(part.rows[0]!.n, 200, 'two batches were restored before it stopped');
        await holder.query('ROLLBACK');
        const rest = await rollback(f.db, r.runId, { maxRetries: 0 });
        assert.equal(rest.status, 'rolled_back');
        assert.equal((await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM work WHERE out IS NULL`)).rows[0]!.n, 300);
        const summary = await readSummary(f.db, r.runId);
        assert.equal(summary.rollback?.restored, 300, 'the summary counts the rows of both invocations');
        assert.equal(rest.restored, 300, 'and so does what rollback returns (the CLI prints it)');
      },
      { applicationName: 'app-holding-a-row' },
    ),
  );
});
