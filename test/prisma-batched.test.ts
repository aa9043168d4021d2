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
import { ensureState } from '../src/state/schema.ts';
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

const PURGE = `-- Delete the accounts without a tier\nDELETE FROM "Account" WHERE "tier" IS NULL;\n`;

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

  test('an UPDATE of a table with a composite primary key is batched by row-value keyset, and undone byte for byte when the file fails later', async () => {
    const init =
      'CREATE TABLE "Membership" ("teamId" INTEGER NOT NULL, "userId" TEXT NOT NULL, "role" TEXT, CONSTRAINT "Membership_pkey" PRIMARY KEY ("teamId", "userId"));\n';
    const fill = `UPDATE "Membership" SET "role" = 'member' WHERE "role" IS NULL;\n`;
    const sum = async (db: Db) =>
      (await db.query<{ s: string }>(`SELECT md5(string_agg(t::text, ',' ORDER BY "teamId", "userId")) AS s FROM "Membership" t`)).rows[0]!.s;
    const dir = migrationsFolder({ '20260101000000_init': init });
    await withDb('postgres', async (f) => {
      await prismaDeploy(f.db, { dir });
      await f.db.exec(
        `INSERT INTO "Membership" SELECT g / 50, 'u' || (g % 50), CASE WHEN g % 4 = 0 THEN 'owner' END FROM generate_series(0, 9999) g; ANALYZE "Membership"`,
      );
      const before = await sum(f.db);
      addMigration(dir, '20260102000000_fill_then_boom', `${fill}DO $$ BEGIN RAISE EXCEPTION 'refused'; END $$;\n`);
      const plan = await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true });
      assert.match(plan.plans[0]!.steps[0]!.batched!.decide, /^SELECT "teamId", "userId", \('member'\) AS "role"/);
      const err = await prismaDeploy(f.db, { dir, batchOver: 1000 }).then(
        () => assert.fail('expected the deploy to fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError && err.code === 'BELAY_PRISMA_DEPLOY_FAILED', String(err));
      const batches = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.batches`);
      assert.ok(batches.rows[0]!.n > 1, `${batches.rows[0]!.n} batches`);
      assert.equal(await sum(f.db), before, 'the table byte for byte as before');
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

  test('a large DELETE that opens a file runs in keyset batches, keeps every deleted row, and leaves what Prisma leaves', async () => {
    const dirA = migrationsFolder({ '20260101000000_init': INIT });
    const dirB = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (a) => {
      await withDb('postgres', async (b) => {
        await seeded(a.db, dirA);
        await seeded(b.db, dirB);
        const before = await tableSum(a.db);
        addMigration(dirA, '20260102000000_purge', PURGE);
        addMigration(dirB, '20260102000000_purge', PURGE);
        const plan = await prismaDeploy(a.db, { dir: dirA, batchOver: 1000, plan: true });
        assert.equal(plan.plans[0]!.steps[0]!.phase, 'batched');
        assert.ok(plan.plans[0]!.steps[0]!.deleted);
        const r = await prismaDeploy(a.db, { dir: dirA, batchOver: 1000 });
        const kept = r.applied[0]!.deletedRowsKept;
        assert.equal(kept.length, 1);
        await prismaDeploy(b.db, { dir: dirB, batchOver: Number.POSITIVE_INFINITY });
        assert.equal(await comparable(a.db), await comparable(b.db));
        // every deleted row is in the undo table: put back, the table is byte for byte as before
        const n = (await a.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${kept[0]}`)).rows[0]!.n;
        assert.equal(n, ROWS - Math.floor(ROWS / 3));
        await a.db.exec(`INSERT INTO "Account" SELECT * FROM ${kept[0]}`);
        assert.equal(await tableSum(a.db), before);
      });
    });
  });

  test('when a later statement fails, the rows a batched DELETE deleted are put back: the table byte for byte as before, no row, no undo table', async () => {
    const dir = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (f) => {
      await seeded(f.db, dir);
      const before = await tableSum(f.db);
      addMigration(dir, '20260102000000_purge_then_boom', `${PURGE}\nDO $$ BEGIN RAISE EXCEPTION 'refused by a trigger in production'; END $$;\n`);
      const plan = await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true });
      const undo = plan.plans[0]!.steps[0]!.deleted!.undo;
      const err = await prismaDeploy(f.db, { dir, batchOver: 1000 }).then(
        () => assert.fail('expected the deploy to fail'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError && err.code === 'BELAY_PRISMA_DEPLOY_FAILED', String(err));
      assert.equal(await tableSum(f.db), before);
      assert.equal((await f.db.query(`SELECT 1 FROM _prisma_migrations WHERE migration_name = '20260102000000_purge_then_boom'`)).rows.length, 0);
      assert.equal((await f.db.query<{ r: string | null }>(`SELECT to_regclass($1)::text AS r`, [undo])).rows[0]!.r, null);
    });
  });

  test('a DELETE whose rows a cascading foreign key or a DELETE trigger would change elsewhere stays in the transaction', async () => {
    const dir = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (f) => {
      await seeded(f.db, dir);
      addMigration(dir, '20260102000000_purge', PURGE);
      assert.ok((await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true })).plans[0]!.steps[0]!.deleted, 'batched before the hazard');
      await f.db.exec(`CREATE TABLE "Session" ("id" SERIAL PRIMARY KEY, "accountId" INTEGER REFERENCES "Account"("id") ON DELETE CASCADE)`);
      assert.ok((await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true })).plans[0]!.steps.every((s) => s.phase !== 'batched'));
      await f.db.exec(`DROP TABLE "Session"; CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN OLD; END $$;
        CREATE TRIGGER "Account_audit" BEFORE DELETE ON "Account" FOR EACH ROW EXECUTE FUNCTION audit()`);
      assert.ok((await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true })).plans[0]!.steps.every((s) => s.phase !== 'batched'));
    });
  });

  test('a deploy that finds the undo table of an interrupted batched DELETE refuses, names it, and changes nothing', async () => {
    const dir = migrationsFolder({ '20260101000000_init': INIT });
    await withDb('postgres', async (f) => {
      await seeded(f.db, dir);
      addMigration(dir, '20260102000000_purge', PURGE);
      const undo = (await prismaDeploy(f.db, { dir, batchOver: 1000, plan: true })).plans[0]!.steps[0]!.deleted!.undo;
      // what a kill between two batches leaves: some rows moved into the undo table
      await ensureState(f.db);
      await f.db.exec(`CREATE TABLE ${undo} AS SELECT * FROM "Account" WHERE false;
        WITH d AS (DELETE FROM "Account" WHERE "id" <= 100 AND "tier" IS NULL RETURNING *) INSERT INTO ${undo} SELECT * FROM d`);
      const before = await tableSum(f.db);
      const err = await prismaDeploy(f.db, { dir, batchOver: 1000 }).then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError && err.code === 'BELAY_PRISMA_DELETE_INTERRUPTED', String(err));
      assert.equal(err.exitCode, 8);
      assert.match(err.message, /67 deleted row\(s\) of "public"."Account" are kept in "belay_backup"."prisma_deleted_/);
      assert.match(err.fix ?? '', /INSERT INTO "public"."Account" OVERRIDING SYSTEM VALUE SELECT \* FROM "belay_backup"/);
      assert.equal(await tableSum(f.db), before);
      assert.equal((await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${undo}`)).rows[0]!.n, 67);
    });
  });
});
