// Post-run verification on both databases: passes after the flagship apply, catches a planted violation
// (exit 7, recorded), catches a change to a column the run does not write, tolerates a growing table.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { checkResults, preflight } from '../src/checks/preflight.ts';
import { main } from '../src/cli/main.ts';
import { BelayError, EXIT, VerificationError } from '../src/errors.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { apply } from '../src/execute/apply.ts';
import { recount } from '../src/run/sources.ts';
import { cleanupRun, verify as verifyRun } from '../src/run/pipeline.ts';
import { getRun } from '../src/state/runs.ts';
import { getRounds } from '../src/verify/record.ts';
import { assertVerified, baselineStage, verificationStage } from '../src/verify/verify.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { checksums, flagship } from './helpers/flagship.ts';
import { backupStage, listBackups } from '../src/backup/backup.ts';
import { restoreBackup } from '../src/backup/restore.ts';
import { archiveBackups } from '../src/backup/archive.ts';
import type { Stage } from '../src/contract.ts';
import { withDb } from './helpers/fixture.ts';

/** The baseline before the first write and the verification after the last, as the pipeline runs them. */
const verification = (...between: Stage[]): Stage[] => [baselineStage(), ...between, verificationStage({ recount })];

const ROWS = 600;

const byName = (r: { checks: Array<{ name: string }> }, name: string) => {
  const c = r.checks.find((x) => x.name === name);
  assert.ok(c, `check ${name} present`);
  return c as ReturnType<typeof Object> & { name: string; result: string; count: number; sample: unknown[] };
};

