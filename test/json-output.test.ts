// Machine output (issue 17): every --json line has a type and the version v and validates against the published
// JSON Schema (schemas/events.schema.json, generated from the event schemas); timestamps are ISO 8601 UTC
// everywhere; errors are JSON too; report --json and --format json are JSON. Real output of the command on PGlite.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { EVENTS_SCHEMA_FILE, generated } from '../scripts/schemas.ts';
import { openDb } from '../src/db/connection.ts';
import { EXIT } from '../src/errors.ts';
import { EVENT_SCHEMAS } from '../src/state/event-schema.ts';
import { runCli } from './helpers/cli.ts';
import { ROOT } from './helpers/flagship.ts';

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
/** Anything that looks like a date and a time, in whatever form (zone-less, `+00`, a space between). */
const LOOKS_LIKE_TIME = /^\d{4}-\d\d-\d\d[ T]\d\d:\d\d/;

const SCHEMA_FILE = path.join(ROOT, 'schemas', EVENTS_SCHEMA_FILE);

function validator() {
  const ajv = new Ajv2020({ allErrors: true, strict: false });
  addFormats.default(ajv);
  return ajv.compile(JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')));
}

/** Every timestamp anywhere in a value, with its path. */
function timestamps(v: unknown, at = '$'): Array<[string, string]> {
  if (typeof v === 'string') return LOOKS_LIKE_TIME.test(v) ? [[at, v]] : [];
  if (Array.isArray(v)) return v.flatMap((x, i) => timestamps(x, `${at}[${i}]`));
  if (v && typeof v === 'object') return Object.entries(v).flatMap(([k, x]) => timestamps(x, `${at}.${k}`));
  return [];
}

/** Parses --json output: every line one object that the published schema accepts, with ISO UTC timestamps. */
function lines(stdout: string, validate: ReturnType<typeof validator>): Array<Record<string, unknown>> {
  const out = stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const l of out) {
    assert.equal(typeof l.type, 'string', JSON.stringify(l).slice(0, 200));
    assert.equal(l.v, 1, `${l.type}: the version field`);
    assert.ok(validate(l), `${l.type} does not match schemas/events.schema.json: ${JSON.stringify(validate.errors?.slice(0, 3))}`);
    for (const [where, t] of timestamps(l)) assert.match(t, ISO_UTC, `${l.type} ${where}: ${t} is not ISO 8601 UTC`);
  }
  return out;
}

// test/schemas.test.ts fails when the committed file is not what npm run schemas writes
test('schemas/events.schema.json lists every event the BelayEvent union has, and the error line', () => {
  const schema = JSON.parse(generated()[`schemas/${EVENTS_SCHEMA_FILE}`]!) as { oneOf: Array<{ properties?: { type?: { const?: string } } }> };
  const listed = schema.oneOf.flatMap((s) => (s.properties?.type?.const ? [s.properties.type.const] : []));
  assert.deepEqual(listed, [...EVENT_SCHEMAS.map((s) => s.shape.type.value), 'error']);
});

test('pglite: apply, rollback, status and report --json: every line typed, versioned, valid against the published schema, ISO UTC times', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-json-'));
  try {
    const url = `pglite:${path.join(dir, 'db')}`;
    const db = await openDb(url);
    await db.exec(`CREATE TABLE work (id int PRIMARY KEY, w int NOT NULL, out int);
      INSERT INTO work SELECT g, g, NULL FROM generate_series(1, 250) g;`);
    await db.close();
    writeFileSync(
      path.join(dir, 'migration.ts'),
      `export default ${JSON.stringify({
        id: 'fill-out',
        purpose: 'Fill work.out from work.w (JSON output test).',
        tables: ['work'],
        steps: [{ kind: 'batched', name: 'fill', table: 'work', writes: ['out'], decide: 'SELECT id, w * 2 AS out FROM work WHERE out IS NULL' }],
      })};`,
    );
    const validate = validator();
    const applied = await runCli(['apply', path.join(dir, 'migration.ts'), '--db', url, '--batch-size', '100', '--json']);
    assert.equal(applied.code, EXIT.ok, applied.stderr);
    const a = lines(applied.stdout, validate);
    const types = a.map((l) => l.type);
    for (const t of ['run-started', 'backup-taken', 'step-started', 'batch-committed', 'step-finished', 'run-finished', 'result'])
      assert.ok(types.includes(t), `apply printed ${t}`);
    assert.equal(types.filter((t) => t === 'batch-committed').length, 3);
    const runId = a.at(-1)!.runId as number;

    const rolled = await runCli(['rollback', String(runId), '--db', url, '--json']);
    assert.equal(rolled.code, EXIT.ok, rolled.stderr);
    const r = lines(rolled.stdout, validate);
    for (const t of ['rollback-started', 'rollback-batch', 'rollback-finished', 'result'])
      assert.ok(
        r.some((l) => l.type === t),
        `rollback printed ${t}`,
      );

    const status = await runCli(['status', '--db', url, '--json']);
    assert.equal(status.code, EXIT.ok, status.stderr);
    const [s] = lines(status.stdout, validate);
    assert.ok(timestamps(s).length >= 2, 'status lists when the run started and finished');

    const reported = await runCli(['report', String(runId), '--db', url, '--json']);
    assert.equal(reported.code, EXIT.ok, reported.stderr);
    const rep = lines(reported.stdout, validate);
    assert.equal(rep.length, 1, 'report --json is one line');
    assert.equal(rep[0]!.type, 'report');
    assert.equal((rep[0]!.run as { id: number }).id, runId);

    const doc = await runCli(['report', String(runId), '--db', url, '--format', 'json']);
    assert.equal(doc.code, EXIT.ok, doc.stderr);
    const parsed = JSON.parse(doc.stdout) as { run: { startedAt: string; status: string } };
    assert.equal(parsed.run.status, 'rolled_back');
    for (const [where, t] of timestamps(parsed)) assert.match(t, ISO_UTC, `report ${where}: ${t}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('errors are JSON with --json: usage errors, unknown commands and failures carry code, exit code, message and what to do', async () => {
  const validate = validator();
  const cases: Array<[string[], number, string]> = [
    [['apply', '--json'], EXIT.usage, 'BELAY_USAGE'],
    [['frobnicate', '--json'], EXIT.usage, 'BELAY_USAGE'],
    [['report', 'x1', '--json'], EXIT.usage, 'BELAY_USAGE'],
    [['status', '--db', 'mysql://h/db', '--json'], EXIT.connection, 'BELAY_CONNECTION'],
  ];
  for (const [args, exit, code] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, exit, `${args.join(' ')}: ${r.stderr}`);
    const out = lines(r.stdout, validate);
    const e = out.at(-1)!;
    assert.equal(e.type, 'error', args.join(' '));
    assert.equal(e.code, code, args.join(' '));
    assert.equal(e.exitCode, exit);
    assert.ok(String(e.message).length > 5 && String(e.fix).length > 5, JSON.stringify(e));
  }
});
