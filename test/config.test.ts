// belay.config.json validated by its zod schema (errors name the file and the field), .env files read as
// Prisma reads them, and a migration found by path, folder name or id in the configured folder.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { loadEnvFiles } from '../src/config/env-file.ts';
import { loadProjectConfig, parseConfig } from '../src/config/environments.ts';
import { BelayError } from '../src/errors.ts';
import { findMigration, migrationStatus } from '../src/run/migrations.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { loadMigration } from '../src/spec/load.ts';
import { withDb } from './helpers/fixture.ts';
import { initProject, newMigration } from '../src/run/scaffold.ts';
import { runCli } from './helpers/cli.ts';

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(path.join(tmpdir(), 'belay-config-'));
  dirs.push(d);
  return d;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function configError(fn: () => unknown): BelayError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof BelayError && err.code === 'BELAY_CONFIG', String(err));
    return err;
  }
  assert.fail('no error');
}

describe('belay.config.json', () => {
  test('a misspelt key, a wrong type and an empty URL are refused with the file and the field', () => {
    const dir = tmp();
    const file = path.join(dir, 'belay.config.json');
    writeFileSync(file, JSON.stringify({ migrationDir: 'db', environments: { prod: { url: 5, protected: 'yes' }, staging: { url: '' } } }));
    const e = configError(() => parseConfig(file));
    assert.match(e.message, new RegExp(`invalid ${file.replace(/[.]/g, '\\.')}:`));
    assert.match(e.message, /\(root\): Unrecognized key: "migrationDir"/);
    assert.match(e.message, /environments\.prod\.url: /);
    assert.match(e.message, /environments\.prod\.protected: must be true or false/);
    assert.match(e.message, /environments\.staging\.url: must be a non-empty string/);
    assert.equal(e.details.file, file);
    assert.match(e.fix ?? '', /belay\.config\.schema\.json/);
    writeFileSync(file, '{"environments": {');
    assert.match(configError(() => parseConfig(file)).message, /cannot read .*belay\.config\.json/);
  });

  test('migrationsDir is relative to the file, found from a subfolder; without a file it is ./migrations', () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'belay.config.json'), JSON.stringify({ migrationsDir: 'db/data' }));
    mkdirSync(path.join(dir, 'src', 'deep'), { recursive: true });
    const cfg = loadProjectConfig(path.join(dir, 'src', 'deep'));
    assert.equal(cfg.migrationsDir, path.join(dir, 'db', 'data'));
    const bare = tmp();
    assert.equal(loadProjectConfig(bare).migrationsDir, path.join(bare, 'migrations'));
  });

  test('the command line says the same and exits 2, with nothing written', async () => {
    const dir = tmp();
    writeFileSync(path.join(dir, 'belay.config.json'), JSON.stringify({ environments: { prod: { url: 'pglite:memory', protectd: true } } }));
    const r = await runCli(['status', '--db', 'pglite:memory'], { cwd: dir });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error \[BELAY_CONFIG\]: invalid .*belay\.config\.json:\n\s+environments\.prod: Unrecognized key: "protectd"/);
  });
});

