// belay prisma deploy runs a large UPDATE that opens a migration file as belay batched steps: the rows and
// the schema it leaves are the ones Prisma's own run of the file leaves, a later failure of the file is
// undone by belay's rollback (the table byte for byte as before, no _prisma_migrations row), and the forms
// whose meaning as a decision could differ stay in the file's transaction.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { BelayError } from '../src/errors.ts';
import { prismaDeploy } from '../src/run/prisma-deploy.ts';
import { withDb } from './helpers/fixture.ts';
import { comparable, migrationsFolder, sha256 } from './helpers/prisma.ts';

const INIT =
  'CREATE TABLE "Account" ("id" SERIAL NOT NULL, "email" TEXT NOT NULL, "tier" TEXT, "note" TEXT, CONSTRAINT "Account_pkey" PRIMARY KEY ("id"));\n' +
  'CREATE TABLE "Plan" ("name" TEXT NOT NULL, "label" TEXT NOT NULL, CONSTRAINT "Plan_pkey" PRIMARY KEY ("name"));\n';
const ROWS = 20_000;
const BACKFILL =
  `-- Backfill the tier of accounts that have none\nUPDATE "Account" SET "tier" = 'basic', "note" = upper("email") WHERE "tier" IS NULL;\n\n` +
  `-- AlterTable\nALTER TABLE "Account" ALTER COLUMN "tier" SET NOT NULL;\n`;

/** The init migration deployed, then rows in it (every third one with a tier), analyzed so the estimate is real. */
async function seeded(db: Db, dir: string): Promise<void> {
  await prismaDeploy(db, { dir });
  await db.exec(`INSERT INTO "Account" ("email", "tier") SELECT 'user' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'pro' END FROM generate_series(1, ${ROWS}) g;
    INSERT INTO "Plan" VALUES ('basic', 'Basic'), ('pro', 'Pro'); ANALYZE "Account"; ANALYZE "Plan"`);
}

function addMigration(dir: string, name: string, sql: string): void {
  mkdirSync(path.join(dir, name));
  writeFileSync(path.join(dir, name, 'migration.sql'), sql);
}

const tableSum = async (db: Db) => (await db.query<{ s: string }>(`SELECT md5(string_agg(t::text, ',' ORDER BY id)) AS s FROM "Account" t`)).rows[0]!.s;

