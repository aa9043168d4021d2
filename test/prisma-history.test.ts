// The migrations folder and `_prisma_migrations` as Prisma reads them: checksums, order, pending, failed,
// rolled back, edited and missing migrations, the schema of the URL, and bad input (a clear error, the
// documented exit code, nothing touched).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { BelayError } from '../src/errors.ts';
import { errorCodeInfo } from '../src/error-codes.ts';
import { prismaCheck } from '../src/prisma/check.ts';
import { checksumMatches, listMigrations, prismaChecksum } from '../src/prisma/migrations-dir.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { fingerprint, migrationsFolder, sha256 } from './helpers/prisma.ts';
import { withDb, withSession } from './helpers/fixture.ts';

function throwsCode(fn: () => unknown, code: string, exit: number): void {
  assert.throws(fn, (err: unknown) => err instanceof BelayError && err.code === code && err.exitCode === exit && !!errorCodeInfo(code));
}

describe('migrations folder', () => {
  test('checksum: hex sha256 of the UTF-8 bytes, zero-padded; CRLF/LF variants and unpadded old rows match', () => {
    assert.equal(prismaChecksum('hello'), '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824');
    const s = 'CREATE TABLE "Café" (id int);\n-- é\n';
    assert.equal(prismaChecksum(s), sha256(s));
    assert.ok(checksumMatches(s.replace(/\n/g, '\r\n'), prismaChecksum(s)));
    assert.ok(checksumMatches(s, prismaChecksum(s.replace(/\n/g, '\r\n'))));
    assert.ok(!checksumMatches(`${s} `, prismaChecksum(s)));
    const unpadded = [...Buffer.from(prismaChecksum('abcd'), 'hex')].map((b) => b.toString(16)).join('');
    assert.notEqual(unpadded.length, 64);
    assert.ok(checksumMatches('abcd', unpadded));
  });

  test('folders in localeCompare order, files and the lock file ignored', () => {
    const dir = migrationsFolder({ '20240102_b': 'SELECT 2', '20240101_a': 'SELECT 1', '20240101_A2': 'SELECT 3' }, 'provider = "postgresql"\n');
    writeFileSync(path.join(dir, 'README.md'), 'notes');
    assert.deepEqual(
      listMigrations(dir).map((m) => m.name),
      ['20240101_a', '20240101_A2', '20240102_b'],
    );
  });

  test('bad input: no folder (exit 2), a folder without migration.sql (exit 2), another provider (exit 3)', () => {
    throwsCode(() => listMigrations('/nonexistent/prisma/migrations'), 'BELAY_PRISMA_DIR', 2);
    throwsCode(() => listMigrations(migrationsFolder({ '20240101_a': null })), 'BELAY_PRISMA_DIR', 2);
    throwsCode(() => listMigrations(migrationsFolder({ '20240101_a': 'SELECT 1' }, 'provider = "mysql"\n')), 'BELAY_PRISMA_PROVIDER', 3);
  });
});

