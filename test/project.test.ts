// A new project as a user makes it, through the real command line in a temporary folder: belay init, belay
// new, belay status, the example applied by its id (DATABASE_URL from .env), rolled back, and the states
// status reads from belay's tables along the way; on the server and on PGlite.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { openDb } from '../src/db/connection.ts';
import type { MigrationStatus } from '../src/run/migrations.ts';
import { runCli } from './helpers/cli.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';

const USERS = `CREATE TABLE users (id int PRIMARY KEY, email text UNIQUE);
  INSERT INTO users SELECT g, CASE WHEN g % 3 = 0 THEN 'User' || g || '@Example.COM' WHEN g % 7 = 0 THEN NULL ELSE 'user' || g || '@example.com' END
    FROM generate_series(1, 300) g;`;
const MIXED_CASE = `SELECT count(*)::int AS n FROM users WHERE email <> lower(email)`;

/** Every file under dir with its text: what a second belay init must leave exactly as it was. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = path.join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = readFileSync(p, 'utf8');
    }
  };
  walk(dir);
  return out;
}

async function status(cwd: string): Promise<MigrationStatus[]> {
  const r = await runCli(['status', '--json'], { cwd });
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { migrations: MigrationStatus[] }).migrations;
}

for (const kind of DB_KINDS) {
  test(`init → new → status → apply by id → rollback → status, in a new project folder through the CLI (${kind})`, async () => {
    const cwd = mkdtempSync(path.join(tmpdir(), 'belay-project-'));
    try {
      await withDb(
        kind,
        async (f) => {
          writeFileSync(path.join(cwd, '.gitignore'), 'node_modules/\n.env');
          const init = await runCli(['init'], { cwd });
          assert.equal(init.code, 0, init.stderr);
          assert.match(init.stdout, /^created +belay\.config\.json: migrationsDir "migrations"/m);
          assert.match(init.stdout, /^created +migrations\/\d{14}_example-lower-case-emails\/migration\.ts/m);
          assert.match(init.stdout, /^appended +\.gitignore: belay-backups\/, belay-demo-out\/ \(already there: \.env\)/m);
          assert.equal(readFileSync(path.join(cwd, '.gitignore'), 'utf8'), 'node_modules/\n.env\n\n# belay\nbelay-backups/\nbelay-demo-out/\n');
          const config = JSON.parse(readFileSync(path.join(cwd, 'belay.config.json'), 'utf8'));
          assert.deepEqual(config, { $schema: './node_modules/belay-pg/schemas/belay.config.schema.json', migrationsDir: 'migrations', environments: {} });

          // idempotent: nothing overwritten, each file said skipped with why
          const before = snapshot(cwd);
          const again = await runCli(['init'], { cwd });
          assert.equal(again.code, 0, again.stderr);
          assert.match(again.stdout, /^skipped +belay\.config\.json: exists/m);
          assert.match(again.stdout, /^skipped +migrations: holds 1 migration\(s\): no example added/m);
          assert.match(again.stdout, /^skipped +\.gitignore: already ignores/m);
          assert.deepEqual(snapshot(cwd), before);

          const bad = await runCli(['new', 'Fill Owner!'], { cwd });
          assert.equal(bad.code, 2, bad.stderr);
          assert.match(bad.stderr, /"Fill Owner!" is not a migration name[^\n]*\n\s+what to do: Write belay new fill-owner/);
          const made = await runCli(['new', 'fill-owner'], { cwd });
          assert.equal(made.code, 0, made.stderr);
          const folder = /migrations\/(\d{14}_fill-owner)\/migration\.ts/.exec(made.stdout)?.[1];
          assert.ok(folder, made.stdout);
          const taken = await runCli(['new', 'fill-owner'], { cwd });
          assert.equal(taken.code, 2);
          assert.match(taken.stderr, /a migration named "fill-owner" exists: .*_fill-owner/);
          assert.deepEqual(Object.keys(snapshot(cwd)).filter((p) => p.includes('fill-owner')).length, 1, 'the taken name wrote nothing');

          // no database yet: the folder is listed, the states unknown; the scaffold refuses to load until written
          const offline = await runCli(['status'], { cwd });
          assert.equal(offline.code, 0, offline.stderr);
          assert.match(offline.stdout, /example-lower-case-emails +unknown/);
          assert.match(offline.stdout, /_fill-owner +fill-owner +invalid/);
          assert.match(offline.stdout, /purpose: must say in a sentence or more/);
          assert.match(offline.stderr, /no database given/);

          await f.db.exec(USERS);
          if (kind === 'pglite') await f.db.close(); // one process at a time opens a PGlite folder
          writeFileSync(path.join(cwd, '.env'), `DATABASE_URL=${f.url}\n`);
          const file = path.join(cwd, 'migrations', folder, 'migration.ts');
          writeFileSync(file, readFileSync(file, 'utf8').replace('purpose: ""', "purpose: 'Lower-case the e-mail addresses again, for the rows added since.'"));
          assert.deepEqual(
            (await status(cwd)).map((m) => [m.id, m.state]),
            [
              ['example-lower-case-emails', 'pending'],
              ['fill-owner', 'pending'],
            ],
          );

          const applied = await runCli(['apply', 'example-lower-case-emails'], { cwd });
          assert.equal(applied.code, 0, applied.stdout + applied.stderr);
          assert.match(applied.stdout, /run 1 completed/);
          const byFolder = await runCli(['apply', folder], { cwd });
          assert.equal(byFolder.code, 0, byFolder.stdout + byFolder.stderr);
          const s = await status(cwd);
          assert.deepEqual(
            s.map((m) => [m.id, m.state, m.run, m.changed]),
            [
              ['example-lower-case-emails', 'applied', 1, false],
              ['fill-owner', 'applied', 2, false],
            ],
          );
          assert.match(s[0]!.at!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
          let db = await openDb(f.url);
          assert.equal((await db.query<{ n: number }>(MIXED_CASE)).rows[0]!.n, 0, 'every address lower-cased');
          await db.close();

          const rolled = await runCli(['rollback', '1'], { cwd });
          assert.equal(rolled.code, 0, rolled.stdout + rolled.stderr);
          writeFileSync(file, readFileSync(file, 'utf8').replace('again, for the rows added since', 'once more, for the rows added since'));
          const text = await runCli(['status'], { cwd });
          assert.equal(text.code, 0, text.stderr);
          assert.match(text.stdout, /example-lower-case-emails +example-lower-case-emails +rolled back +1/);
          assert.match(text.stdout, /fill-owner +fill-owner +applied \(file changed since\) +2/);
          assert.match(text.stdout, /runs in .*:\nrun +migration +status/);
          db = await openDb(f.url);
          assert.equal((await db.query<{ n: number }>(MIXED_CASE)).rows[0]!.n, 100, 'the rollback put the mixed-case addresses back');
          await db.close();
        },
        { persistent: true },
      );
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
}

test('a Prisma URL: DATABASE_URL from prisma/.env, its ?schema= honoured as the search path (server)', async () => {
  const cwd = mkdtempSync(path.join(tmpdir(), 'belay-project-'));
  try {
    await withDb('postgres', async (f) => {
      await f.db.exec(`CREATE TABLE users (id int PRIMARY KEY, email text);
      CREATE SCHEMA app; SET search_path TO app; ${USERS} RESET search_path;
      INSERT INTO public.users VALUES (1, 'Public@Example.COM');`);
      assert.equal((await runCli(['init'], { cwd })).code, 0);
      const prisma = path.join(cwd, 'prisma');
      mkdirSync(prisma);
      writeFileSync(path.join(prisma, '.env'), `APP_SCHEMA=app\nDATABASE_URL="${f.url}?schema=\${APP_SCHEMA}"\n`);
      const r = await runCli(['apply', 'example-lower-case-emails'], { cwd });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal((await f.db.query<{ n: number }>(MIXED_CASE.replace('users', 'app.users'))).rows[0]!.n, 0, 'app.users written');
      assert.equal((await f.db.query<{ e: string }>(`SELECT email AS e FROM public.users`)).rows[0]!.e, 'Public@Example.COM', 'public.users untouched');
      // the real environment wins over both files
      await withDb('postgres', async (other) => {
        const real = await runCli(['status', '--json'], { cwd, env: { DATABASE_URL: other.url } });
        assert.equal(real.code, 0, real.stderr);
        const out = JSON.parse(real.stdout) as { runs: unknown[]; migrations: MigrationStatus[] };
        assert.deepEqual(out.runs, []);
        assert.deepEqual(
          out.migrations.map((m) => m.state),
          ['pending'],
        );
      });
    });
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
