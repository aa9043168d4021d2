// The package as a user gets it: `npm pack`, the tarball installed into a fresh project (dependencies from
// the npm cache), then imported from plain ESM and CommonJS, type-checked by strict TypeScript projects, and
// its `belay` command run on migrations written in the user's project, on PGlite.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as source from '../src/index.ts';
import { ROOT } from './helpers/flagship.ts';
import { pgliteTemplate } from './helpers/fresh-db.ts';

const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const PGLITE = JSON.parse(readFileSync(path.join(ROOT, 'node_modules/@electric-sql/pglite/package.json'), 'utf8')) as { version: string };
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, env: { ...process.env, DATABASE_URL: '', NO_COLOR: '1' }, maxBuffer: 32 << 20 }, (err, stdout, stderr) => {
      resolve({ code: err ? (((err as { code?: unknown }).code as number) ?? 1) : 0, stdout, stderr });
    });
  });
}

/** Runs a command and fails the test with its output unless it exits 0. */
async function ok(file: string, args: string[], cwd: string): Promise<string> {
  const r = await run(file, args, cwd);
  assert.equal(r.code, 0, `${file} ${args.join(' ')} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const belay = (args: string[]) => run('npx', ['belay', ...args], app);

function write(file: string, text: string): void {
  mkdirSync(path.dirname(path.join(app, file)), { recursive: true });
  writeFileSync(path.join(app, file), text);
}

let tmp: string;
let app: string;
let packed: { path: string }[];

describe(`the ${PKG.name} package`, () => {
  before(async () => {
    tmp = mkdtempSync(path.join(tmpdir(), 'belay-package-'));
    app = path.join(tmp, 'app');
    // npm pack builds dist/ first (prepare)
    const info = JSON.parse(await ok('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmp], ROOT)) as {
      filename: string;
      files: { path: string }[];
    }[];
    packed = info[0]!.files;
    write('package.json', JSON.stringify({ name: 'app', private: true, type: 'module' }));
    await ok(
      'npm',
      [
        'install',
        '--prefer-offline',
        '--no-audit',
        '--no-fund',
        '--loglevel=error',
        path.join(tmp, info[0]!.filename),
        `@electric-sql/pglite@${PGLITE.version}`,
      ],
      app,
    );
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  test('the tarball holds the built code, its types, the command, the JSON Schemas, README and LICENSE; no sources, tests, benchmarks, reliability suite or CI', () => {
    const files = packed.map((f) => f.path);
    for (const f of [
      'package.json',
      'README.md',
      'LICENSE',
      'bin/belay.mjs',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/cli/main.js',
      'dist/examples/event-type-owner/schema.sql',
      'schemas/migration.schema.json',
      'schemas/belay.config.schema.json',
      'schemas/events.schema.json',
    ]) {
      assert.ok(files.includes(f), `${f} is in the tarball`);
    }
    const unwanted = files.filter(
      (f) =>
        /^(src|test|bench|reliability|scripts|\.ci|docs|examples|node_modules)\/|\.test\.|(^|\/)tsconfig/.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    assert.deepEqual(unwanted, []);
  });

  test('plain Node ESM imports every export of the library', async () => {
    write(
      'esm.mjs',
      `import * as belay from '${PKG.name}';
      console.log(JSON.stringify({ names: Object.keys(belay).sort(), redacted: belay.redactUrl('postgres://u:secret@h/db') }));`,
    );
    const out = JSON.parse(await ok(process.execPath, ['esm.mjs'], app)) as { names: string[]; redacted: string };
    assert.deepEqual(out.names, Object.keys(source).sort());
    assert.equal(out.redacted, source.redactUrl('postgres://u:secret@h/db'));
  });

  test('CommonJS require()s the same module (one copy of each error class), and a CommonJS project loads it', async () => {
    write(
      'cjs.cjs',
      `const belay = require('${PKG.name}');
      import('${PKG.name}').then((esm) => console.log(JSON.stringify({
        names: Object.keys(belay).filter((k) => k !== '__esModule' && k !== 'module.exports').sort(),
        same: esm.SpecError === belay.SpecError && esm.openDb === belay.openDb,
      })));`,
    );
    const out = JSON.parse(await ok(process.execPath, ['cjs.cjs'], app)) as { names: string[]; same: boolean };
    assert.deepEqual(out.names, Object.keys(source).sort());
    assert.equal(out.same, true);
  });

  test('strict TypeScript projects type-check against the package with zero errors: nodenext, bundler, and CommonJS under nodenext', async () => {
    write(
      'use.ts',
      `import { type BelayEvent, BelayError, type Db, type LoadedMigration, type MigrationInput, defineMigration, openDb, rollback, safeApply, SpecError } from '${PKG.name}';

      const spec: MigrationInput = defineMigration({
        id: 'typed', purpose: 'typed use of the library', tables: ['t'],
        steps: [{ kind: 'batched', name: 'fill', table: 't', writes: ['v'], projection: 'SELECT id, w * 2 AS v FROM t WHERE id BETWEEN $1 AND $2' }],
      });
      // @ts-expect-error a migration needs an id: the types are real, not any
      defineMigration({ purpose: 'no id', tables: [], steps: [] });

      export async function run(m: LoadedMigration): Promise<string> {
        const db: Db = await openDb('pglite:memory');
        try {
          const events: BelayEvent['type'][] = [];
          const r = await safeApply(db, m, { onEvent: (e) => events.push(e.type) });
          if (r.error) return r.error.code + ': ' + r.error.message;
          const back = await rollback(db, r.runId);
          return spec.id + ' ' + events.length + ' ' + back.status;
        } catch (err) {
          if (err instanceof SpecError) return err.code;
          if (err instanceof BelayError) return err.fix ?? err.message;
          throw err;
        } finally {
          await db.close();
        }
      }
    `,
    );
    write(
      'use-cjs.cts',
      `import { defineMigration, openDb, type Db } from '${PKG.name}';
      import belay = require('${PKG.name}');

      export async function open(): Promise<Db> {
        defineMigration({ id: 'c', purpose: 'from CommonJS', tables: [], steps: [] });
        return belay.openDb === openDb ? openDb('pglite:memory') : Promise.reject(new Error('two copies'));
      }
    `,
    );
    // no @types/node in the project and skipLibCheck off: the package's declarations must stand on their own
    const base = { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', types: [] };
    const projects = {
      nodenext: { compilerOptions: { ...base, module: 'nodenext', moduleResolution: 'nodenext' }, files: ['use.ts'] },
      bundler: { compilerOptions: { ...base, module: 'esnext', moduleResolution: 'bundler' }, files: ['use.ts'] },
      'cjs-nodenext': { compilerOptions: { ...base, module: 'nodenext', moduleResolution: 'nodenext' }, files: ['use-cjs.cts'] },
    };
    for (const [name, config] of Object.entries(projects)) {
      write(`tsconfig.${name}.json`, JSON.stringify(config));
      const r = await run(process.execPath, [TSC, '-p', `tsconfig.${name}.json`], app);
      assert.equal(r.code, 0, `tsc (${name}) reports errors:\n${r.stdout}${r.stderr}`);
    }
  });

  test('npx belay --help and --version run the built command', async () => {
    const help = await belay(['--help']);
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: belay \[options\] \[command\]/);
    for (const c of ['apply', 'rollback', 'check', 'demo']) assert.match(help.stdout, new RegExp(`\\n  ${c}\\b`));
    const version = await belay(['--version']);
    assert.equal(version.stdout.trim(), PKG.version);
  });

  test('migrations written in the project, in TypeScript and in CommonJS, apply and roll back on PGlite', async () => {
    // the folder starts from a dumped fresh PGlite instead of its initdb (seconds)
    writeFileSync(path.join(app, 'template.tar'), Buffer.from(await (await pgliteTemplate()).arrayBuffer()));
    write(
      'inspect.mjs',
      `import { readFileSync } from 'node:fs';
      import { checksumTable, openDb } from '${PKG.name}';
      const db = await openDb('pglite:./db', process.argv[2] === 'seed' ? { pgliteTemplate: new Blob([readFileSync('template.tar')]) } : {});
      if (process.argv[2] === 'seed') await db.exec('CREATE TABLE t (id int PRIMARY KEY, w int NOT NULL, v int, u int); INSERT INTO t SELECT g, g, NULL, NULL FROM generate_series(1, 500) g');
      const c = await checksumTable(db, 't');
      const n = (await db.query('SELECT count(*) FILTER (WHERE v = w * 2)::int AS v, count(*) FILTER (WHERE u = w + 1)::int AS u FROM t')).rows[0];
      await db.close();
      console.log(JSON.stringify({ checksum: c.checksum, ...n }));`,
    );
    write(
      'migrations/fill-v/migration.ts',
      `import { defineMigration } from '${PKG.name}';

      export default defineMigration({
        id: 'fill-v', purpose: 'v from w, in TypeScript', tables: ['t'],
        steps: [{ kind: 'batched', name: 'fill', table: 't', writes: ['v'], projection: 'SELECT id, w * 2 AS v FROM t WHERE id BETWEEN $1 AND $2' }],
      });
    `,
    );
    write(
      'migrations/fill-u/migration.cjs',
      `const { defineMigration } = require('${PKG.name}');

      module.exports = defineMigration({
        id: 'fill-u', purpose: 'u from w, in CommonJS', tables: ['t'],
        steps: [{ kind: 'batched', name: 'fill', table: 't', writes: ['u'], projection: 'SELECT id, w + 1 AS u FROM t WHERE id BETWEEN $1 AND $2' }],
      });
    `,
    );
    const inspect = async (arg?: string) =>
      JSON.parse(await ok(process.execPath, ['inspect.mjs', ...(arg ? [arg] : [])], app)) as { checksum: string; v: number; u: number };
    const before = await inspect('seed');
    assert.deepEqual([before.v, before.u], [0, 0]);
    for (const m of ['migrations/fill-v', 'migrations/fill-u']) {
      const r = await belay(['apply', m, '--db', 'pglite:./db']);
      assert.equal(r.code, 0, `apply ${m}:\n${r.stdout}${r.stderr}`);
    }
    const applied = await inspect();
    assert.deepEqual([applied.v, applied.u], [500, 500]);
    for (const runId of ['2', '1']) {
      const r = await belay(['rollback', runId, '--db', 'pglite:./db']);
      assert.equal(r.code, 0, `rollback ${runId}:\n${r.stdout}${r.stderr}`);
    }
    const back = await inspect();
    assert.deepEqual(back, before);
  });

  test('belay demo runs from the package, with the built-in checks in its runbook', async () => {
    const r = await belay(['demo', '--rows', '300', '--out', 'demo-out']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const runbook = readFileSync(path.join(app, 'demo-out/RUNBOOK.md'), 'utf8');
    assert.match(runbook, /### Built-in check kinds[\s\S]*`unique-after`/);
  });

  test('a pglite: URL without the optional @electric-sql/pglite says how to install it, exit 4', async () => {
    const dir = path.join(app, 'node_modules/@electric-sql/pglite');
    renameSync(dir, `${dir}.away`);
    try {
      const r = await belay(['status', '--db', 'pglite:./db']);
      assert.equal(r.code, source.EXIT.connection, r.stdout + r.stderr);
      assert.match(r.stderr, /@electric-sql\/pglite, which is not installed/);
      assert.match(r.stderr, /npm install @electric-sql\/pglite/);
      const server = await belay(['--help']);
      assert.equal(server.code, 0, 'the command works without PGlite');
    } finally {
      renameSync(`${dir}.away`, dir);
    }
  });
});
