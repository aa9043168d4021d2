// Locks in belay prisma check: the mode each statement takes, held to the end of its transaction (the file's
// own COMMIT splits it), a non-concurrent index build and a long lock on a table with rows, a DO block's
// writes, and the sessions that hold conflicting locks right now.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { prismaCheck } from '../src/prisma/check.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { applyAsPrisma, cases, folders, migrationsFolder, sha256 } from './helpers/prisma.ts';
import { withDb, withSession } from './helpers/fixture.ts';

for (const kind of DB_KINDS) {
  test(`locks are held to the end of their transaction: the file's COMMIT ends the first (${kind})`, async () => {
    const c = cases().find((x) => x.name === 'after-commit')!;
    await withDb(kind, async (f) => {
      await applyAsPrisma(
        f.db,
        c,
        folders(c).filter((n) => !c.pending.includes(n)),
      );
      await f.db.exec(c.passSql);
      const r = await prismaCheck(f.db, { dir: c.migrations });
      const m = r.migrations.find((x) => x.name === c.pending[0])!;
      assert.deepEqual(
        m.locks.map((h) => [h.table, h.mode, h.from, h.until, h.blocks]),
        [
          ['Team', 'ACCESS EXCLUSIVE', 3, 9, 'reads and writes'],
          ['Team', 'SHARE', 10, 10, 'writes'],
        ],
      );
      assert.deepEqual(
        m.statements.find((s) => s.index === 4)!.locks.map((l) => l.mode),
        ['ACCESS EXCLUSIVE'],
      );
    });
  });

  test(`a table with rows: CREATE INDEX without CONCURRENTLY and a long lock are reported; a DO block's writes lock (${kind})`, async () => {
    const init = 'CREATE TABLE "Event" ("id" SERIAL NOT NULL, "kind" TEXT, CONSTRAINT "Event_pkey" PRIMARY KEY ("id"));\n';
    const dir = migrationsFolder({
      '20250101000000_init': init,
      '20250102000000_index': `CREATE INDEX "Event_kind_idx" ON "Event"("kind");\nDO $$ BEGIN UPDATE "Event" SET "kind" = 'x' WHERE "kind" IS NULL; END $$;\n`,
    });
    await withDb(kind, async (f) => {
      await f.db.exec(`CREATE TABLE "Event" ("id" SERIAL NOT NULL, "kind" TEXT, CONSTRAINT "Event_pkey" PRIMARY KEY ("id"));
        INSERT INTO "Event" ("kind") SELECT 'k' || (g % 7) FROM generate_series(1, 20000) g; ANALYZE "Event";
        CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ, migration_name VARCHAR(255) NOT NULL,
          logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);
        INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at) VALUES ('1', '${sha256(init)}', '20250101000000_init', now());`);
      const quiet = await prismaCheck(f.db, { dir });
      assert.deepEqual(
        quiet.findings.filter((x) => x.severity !== 'info').map((x) => x.code),
        ['PRISMA_INDEX_NOT_CONCURRENT'],
      );
      assert.equal(quiet.ok, true);
      const s2 = quiet.migrations[0]!.statements.find((s) => s.index === 2)!;
      assert.deepEqual(
        s2.locks.map((l) => [l.table, l.mode]),
        [['Event', 'ROW EXCLUSIVE']],
      );
      const strict = await prismaCheck(f.db, { dir, lockWarnMs: 0.001 });
      const long = strict.findings.find((x) => x.code === 'PRISMA_LONG_LOCK');
      assert.ok(long, JSON.stringify(strict.findings.map((x) => x.code)));
      assert.match(long.message, /SHARE on "Event" from statement 1 to the end of its transaction \(statement 2\)/);
    });
  });
}

test('sessions holding a conflicting lock right now are listed (server)', async () => {
  const c = cases().find((x) => x.name === 'check-constraint')!;
  await withDb('postgres', (f) =>
    withSession(
      f.url,
      async (other) => {
        await applyAsPrisma(
          f.db,
          c,
          folders(c).filter((n) => !c.pending.includes(n)),
        );
        await other.query('BEGIN');
        await other.query('SELECT count(*) FROM "Stock"');
        const r = await prismaCheck(f.db, { dir: c.migrations });
        const b = r.findings.find((x) => x.code === 'PRISMA_BLOCKED_NOW');
        assert.ok(b, JSON.stringify(r.findings.map((x) => x.code)));
        assert.equal(b.count, 1);
        assert.equal(b.sample[0]!.mode, 'ACCESS SHARE');
        assert.equal(b.sample[0]!.app, 'reporting-job');
        await other.query('COMMIT');
        const again = await prismaCheck(f.db, { dir: c.migrations });
        assert.ok(!again.findings.some((x) => x.code === 'PRISMA_BLOCKED_NOW'));
      },
      { applicationName: 'reporting-job' },
    ),
  );
});