describe('.env files as Prisma reads them', () => {
  test('./.env then prisma/.env; the real environment is never replaced; $NAME and braced names expand, in any order', () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'prisma'));
    writeFileSync(
      path.join(dir, '.env'),
      `DATABASE_URL="postgres://app@\${DB_HOST}/\${DB_NAME}"\nSHARED=same\nREAL=from-file\nDB_HOST=$HOST_OF_DB\nHOST_OF_DB=db\n`,
    );
    writeFileSync(path.join(dir, 'prisma', '.env'), 'DB_NAME=shop\nSHARED=same\nPRICE=\\$5\n');
    const env: NodeJS.ProcessEnv = { REAL: 'from-shell', EMPTY: '' };
    const r = loadEnvFiles(dir, env);
    assert.deepEqual(r.files, [path.join(dir, '.env'), path.join(dir, 'prisma', '.env')]);
    assert.equal(env.DATABASE_URL, 'postgres://app@db/shop');
    assert.equal(env.REAL, 'from-shell');
    assert.equal(env.PRICE, '$5');
    assert.deepEqual(r.set.sort(), ['DATABASE_URL', 'DB_HOST', 'DB_NAME', 'HOST_OF_DB', 'PRICE', 'SHARED']);
  });

  test('one variable with two values in both files is refused, as Prisma refuses it', () => {
    const dir = tmp();
    mkdirSync(path.join(dir, 'prisma'));
    writeFileSync(path.join(dir, '.env'), 'DATABASE_URL=postgres://a@h/one\n');
    writeFileSync(path.join(dir, 'prisma', '.env'), 'DATABASE_URL=postgres://a@h/two\n');
    const e = configError(() => loadEnvFiles(dir, {}));
    assert.match(e.message, /conflict between env vars in .*\.env and .*prisma\/\.env: DATABASE_URL/);
    assert.match(e.fix ?? '', /move the contents of prisma\/\.env to \.env/);
  });
});

describe('finding a migration', () => {
  test('by path, by folder name, by the id its folder gives, by the id it declares; a miss lists what exists', async () => {
    const dir = tmp();
    initProject(dir, { now: new Date('2026-01-02T03:04:05Z') });
    const cfg = loadProjectConfig(dir);
    const made = newMigration(cfg, 'fill-owner', new Date('2026-02-03T04:05:06Z'));
    assert.equal(made.path, path.join(dir, 'migrations', '20260203040506_fill-owner', 'migration.ts'));
    writeFileSync(
      path.join(dir, 'migrations', 'legacy.ts'),
      "export default { id: 'renamed-later', purpose: 'x', tables: ['t'], steps: [{ kind: 'sql', name: 's', up: 'SELECT 1', down: null }] };\n",
    );
    assert.equal(await findMigration('fill-owner', cfg), made.path);
    assert.equal(await findMigration('20260203040506_fill-owner', cfg), made.path);
    assert.equal(await findMigration(path.join(dir, 'migrations', '20260203040506_fill-owner'), cfg), made.path);
    assert.equal(await findMigration('renamed-later', cfg), path.join(dir, 'migrations', 'legacy.ts'));
    assert.equal(await findMigration('legacy', cfg), path.join(dir, 'migrations', 'legacy.ts'));
    await assert.rejects(findMigration('nothing-such', cfg), (e: unknown) => {
      assert.ok(e instanceof BelayError && e.code === 'BELAY_SPEC');
      assert.match(e.message, /migration not found: nothing-such/);
      assert.match(e.fix ?? '', /20260102030405_example-lower-case-emails, 20260203040506_fill-owner, legacy\.ts/);
      return true;
    });
    assert.throws(() => newMigration(cfg, 'legacy'), /a migration named "legacy" exists/);
  });
});

test('belay status reads the newest run of each id: a run whose step fails on the server is failed (PGlite)', async () => {
  await withDb('pglite', async (f) => {
    await f.db.exec(`CREATE TABLE users (id int PRIMARY KEY, email text); INSERT INTO users SELECT g, 'A' || g || '@x.org' FROM generate_series(1, 50) g;`);
    const dir = tmp();
    initProject(dir);
    const cfg = loadProjectConfig(dir);
    writeFileSync(
      path.join(dir, 'migrations', 'broken.ts'),
      `export default { id: 'broken', purpose: 'A step that divides by zero on the server.', tables: ['users'],
        steps: [{ kind: 'sql', name: 'boom', up: 'UPDATE users SET email = email || (1 / (id - id))::text', down: null }] };\n`,
    );
    const r = await safeApply(f.db, await loadMigration(await findMigration('broken', cfg)), {});
    assert.equal(r.status, 'failed', r.error?.message ?? '');
    assert.deepEqual(
      (await migrationStatus(cfg, f.db)).map((m) => [m.id, m.state, m.run]),
      [
        ['example-lower-case-emails', 'pending', null],
        ['broken', 'failed', r.runId],
      ],
    );
  });
});