for (const kind of DB_KINDS) {
  describe(`_prisma_migrations (${kind})`, () => {
    test('applied, failed (with its logs), rolled back (pending again), edited and missing migrations', async () => {
      const a = 'CREATE TABLE "A" ("id" INTEGER);\n';
      const dir = migrationsFolder({
        '20240101_a': a,
        '20240102_b': 'ALTER TABLE "A" ADD COLUMN "b" INTEGER;\n',
        '20240103_c': 'ALTER TABLE "A" ADD COLUMN "c" INTEGER;\n',
        '20240104_d': 'SELECT 1;\n',
      });
      await withDb(kind, async (f) => {
        await f.db.exec(`${a}
          CREATE TABLE _prisma_migrations (id VARCHAR(36) PRIMARY KEY NOT NULL, checksum VARCHAR(64) NOT NULL, finished_at TIMESTAMPTZ,
            migration_name VARCHAR(255) NOT NULL, logs TEXT, rolled_back_at TIMESTAMPTZ, started_at TIMESTAMPTZ NOT NULL DEFAULT now(), applied_steps_count INTEGER NOT NULL DEFAULT 0);`);
        const ins = `INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, rolled_back_at, logs, applied_steps_count, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now() + ($8 || ' seconds')::interval)`;
        await f.db.query(ins, ['1', sha256(`${a}-- edited\n`), '20240101_a', new Date(), null, null, 1, '1']);
        await f.db.query(ins, ['2', 'x', '20240102_b', null, null, 'ERROR: column "b" of relation "A" already exists', 0, '2']);
        await f.db.query(ins, ['3', 'x', '20240103_c', null, new Date(), 'ERROR: boom', 0, '3']);
        await f.db.query(ins, ['4', 'x', '20231231_gone', new Date(), null, null, 1, '0']);
        const before = await fingerprint(f.db);
        const r = await prismaCheck(f.db, { dir });
        assert.deepEqual(r.status.applied, ['20231231_gone', '20240101_a']);
        assert.deepEqual(r.status.pending, ['20240103_c', '20240104_d']);
        assert.deepEqual(
          r.status.failed.map((x) => x.migration_name),
          ['20240102_b'],
        );
        const codes = r.findings.map((x) => `${x.code} ${x.migration}`);
        assert.ok(codes.includes('PRISMA_FAILED_MIGRATION 20240102_b'), codes.join('; '));
        assert.ok(codes.includes('PRISMA_CHANGED_MIGRATION 20240101_a'));
        assert.ok(codes.includes('PRISMA_MISSING_MIGRATION 20231231_gone'));
        assert.match(r.findings.find((x) => x.code === 'PRISMA_FAILED_MIGRATION')!.message, /already exists/);
        assert.equal(r.ok, false);
        assert.equal(await fingerprint(f.db), before);
      });
    });

    test('no _prisma_migrations: everything pending on an empty schema; a schema with tables needs a baseline (P3005)', async () => {
      const dir = migrationsFolder({ '20240101_a': 'CREATE TABLE "A" ("id" INTEGER);\n' });
      await withDb(kind, async (f) => {
        const empty = await prismaCheck(f.db, { dir });
        assert.equal(empty.ok, true);
        assert.deepEqual(empty.status.pending, ['20240101_a']);
        await f.db.exec('CREATE TABLE other (id int)');
        const r = await prismaCheck(f.db, { dir });
        assert.deepEqual(
          r.findings.filter((x) => x.severity === 'error').map((x) => x.code),
          ['PRISMA_BASELINE_REQUIRED'],
        );
      });
    });
  });
}

test('the schema parameter of the URL is the schema Prisma uses (server)', async () => {
  await withDb('postgres', (f) =>
    withSession(`${f.url}?schema=app`, async (db) => {
      await db.exec(
        'CREATE SCHEMA app; CREATE TABLE app."T" ("id" INTEGER, "v" TEXT); INSERT INTO app."T" VALUES (1, NULL); CREATE TABLE public."T" ("id" INTEGER, "v" TEXT);',
      );
      const dir = migrationsFolder({ '20240101_v': 'ALTER TABLE "T" ALTER COLUMN "v" SET NOT NULL;\n' });
      const r = await prismaCheck(db, { dir });
      assert.equal(r.schema, 'app');
      assert.deepEqual(
        r.findings.map((x) => [x.code, x.count]),
        [
          ['PRISMA_BASELINE_REQUIRED', null],
          ['PRISMA_NULLS_IN_NOT_NULL', 1],
        ],
      );
      const pub = await prismaCheck(db, { dir, schema: 'public' });
      assert.deepEqual(
        pub.findings.map((x) => x.code),
        ['PRISMA_BASELINE_REQUIRED'],
      );
      const path = await db.query<{ p: string }>(`SELECT current_setting('search_path') AS p`);
      // the session keeps the URL's schema as its search_path, as Prisma's engine sets it; the checks' own (public) did not stay
      assert.equal(path.rows[0]!.p, 'app', "the session search_path is the URL's schema again");
    }),
  );
});