describe('prisma deploy: a large UPDATE in belay batches (postgres)', () => {
  test('the UPDATE runs in belay batches and leaves exactly what the file run as Prisma runs it leaves', async () => {
    const dirA = migrationsFolder({ '20260101000000_init': INIT });
    const dirB = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (a) => {
      await withDb('postgres', async (b) => {
        await seeded(a.db, dirA);
        await seeded(b.db, dirB);
        addMigration(dirA, '20260102000000_backfill_tier', BACKFILL);
        addMigration(dirB, '20260102000000_backfill_tier', BACKFILL);

        const plan = await prismaDeploy(a.db, { dir: dirA, batchOver: 1000, plan: true });
        const phases = plan.plans[0]!.steps.map((s) => s.phase);
        assert.equal(phases[0], 'batched', phases.join(', '));
        assert.ok(!phases.slice(1).includes('batched'), phases.join(', '));
        assert.match(
          plan.plans[0]!.steps[0]!.batched!.decide,
          /^SELECT "id", \('basic'\) AS "tier", \(upper\("email"\)\) AS "note"\n {2}FROM "public"."Account"\n WHERE "tier" IS NULL$/,
        );

        const r = await prismaDeploy(a.db, { dir: dirA, batchOver: 1000 });
        const applied = r.applied[0]!;
        assert.equal(applied.belayRuns.length, 1);
        const run = (
          await a.db.query<{ status: string; batches: number }>(
            `SELECT r.status, (SELECT count(*)::int FROM belay.batches b WHERE b.run_id = r.id) AS batches FROM belay.runs r WHERE r.id = $1`,
            [applied.belayRuns[0]],
          )
        ).rows[0]!;
        assert.equal(run.status, 'completed');
        assert.ok(run.batches > 1, `${run.batches} batches`);

        // the same file run as Prisma runs it (one transaction, no belay) on the same data
        const asPrisma = await prismaDeploy(b.db, { dir: dirB, batchOver: Number.POSITIVE_INFINITY });
        assert.deepEqual(asPrisma.applied[0]!.belayRuns, []);
        assert.equal(await comparable(a.db), await comparable(b.db));
        const row = (
          await a.db.query<{ checksum: string; finished_at: Date | null; applied_steps_count: number }>(
            `SELECT checksum, finished_at, applied_steps_count FROM _prisma_migrations WHERE migration_name = '20260102000000_backfill_tier'`,
          )
        ).rows;
        assert.equal(row.length, 1);
        assert.equal(row[0]!.checksum, sha256(BACKFILL));
        assert.ok(row[0]!.finished_at);
        assert.equal(row[0]!.applied_steps_count, 1);
        const counts = (
          await a.db.query<{ basic: number; pro: number }>(
            `SELECT count(*) FILTER (WHERE tier = 'basic')::int AS basic, count(*) FILTER (WHERE tier = 'pro')::int AS pro FROM "Account"`,
          )
        ).rows[0]!;
        assert.deepEqual(counts, { basic: ROWS - Math.floor(ROWS / 3), pro: Math.floor(ROWS / 3) });
      });
    });
  });

  test('when a later statement of the file fails, belay rolls the batches back: the table byte for byte as before, no _prisma_migrations row', async () => {
    const dir = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (f) => {
      await seeded(f.db, dir);
      const before = await tableSum(f.db);
      addMigration(dir, '20260102000000_backfill_then_boom', `${BACKFILL}\nDO $$ BEGIN RAISE EXCEPTION 'refused by a trigger in production'; END $$;\n`);
      const err = await prismaDeploy(f.db, { dir, batchOver: 1000 }).then(
        () => assert.fail('expected the deploy to fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError, String(err));
      assert.equal(err.code, 'BELAY_PRISMA_DEPLOY_FAILED', err.message);
      assert.equal(err.exitCode, 9);
      assert.equal(await tableSum(f.db), before);
      const rows = await f.db.query(`SELECT 1 FROM _prisma_migrations WHERE migration_name = '20260102000000_backfill_then_boom'`);
      assert.equal(rows.rows.length, 0);
      const runs = await f.db.query<{ status: string }>(`SELECT status FROM belay.runs WHERE migration_id LIKE 'prisma.%'`);
      assert.deepEqual(
        runs.rows.map((x) => x.status),
        ['rolled_back'],
      );
    });
  });

  test('an UPDATE with FROM, one after a schema change of its file, and one on a small table stay in the transaction', async () => {
    const dir = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (f) => {
      await seeded(f.db, dir);
      addMigration(dir, '20260102000000_from', `UPDATE "Account" a SET "note" = p."label" FROM "Plan" p WHERE p."name" = a."tier";\n`);
      addMigration(dir, '20260103000000_after_ddl', `ALTER TABLE "Account" ADD COLUMN "x" INTEGER;\nUPDATE "Account" SET "x" = 1;\n`);
      addMigration(dir, '20260104000000_small', `UPDATE "Plan" SET "label" = upper("label");\n`);
      const plan = await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true });
      for (const p of plan.plans)
        assert.ok(
          p.steps.every((s) => s.phase !== 'batched'),
          `${p.name}: ${p.steps.map((s) => s.phase).join(', ')}`,
        );
      // and the same files with a threshold the small table passes: only that one is batched
      const low = await prismaDeploy(f.db, { dir, batchOver: 1, plan: true });
      assert.deepEqual(
        low.plans.map((p) => p.steps.some((s) => s.phase === 'batched')),
        [false, false, true],
      );
    });
  });
});
