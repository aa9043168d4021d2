// belay prisma check against the corpus of test/fixtures/prisma, on the server and on PGlite. For every case:
// on the failing seed, the predictor finds its failure at the right statement and line with the exact count,
// and the check changes nothing (rows and catalog fingerprinted before and after); the file, sent the way
// Prisma sends it, really fails with the expected SQLSTATE. On the passing state the check says nothing
// blocking and the file really runs.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { prismaCheck, type PrismaCheckReport } from '../src/prisma/check.ts';
import { FINDINGS, type FindingCode } from '../src/prisma/predictors/registry.ts';
import { DB_KINDS, type FreshDb } from './helpers/fresh-db.ts';
import { applyAsPrisma, type Case, cases, type ExpectedFinding, FIXTURES, fingerprint, folders, runLikePrisma, script } from './helpers/prisma.ts';
import { withDb } from './helpers/fixture.ts';

const blocking = (r: PrismaCheckReport) => r.findings.filter((f) => f.severity === 'error');

function assertFindings(r: PrismaCheckReport, expected: readonly ExpectedFinding[], migration: string, label: string): void {
  for (const e of expected) {
    const f = r.findings.find((x) => x.code === e.code && x.statement === e.statement && x.migration === migration);
    assert.ok(f, `${label}: ${e.code} at statement ${e.statement}; got ${JSON.stringify(r.findings.map((x) => [x.code, x.statement, x.count, x.message]))}`);
    assert.equal(f.line, e.line, `${label}: ${e.code} line`);
    assert.equal(f.count, e.count, `${label}: ${e.code} count (${f.message})`);
  }
  // nothing else is reported as a failure or a warning: a false positive blocks a deploy that would work
  const unexpected = r.findings.filter((f) => f.severity !== 'info' && !expected.some((e) => e.code === f.code && e.statement === f.statement));
  assert.deepEqual(
    unexpected.map((f) => `${f.code}: ${f.message}`),
    [],
    `${label}: unexpected findings`,
  );
}

async function setUp(db: Db, c: Case): Promise<void> {
  await applyAsPrisma(
    db,
    c,
    folders(c).filter((n) => !c.pending.includes(n)),
  );
  await db.exec(c.failSql);
}

for (const kind of DB_KINDS) {
  describe(`prisma check corpus (${kind})`, () => {
    for (const c of cases().filter((x) => !x.kinds || x.kinds.includes(kind))) {
      const pending = c.pending[c.pending.length - 1]!;
      test(`${c.name}: ${c.fail.findings.map((f) => f.code).join(', ')} on the failing seed, nothing blocking once fixed`, async () => {
        await withDb(kind, async (f) => {
          await setUp(f.db, c);
          const before = await fingerprint(f.db);
          const fail = await prismaCheck(f.db, { dir: c.migrations });
          assert.deepEqual(fail.status.pending, c.pending);
          assertFindings(fail, c.fail.findings, pending, 'failing seed');
          assert.equal(fail.ok, !c.fail.findings.some((e) => FINDINGS[e.code as FindingCode].severity === 'error'), 'ok unless an error is expected');
          assert.equal(await fingerprint(f.db), before, 'the check changed nothing');
          // ground truth: Prisma's way of running the file
          for (const name of c.pending)
            assert.equal(await runLikePrisma(f.db, script(c, name)), name === pending ? c.fail.sqlstate : null, `${name} run as Prisma runs it`);
          // the passing state: from the same database when the failed run rolled back, else from a new one
          const changed = c.halfApplied || c.fail.sqlstate === null;
          const passingState = async (p: FreshDb) => {
            if (changed) await setUp(p.db, c);
            else assert.equal(await fingerprint(f.db), before, 'the failed run rolled back');
            await p.db.exec(c.passSql);
            const pass = await prismaCheck(p.db, { dir: c.migrations });
            assert.ok(pass.ok, `passing state: ${JSON.stringify(blocking(pass).map((x) => x.message))}`);
            assertFindings(pass, c.pass.findings ?? [], pending, 'passing state');
            for (const name of c.pending) assert.equal(await runLikePrisma(p.db, script(c, name)), null, `${name} runs on the passing state`);
          };
          if (changed) await withDb(kind, passingState);
          else await passingState(f);
        });
      });
    }
  });
}

interface StaticCase {
  findings: Array<ExpectedFinding & { migration: string }>;
  failing: string;
  sqlstate: string;
}
const STATIC = path.join(path.dirname(FIXTURES), 'prisma-static');

for (const kind of DB_KINDS) {
  describe(`prisma check static hazards (${kind})`, () => {
    for (const name of readdirSync(STATIC)) {
      const dir = path.join(STATIC, name);
      const e = JSON.parse(readFileSync(path.join(dir, 'expect.json'), 'utf8')) as StaticCase;
      test(`${name}: ${e.findings.map((x) => x.code).join(', ')}, whatever the data`, async () => {
        await withDb(kind, async (f) => {
          const r = await prismaCheck(f.db, { dir: path.join(dir, 'migrations') });
          for (const x of e.findings) {
            const got = r.findings.find((y) => y.code === x.code && y.migration === x.migration && y.statement === x.statement);
            assert.ok(got, `${x.code}: ${JSON.stringify(r.findings.map((y) => [y.code, y.migration, y.statement]))}`);
            assert.equal(got.line, x.line);
          }
          assert.equal(r.ok, false);
          const names = readdirSync(path.join(dir, 'migrations')).sort((a, b) => a.localeCompare(b));
          for (const n of names) {
            const s = readFileSync(path.join(dir, 'migrations', n, 'migration.sql'), 'utf8');
            assert.equal(await runLikePrisma(f.db, s), n === e.failing ? e.sqlstate : null, `${n} run as Prisma runs it`);
            if (n === e.failing) break;
          }
        });
      });
    }
  });
}
