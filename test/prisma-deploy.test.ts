// belay prisma deploy: the rows it writes are the rows Prisma writes, the schema it leaves is the schema the
// files leave when run as Prisma runs them (rewrites included), a predicted failure runs nothing, an
// unpredicted failure is undone without a failed row, Prisma's advisory lock is honoured, lock timeouts are
// retried, and --plan changes nothing.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { BelayError } from '../src/errors.ts';
import { prismaCheck } from '../src/prisma/check.ts';
import { prismaDeploy } from '../src/run/prisma-deploy.ts';
import { DB_KINDS, type FreshDb } from './helpers/fresh-db.ts';
import { applyAsPrisma, type Case, cases, comparable, fingerprint, folders, migrationsFolder, sha256, script } from './helpers/prisma.ts';
import { withDb, withSession } from './helpers/fixture.ts';

interface Row {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}
const history = async (db: Db) => (await db.query<Row>('SELECT * FROM _prisma_migrations ORDER BY started_at')).rows;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function rejects(p: Promise<unknown>, code: string, exit: number): Promise<BelayError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof BelayError, String(err));
    assert.equal(err.code, code, err.message);
    assert.equal(err.exitCode, exit);
    return err;
  }
  assert.fail(`expected ${code}`);
}

const byName = (name: string) => cases().find((c) => c.name === name)!;
const DEPLOYED = [
  'unique-index',
  'foreign-key-on-delete',
  'check-constraint',
  'enum-rebuild',
  'set-not-null-update-from',
  'insert-select-then-unique',
  'after-commit',
];

/** Runs fn on the case's passing state in a new database, dropped afterwards, also when fn throws. */
function withPassing<T>(kind: 'postgres' | 'pglite', c: Case, fn: (f: FreshDb) => Promise<T>): Promise<T> {
  return withDb(kind, async (f) => {
    await applyAsPrisma(
      f.db,
      c,
      folders(c).filter((n) => !c.pending.includes(n)),
    );
    await f.db.exec(c.failSql);
    await f.db.exec(c.passSql);
    return await fn(f);
  });
}