for (const kind of DB_KINDS) {
  describe(`verify on ${kind}`, () => {
    test('verification passes after the flagship apply and is recorded with the pre-flight figures', async () => {
      await withDb(kind, async (f) => {
        const truth = await generate(f.db, { rows: ROWS, seed: 11 });
        // as the CLI composes it: the pre-flight stores its figures, verification compares with them
        const r = await apply(f.db, await flagship(), { batchSize: 300, stages: [preflight(), ...verification()] });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const rounds = await getRounds(f.db, r.runId);
        assert.equal(rounds.length, 1);
        assert.equal(rounds[0]!.source, 'apply');
        assert.equal(rounds[0]!.ok, true, JSON.stringify(rounds[0]!.checks.filter((c) => c.result !== 'pass')) ?? '');
        const names = rounds[0]!.checks.map((c) => c.name);
        for (const n of [
          'writes-held:assign-owner',
          'expected-changes',
          'categories',
          'unique-indexes-valid',
          'constraints-validated',
          'assign-owner.verify',
          'no-missed-rows',
          'owners-exist',
          'untouched-columns',
        ])
          assert.ok(names.includes(n), n);
        assert.ok(rounds[0]!.checks.every((c) => c.result === 'pass'));
        // the pre-flight's rows-to-change figure is the generator's planted assign count, and the run changed exactly those
        const run = await getRun(f.db, r.runId);
        const pre = (await checkResults(f.db, r.runId)).find((c) => c.code === 'ASSIGN')!;
        assert.equal(pre.count, truth.categories.assign.length);
        const expected = rounds[0]!.checks.find((c) => c.name === 'expected-changes')!;
        assert.equal(expected.result, 'pass');
        assert.equal(r.steps[0]!.rowsChanged, truth.categories.assign.length);
        assert.equal((run.summary.verification as { ok: boolean }).ok, true);
        // three tables baselined: EventType without userId, the join table and users whole
        const base = run.summary.verify as { untouched: Array<{ table: string; columns: string[]; buckets: object }> };
        assert.deepEqual(
          base.untouched.map((u) => u.table),
          ['EventType', '_user_eventtype', 'users'],
        );
        assert.ok(!base.untouched[0]!.columns.includes('userId'));
        assert.ok(Object.keys(base.untouched[0]!.buckets).length > 20, 'EventType checksummed in key buckets');
      });
    });

    test("a row belay wrote and the application changed afterwards is listed as the application's; one changed past the fence fails verification: exit 7, recorded", async () => {
      await withDb(kind, async (f) => {
        const truth = await generate(f.db, { rows: ROWS, seed: 12 });
        const r = await apply(f.db, await flagship(), { batchSize: 500, stages: verification() });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const [moved, hidden] = [truth.categories.assign[Math.floor(truth.categories.assign.length / 2)]!, truth.categories.assign[0]!];
        // a new user with no link: the row's owner is no longer its valid link
        const u = await f.db.query<{ id: number }>(`INSERT INTO users (username, email) VALUES ('intruder', 'i@example.com') RETURNING id`);
        await f.db.query(`UPDATE "EventType" SET "userId" = $1 WHERE id = $2`, [u.rows[0]!.id, moved]);
        const seen = await verifyRun(f.db, r.runId);
        assert.equal(seen.ok, true, "the write fence recorded the application's write");
        assert.equal(byName(seen, 'writes-held:assign-owner').result, 'pass');
        const changed = byName(seen, 'changed-since:assign-owner');
        assert.deepEqual([changed.result, changed.count, Number((changed.sample[0] as { key: number }).key)], ['warn', 1, moved]);
        // a write the fence cannot see (its triggers off for the session): nobody can say whose it is
        await f.db.query('BEGIN');
        await f.db.query(`SET LOCAL session_replication_role = replica`);
        await f.db.query(`UPDATE "EventType" SET "userId" = $1 WHERE id = $2`, [u.rows[0]!.id, hidden]);
        await f.db.query('COMMIT');
        const v = await verifyRun(f.db, r.runId);
        assert.equal(v.ok, false);
        const held = byName(v, 'writes-held:assign-owner');
        assert.equal(held.result, 'fail');
        assert.equal(held.count, 1);
        assert.equal(Number((held.sample[0] as { key: number }).key), hidden);
        assert.equal(byName(v, 'assign-owner.verify').result, 'pass', 'the written value itself was right');
        assert.equal(byName(v, 'untouched-columns').result, 'pass', 'userId is a written column: not in the checksum');
        assert.throws(
          () => assertVerified(v),
          (e: unknown) => e instanceof VerificationError && e.exitCode === EXIT.verification,
        );
        const rounds = await getRounds(f.db, r.runId, 'verify');
        assert.equal(rounds.length, 2);
        assert.equal(rounds[1]!.ok, false);
        assert.equal(rounds[1]!.checks.find((c) => c.name === 'writes-held:assign-owner')!.count, 1);
        // the CLI (server only: another connection must see the data) ends with exit 7
        if (kind === 'postgres') {
          const code = await main(['node', 'belay', '--db', f.url, 'verify', String(r.runId)]);
          assert.equal(code, EXIT.verification);
          assert.equal((await getRounds(f.db, r.runId, 'verify')).length, 3);
        }
      });
    });

    test('the untouched-column checksum catches a title edited between beforeWrite and afterWrite (run fails, exit 7)', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: ROWS, seed: 13 });
        const ids = (await f.db.query<{ id: number }>(`SELECT id FROM "EventType" ORDER BY id`)).rows.map((x) => Number(x.id));
        const edited = ids[Math.floor(ids.length * 0.7)]!;
        const stages = verification({
          name: 'edit',
          async before(ctx) {
            // what a buggy migration writing a column it did not declare would do, with no sign of other writers
            await ctx.db.query(`UPDATE "EventType" SET title = title || ' (edited)' WHERE id = $1`, [edited]);
          },
        });
        const r = await apply(f.db, await flagship(), { batchSize: 400, stages });
        assert.equal(r.status, 'failed');
        assert.equal(r.error?.code, 'BELAY_VERIFY');
        assert.equal(r.error?.exitCode, EXIT.verification);
        const v = (await getRounds(f.db, r.runId, 'apply'))[0]!;
        const c = v.checks.find((x) => x.name === 'untouched-columns')!;
        assert.equal(c.result, 'fail');
        assert.equal(c.count, 1, 'one key bucket differs');
        const s = c.sample[0] as { table: string; range: [string, string]; rowsBefore: number; rowsAfter: number };
        assert.equal(s.table, 'EventType');
        assert.ok(BigInt(s.range[0]) <= BigInt(edited) && BigInt(edited) <= BigInt(s.range[1]), `${edited} in ${s.range}`);
        assert.equal(s.rowsBefore, s.rowsAfter);
        assert.equal((await getRun(f.db, r.runId)).status, 'failed');
      });
    });

    test("under application traffic (the table grows during the run) the same drift is the application's: a warning, the run completes", async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: ROWS, seed: 13 });
        const ids = (await f.db.query<{ id: number }>(`SELECT id FROM "EventType" ORDER BY id`)).rows.map((x) => Number(x.id));
        const stages = verification({
          name: 'application',
          async before(ctx) {
            await ctx.db.query(`UPDATE "EventType" SET title = title || ' (edited)' WHERE id = $1`, [ids[Math.floor(ids.length * 0.7)]]);
            await ctx.db.query(`INSERT INTO "EventType" (title, slug) SELECT 'new ' || g, 'new-slug-' || g FROM generate_series(1, 25) g`);
          },
        });
        const r = await apply(f.db, await flagship(), { batchSize: 400, stages });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const c = (await getRounds(f.db, r.runId, 'apply'))[0]!.checks.find((x) => x.name === 'untouched-columns')!;
        assert.equal(c.result, 'warn');
        assert.match(c.message, /the application wrote meanwhile: .*"?EventType"? held \d+ rows before the run, \d+ now/);
      });
    });
  });
}

