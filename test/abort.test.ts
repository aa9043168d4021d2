// Abort triggers on both databases: what fires, what the run ends as (paused, rolled back), what is
// recorded, and that the data is back to its pre-run checksum after an automatic rollback.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { checksumTable } from '../src/db/checksum.ts';
import { SpecError } from '../src/errors.ts';
import { abortController, abortStage } from '../src/steer/abort-triggers.ts';
import { apply } from '../src/execute/apply.ts';
import { rollback } from '../src/rollback/rollback.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { type LoadedMigration, validate } from '../src/spec/load.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import type { BatchController, Stage } from '../src/contract.ts';
import { inline, withDb } from './helpers/fixture.ts';
import { readSummary } from '../src/state/summary.ts';

/** apply with the spec's abort triggers, and the rollback the pipeline lends it. */
function withTriggers(m: LoadedMigration, ...more: Stage[]) {
  return { stages: [...more, abortStage(m.spec)], undo: (db: Db, runId: number) => rollback(db, runId) };
}

const loaded = (input: MigrationInput) => inline(input);

async function seed(db: Db, n = 1000): Promise<void> {
  await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v int, tag text);
    INSERT INTO t SELECT g, NULL, CASE WHEN g % 7 = 0 THEN 'odd' END FROM generate_series(1, ${n}) g;`);
}

const base = (extra: Partial<MigrationInput> = {}): MigrationInput => ({
  id: 'abort-case',
  purpose: 'sets v = id * 2 on every row of t, for the abort trigger tests',
  tables: ['t'],
  steps: [
    { kind: 'batched', name: 'set-v', table: 't', writes: ['v'], projection: 'SELECT id, id * 2 AS v FROM t WHERE id BETWEEN $1 AND $2', batchSize: 100 },
  ],
  ...extra,
});

/** The run's error, typed summary and events as recorded (the error as BelayError.toJSON() stores it). */
async function runRecord(db: Db, runId: number) {
  type Trigger = { when: string; index: number; batchNo?: number; value?: number };
  const r = await db.query<{ status: string; error: { message: string; details: { trigger: Trigger } } | null }>(
    `SELECT status, error FROM belay.runs WHERE id = $1`,
    [runId],
  );
  const ev = await db.query<{ type: string; data: Record<string, unknown> }>(`SELECT type, data FROM belay.events WHERE run_id = $1 ORDER BY id`, [runId]);
  return { ...r.rows[0]!, summary: await readSummary(db, runId), events: ev.rows };
}

for (const kind of DB_KINDS) {
  describe(`abort triggers on ${kind}`, () => {
    test('a failed in-batch verification rolls every committed batch back by default', async () => {
      await withDb(kind, async (f) => {
        await seed(f.db);
        const before = await checksumTable(f.db, 't');
        const m = loaded(base({ steps: [{ ...(base().steps[0] as object), verify: 'SELECT id FROM written WHERE id > 450' } as never] }));
        const r = await apply(f.db, m, withTriggers(m));
        assert.equal(r.status, 'rolled_back', String(r.error?.message));
        assert.equal(r.error?.code, 'BELAY_ABORTED');
        assert.deepEqual(await checksumTable(f.db, 't'), before, 'the four committed batches were undone');
        const rec = await runRecord(f.db, r.runId);
        assert.equal(rec.status, 'rolled_back');
        assert.equal(rec.error?.details.trigger.when, 'verification-failed');
        assert.equal(rec.error?.details.trigger.index, -1, 'the built-in default fired');
        assert.equal(rec.summary.abort?.decision, 'rollback');
        assert.equal(rec.summary.rollback?.restored, 400);
        assert.ok(rec.events.some((e) => e.type === 'abort-triggered' && e.data.when === 'verification-failed'));
      });
    });

    test('verification-failed with action pause leaves the run paused and resumable', async () => {
      await withDb(kind, async (f) => {
        await seed(f.db);
        const m = loaded(
          base({
            steps: [{ ...(base().steps[0] as object), verify: 'SELECT id FROM written WHERE id > 450' } as never],
            abort: [{ when: 'verification-failed', action: 'pause' }],
          }),
        );
        const r = await apply(f.db, m, withTriggers(m));
        assert.equal(r.status, 'paused');
        const n = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM t WHERE v IS NOT NULL`);
        assert.equal(n.rows[0]!.n, 400, 'committed batches stay');
        const again = await apply(f.db, m, withTriggers(m));
        assert.equal(again.resumed, true, 'a paused run resumes');
        assert.equal(again.runId, r.runId);
      });
    });

    test('batch-slower-than-ms pauses after the batch; the run resumes and completes', async () => {
      await withDb(kind, async (f) => {
        await seed(f.db);
        const m = loaded(base({ abort: [{ when: 'batch-slower-than-ms', threshold: 0, action: 'pause' }] }));
        const r = await apply(f.db, m, withTriggers(m));
        assert.equal(r.status, 'paused');
        assert.equal(r.steps[0]!.rowsChanged, 100, 'exactly one batch ran');
        const rec = await runRecord(f.db, r.runId);
        assert.equal(rec.status, 'paused');
        assert.equal(rec.error?.details.trigger.when, 'batch-slower-than-ms');
        assert.match(String(rec.error?.message), /batch 1 of step "set-v" took \d+ ms, over the threshold of 0 ms/);
        const done = await apply(f.db, m); // no triggers this time
        assert.equal(done.status, 'completed');
        assert.equal(done.resumed, true);
        const wrong = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM t WHERE v IS DISTINCT FROM id * 2`);
        assert.equal(wrong.rows[0]!.n, 0);
      });
    });

    test('skipped-over counts the rows of its SQL over the run and rolls back past the threshold', async () => {
      await withDb(kind, async (f) => {
        await seed(f.db);
        const before = await checksumTable(f.db, 't');
        // 14 rows per 100 carry tag 'odd' (multiples of 7): 14 + 14 + 15 = 43 > 40 after batch 3
        const m = loaded(base({ abort: [{ when: 'skipped-over', threshold: 40, sql: `SELECT id FROM t WHERE id BETWEEN $1 AND $2 AND tag = 'odd'` }] }));
        const r = await apply(f.db, m, withTriggers(m));
        assert.equal(r.status, 'rolled_back');
        const rec = await runRecord(f.db, r.runId);
        assert.equal(rec.error?.details.trigger.when, 'skipped-over');
        assert.equal(rec.error?.details.trigger.batchNo, 3);
        assert.equal(rec.error?.details.trigger.value, 42);
        assert.deepEqual(await checksumTable(f.db, 't'), before);
      });
    });

    test('conflicts-over without SQL counts written rows that others changed again', async () => {
      await withDb(kind, async (f) => {
        await seed(f.db);
        // stands for another session: after batch 2 commits, it edits 3 rows the migration just wrote
        const meddler: BatchController = {
          async afterBatch(ctx, info) {
            if (info.batchNo === 2) await ctx.db.query(`UPDATE t SET v = -1 WHERE id IN (101, 150, 199)`);
            return 'continue';
          },
        };
        const m = loaded(base({ abort: [{ when: 'conflicts-over', threshold: 2, action: 'pause' }] }));
        const r = await apply(f.db, m, withTriggers(m, { name: 'meddler', batches: meddler }));
        assert.equal(r.status, 'paused');
        const rec = await runRecord(f.db, r.runId);
        assert.equal(rec.summary.abort?.when, 'conflicts-over');
        assert.equal(rec.summary.abort?.value, 3);
        assert.equal(rec.summary.abort?.batchNo, 2);
      });
    });

    test('a trigger that cannot be evaluated is refused before anything runs', async () => {
      assert.throws(() => abortController(validate(base({ abort: [{ when: 'skipped-over', threshold: 1 }] }))), SpecError);
      assert.throws(() => abortController(validate(base({ abort: [{ when: 'batch-slower-than-ms' }] }))), SpecError);
    });
  });
}