for (const kind of DB_KINDS) {
  describe(`prisma deploy (${kind})`, () => {
    for (const name of DEPLOYED) {
      test(`${name}: rows exactly as Prisma writes them, the same schema as the file run by Prisma, nothing pending after`, async () => {
        const c = byName(name);
        await withPassing(kind, c, (a) =>
          withPassing(kind, c, async (b) => {
            const t0 = new Date(Date.now() - 1000);
            const r = await prismaDeploy(a.db, { dir: c.migrations });
            assert.deepEqual(
              r.applied.map((x) => x.name),
              c.pending,
            );
            await applyAsPrisma(b.db, c, c.pending);
            assert.equal(await comparable(a.db), await comparable(b.db));
            const rows = (await history(a.db)).filter((x) => c.pending.includes(x.migration_name));
            assert.equal(rows.length, c.pending.length);
            for (const row of rows) {
              assert.match(row.id, UUID);
              assert.equal(row.checksum, sha256(script(c, row.migration_name)));
              assert.equal(row.logs, null);
              assert.equal(row.rolled_back_at, null);
              assert.equal(Number(row.applied_steps_count), 1);
              assert.ok(row.started_at >= t0 && row.finished_at! >= row.started_at, 'started_at ≤ finished_at');
              assert.equal(r.applied.find((x) => x.name === row.migration_name)!.id, row.id);
            }
            const again = await prismaCheck(a.db, { dir: c.migrations });
            assert.deepEqual(again.status.pending, []);
            assert.deepEqual(
              again.findings.filter((f) => f.severity !== 'info').map((f) => f.code),
              [],
            );
          }),
        );
      });
    }

    test('a predicted failure runs nothing: exit 6, the database as it was, no row', async () => {
      const c = byName('unique-index');
      await withDb(kind, async (f) => {
        await applyAsPrisma(
          f.db,
          c,
          folders(c).filter((n) => !c.pending.includes(n)),
        );
        await f.db.exec(c.failSql);
        const before = await fingerprint(f.db);
        const err = await rejects(prismaDeploy(f.db, { dir: c.migrations }), 'BELAY_PRISMA_PREDICTED_FAILURE', 6);
        assert.match(err.message, /PRISMA_DUPLICATE_KEYS in 20240301120000_user_email_unique line 8/);
        assert.equal(await fingerprint(f.db), before);
      });
    });

    test('a failure the check cannot see is rolled back: no failed row, earlier migrations stay applied', async () => {
      const dir = migrationsFolder({
        '20250101000000_init': 'CREATE TABLE "Item" ("id" SERIAL NOT NULL, "name" TEXT, CONSTRAINT "Item_pkey" PRIMARY KEY ("id"));\n',
        '20250102000000_fine': 'ALTER TABLE "Item" ADD COLUMN "price" INTEGER;\n',
        '20250103000000_boom': `-- CreateIndex\nCREATE INDEX "Item_name_idx" ON "Item"("name");\n\nALTER TABLE "Item" ADD COLUMN "sku" TEXT;\n\nDO $$ BEGIN RAISE EXCEPTION 'refused by a trigger in production'; END $$;\n`,
      });
      await withDb(kind, async (f) => {
        await prismaDeploy(f.db, { dir }).catch(() => undefined);
        const rows = await history(f.db);
        assert.deepEqual(
          rows.map((x) => x.migration_name),
          ['20250101000000_init', '20250102000000_fine'],
        );
        assert.ok(rows.every((x) => x.finished_at !== null));
        const cols = await f.db.query<{ n: string }>(
          `SELECT attname AS n FROM pg_attribute WHERE attrelid = '"Item"'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
        );
        assert.deepEqual(
          cols.rows.map((x) => x.n),
          ['id', 'name', 'price'],
        );
        const idx = await f.db.query(`SELECT 1 FROM pg_class WHERE relname = 'Item_name_idx'`);
        assert.equal(idx.rows.length, 0, 'the index built before the transaction was dropped');
        const before = await fingerprint(f.db);
        const err = await rejects(prismaDeploy(f.db, { dir }), 'BELAY_PRISMA_DEPLOY_FAILED', 9);
        assert.equal(err.details.statement, 3);
        assert.equal(err.details.sqlstate, 'P0001');
        assert.equal(await fingerprint(f.db), before);
      });
    });

    test('a failed row left by prisma migrate deploy is refused, as Prisma refuses it (P3009)', async () => {
      const c = byName('check-constraint');
      await withPassing(kind, c, async (f) => {
        await f.db.query(
          `INSERT INTO _prisma_migrations (id, checksum, migration_name, logs, started_at) VALUES ('f', $1, $2, 'Database error code: 23514', now())`,
          [sha256(script(c, c.pending[0]!)), c.pending[0]],
        );
        const before = await fingerprint(f.db);
        await rejects(prismaDeploy(f.db, { dir: c.migrations }), 'BELAY_PRISMA_FAILED_MIGRATION', 8);
        assert.equal(await fingerprint(f.db), before);
      });
    });

    test('an empty database gets _prisma_migrations exactly as Prisma creates it; a schema with tables and no history is refused (P3005)', async () => {
      const dir = migrationsFolder({ '20250101000000_init': 'CREATE TABLE "A" ("id" SERIAL NOT NULL, CONSTRAINT "A_pkey" PRIMARY KEY ("id"));\n' });
      await withDb(kind, (f) =>
        withDb(kind, async (g) => {
          await prismaDeploy(f.db, { dir });
          const cols = await f.db.query<{
            c: string;
          }>(`SELECT format('%s %s %s %s', attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(d.adbin, d.adrelid)) AS c
          FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE attrelid = '_prisma_migrations'::regclass AND attnum > 0 ORDER BY attnum`);
          assert.deepEqual(
            cols.rows.map((x) => x.c),
            [
              'id character varying(36) t ',
              'checksum character varying(64) t ',
              'finished_at timestamp with time zone f ',
              'migration_name character varying(255) t ',
              'logs text f ',
              'rolled_back_at timestamp with time zone f ',
              'started_at timestamp with time zone t now()',
              'applied_steps_count integer t 0',
            ],
          );
          await g.db.exec('CREATE TABLE legacy (id int)');
          await rejects(prismaDeploy(g.db, { dir }), 'BELAY_PRISMA_BASELINE', 8);
        }),
      );
    });
  });
}

describe("prisma deploy on the server: rewrites, Prisma's lock, lock timeouts", () => {
  const FILES = {
    '20250101000000_init': `CREATE TABLE "Org" ("id" SERIAL NOT NULL, CONSTRAINT "Org_pkey" PRIMARY KEY ("id"));
CREATE TABLE "Member" ("id" SERIAL NOT NULL, "email" TEXT, "orgId" INTEGER, "age" INTEGER, CONSTRAINT "Member_pkey" PRIMARY KEY ("id"));
`,
    '20250201000000_member_constraints': `-- CreateIndex
CREATE UNIQUE INDEX "Member_email_key" ON "Member"("email");

-- AddForeignKey
ALTER TABLE "Member" ADD CONSTRAINT "Member_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AlterTable
ALTER TABLE "Member" ALTER COLUMN "email" SET NOT NULL;

ALTER TABLE "Member" ADD CONSTRAINT "Member_age_check" CHECK ("age" >= 0);
`,
  };
  const seed = `INSERT INTO "Org" ("id") VALUES (1), (2);
INSERT INTO "Member" ("email", "orgId", "age") SELECT 'm' || g || '@example.com', 1 + g % 2, g % 90 FROM generate_series(1, 2000) g;`;

  /** Runs fn on a new database with the first migration deployed and the seed, given the folder of every migration. */
  function withPrepared<T>(fn: (p: { dir: string; f: FreshDb }) => Promise<T>): Promise<T> {
    const dir = migrationsFolder(FILES);
    return withDb('postgres', async (f) => {
      await prismaDeploy(f.db, { dir: migrationsFolder({ '20250101000000_init': FILES['20250101000000_init'] }) });
      await f.db.exec(seed);
      return await fn({ dir, f });
    });
  }

  test('--plan: the index CONCURRENTLY before the transaction, constraints NOT VALID then validated, SET NOT NULL through a CHECK; nothing runs', async () => {
    await withPrepared(async ({ dir, f }) => {
      const before = await fingerprint(f.db);
      const r = await prismaDeploy(f.db, { dir, plan: true });
      assert.equal(r.planOnly, true);
      const steps = r.plans[0]!.steps.map((s) => `${s.phase}: ${s.sql}`);
      assert.deepEqual(steps, [
        'before: CREATE UNIQUE INDEX CONCURRENTLY "Member_email_key" ON "Member"("email")',
        'transaction: ALTER TABLE "Member" ADD CONSTRAINT "Member_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE SET NULL ON UPDATE CASCADE NOT VALID',
        'transaction: ALTER TABLE "public"."Member" ADD CONSTRAINT "belay_nn_Member_email" CHECK ("email" IS NOT NULL) NOT VALID',
        'transaction: ALTER TABLE "Member" ADD CONSTRAINT "Member_age_check" CHECK ("age" >= 0) NOT VALID',
        'after: ALTER TABLE "public"."Member" VALIDATE CONSTRAINT "Member_orgId_fkey"',
        'after: ALTER TABLE "public"."Member" VALIDATE CONSTRAINT "belay_nn_Member_email"',
        'after: ALTER TABLE "public"."Member" ALTER COLUMN "email" SET NOT NULL',
        'after: ALTER TABLE "public"."Member" DROP CONSTRAINT "belay_nn_Member_email"',
        'after: ALTER TABLE "public"."Member" VALIDATE CONSTRAINT "Member_age_check"',
      ]);
      assert.equal(await fingerprint(f.db), before);
      await prismaDeploy(f.db, { dir });
      const con = await f.db.query<{ c: string }>(
        `SELECT format('%s %s', conname, convalidated) AS c FROM pg_constraint WHERE conrelid = '"Member"'::regclass ORDER BY 1`,
      );
      assert.deepEqual(
        con.rows.map((x) => x.c),
        ['Member_age_check t', 'Member_orgId_fkey t', 'Member_pkey t'],
      );
      const col = await f.db.query<{ nn: boolean }>(`SELECT attnotnull AS nn FROM pg_attribute WHERE attrelid = '"Member"'::regclass AND attname = 'email'`);
      assert.equal(col.rows[0]!.nn, true);
      const idx = await f.db.query<{ v: boolean }>(`SELECT indisvalid AS v FROM pg_index WHERE indexrelid = '"Member_email_key"'::regclass`);
      assert.equal(idx.rows[0]!.v, true);
    });
  });

  test("Prisma's advisory lock held by another session: exit 5 after --lock-wait, nothing changed", async () => {
    await withPrepared(({ dir, f }) =>
      withSession(f.url, async (other) => {
        await other.query('SELECT pg_advisory_lock(72707369)');
        const before = await fingerprint(f.db);
        const t0 = performance.now();
        await rejects(prismaDeploy(f.db, { dir, lockWaitMs: 300 }), 'BELAY_PRISMA_LOCKED', 5);
        assert.ok(performance.now() - t0 < 5000);
        assert.equal(await fingerprint(f.db), before);
      }),
    );
  });

  test('an orphan written after the check: the migration stays applied with its constraint NOT VALID, exit 9 names the VALIDATE to rerun', async () => {
    const dir = migrationsFolder({
      '20250101000000_init': FILES['20250101000000_init'],
      '20250301000000_fk':
        'ALTER TABLE "Member" ADD CONSTRAINT "Member_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE SET NULL ON UPDATE CASCADE;\n',
    });
    await withDb('postgres', (f) =>
      withSession(f.url, async (other) => {
        await prismaDeploy(f.db, { dir: migrationsFolder({ '20250101000000_init': FILES['20250101000000_init'] }) });
        await f.db.exec(seed);
        // the orphan is written while the deploy waits for its lock: the check before did not see it
        await other.query('BEGIN');
        await other.query(`INSERT INTO "Member" ("email", "orgId") VALUES ('late@example.com', 999)`);
        const commit = new Promise((r) => setTimeout(r, 1000)).then(() => other.query('COMMIT'));
        const err = await rejects(prismaDeploy(f.db, { dir, lockTimeoutMs: 200, retries: 10 }), 'BELAY_PRISMA_FOLLOW_UP', 9);
        await commit;
        assert.match(String(err.details.sql), /VALIDATE CONSTRAINT "Member_orgId_fkey"/);
        assert.equal(err.details.sqlstate, '23503');
        const rows = await history(f.db);
        assert.deepEqual(
          rows.map((x) => [x.migration_name, x.finished_at !== null]),
          [
            ['20250101000000_init', true],
            ['20250301000000_fk', true],
          ],
        );
        const con = await f.db.query<{ v: boolean }>(`SELECT convalidated AS v FROM pg_constraint WHERE conname = 'Member_orgId_fkey'`);
        assert.equal(con.rows[0]!.v, false);
      }),
    );
  });

  test('a lock held by a long transaction: the step times out after --lock-timeout and is retried until it gets the lock', async () => {
    await withPrepared(({ dir, f }) =>
      withSession(f.url, async (other) => {
        await other.query('BEGIN');
        await other.query('SELECT count(*) FROM "Member"'); // ACCESS SHARE until commit: blocks ALTER TABLE
        const release = new Promise((r) => setTimeout(r, 1500)).then(() => other.query('COMMIT'));
        const lines: string[] = [];
        const r = await prismaDeploy(f.db, { dir, lockTimeoutMs: 200, retries: 10, log: (l) => lines.push(l) });
        await release;
        assert.ok(r.applied[0]!.attempts > 1, `attempts ${r.applied[0]!.attempts}`);
        assert.ok(
          lines.some((l) => /SQLSTATE 55P03/.test(l)),
          lines.join('\n'),
        );
        assert.equal((await history(f.db)).length, 2);
      }),
    );
  });
});