describe('verify: constraints (postgres)', () => {
  test('a NOT VALID check is reported as warn, and passes once re-validated; an invalid unique index fails', async () => {
    await withDb('postgres', async (f) => {
      await generate(f.db, { rows: 300, seed: 3 });
      await f.db.exec(`ALTER TABLE "EventType" ADD CONSTRAINT slug_not_empty CHECK (slug <> '') NOT VALID`);
      const r = await apply(f.db, await flagship(), { stages: verification() });
      assert.equal(r.status, 'completed', r.error?.message ?? '');
      const v1 = await verifyRun(f.db, r.runId);
      assert.equal(byName(v1, 'constraints-validated').result, 'warn');
      assert.equal(v1.ok, true);
      const v2 = await verifyRun(f.db, r.runId, { validateConstraints: true });
      assert.equal(byName(v2, 'constraints-validated').result, 'pass');
      const c = await f.db.query<{ v: boolean }>(`SELECT convalidated AS v FROM pg_constraint WHERE conname = 'slug_not_empty'`);
      assert.equal(c.rows[0]!.v, true);
      // an invalid unique index (what a failed CREATE UNIQUE INDEX CONCURRENTLY leaves behind)
      await f.db.exec(`CREATE UNIQUE INDEX et_title_u ON "EventType" (id, title)`);
      await f.db.exec(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'et_title_u'::regclass`);
      const v3 = await verifyRun(f.db, r.runId);
      assert.equal(byName(v3, 'unique-indexes-valid').result, 'fail');
      assert.equal(v3.ok, false);
    });
  });
});

describe('cleanup: archived backups (postgres)', () => {
  test('backups archived with a manifest, copies dropped past the retention, a restore from the archive gives the data back', async () => {
    await withDb('postgres', async (f) => {
      const dir = mkdtempSync(path.join(tmpdir(), 'belay-archive-'));
      try {
        await generate(f.db, { rows: 400, seed: 5 });
        const before = await checksums(f.db);
        // the tables it only reads too, so that the archive holds several tables
        const r = await apply(f.db, await flagship(), { stages: [backupStage({ readTables: true }), ...verification()] });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const taken = await listBackups(f.db, { runId: r.runId });
        assert.equal(taken.length, 3);
        // within the retention: archived, copies kept
        const a1 = await archiveBackups(f.db, { runId: r.runId }, { dir, retentionMs: 7 * 86_400_000 });
        assert.equal(a1.archived.length, 3);
        assert.equal(a1.dropped.length, 0);
        const manifest = JSON.parse(readFileSync(a1.manifest!, 'utf8')) as { tables: Array<{ backupId: number; rows: number }> };
        assert.deepEqual(manifest.tables.map((t) => t.backupId).sort(), taken.map((b) => b.id).sort());
        // within the retention the decision (the exact rollback's before-images) stays
        assert.deepEqual((await cleanupRun(f.db, r.runId, { retentionMs: 7 * 86_400_000 })).decisionsDropped, []);
        // past the retention (the clock moved 8 days): every copy dropped, nothing exported twice
        const r2 = await cleanupRun(f.db, r.runId, { retentionMs: 7 * 86_400_000, now: new Date(Date.now() + 8 * 86_400_000) });
        assert.deepEqual(r2.decisionsDropped, ['assign-owner']);
        assert.equal((await f.db.query(`SELECT to_regclass('belay.decision_r${r.runId}_s0') AS t`)).rows[0]!.t, null, 'the decision table is gone');
        await assert.rejects(
          rollback(f.db, r.runId),
          (e: unknown) => e instanceof BelayError && e.code === 'BELAY_DECISION_DROPPED' && /--from-backup/.test(e.fix ?? ''),
        );
        assert.equal(r2.backups.archived.length, 0);
        assert.equal(r2.backups.dropped.length, 3);
        const left = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'belay_backup'`);
        assert.equal(left.rows[0]!.n, 0, 'in-database copies are gone');
        const cleanup = (await getRun(f.db, r.runId)).summary.cleanup as { backups: { dropped: number[] }; tempIndexes: object };
        assert.equal(cleanup.backups.dropped.length, 3);
        assert.ok(cleanup.tempIndexes);
        // the run is undone from the archive alone
        const et = taken.find((b) => b.sourceTable === 'EventType')!;
        await restoreBackup(
          f.db,
          taken.map((b) => b.id),
          { from: 'file' },
        );
        assert.deepEqual(await checksums(f.db), before);
        assert.ok(et.rows! > 0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
