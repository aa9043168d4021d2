// belay prisma check / deploy as a user runs them: exit codes (0, 6, 2), --json, DATABASE_URL from .env,
// --plan, and a deploy after which the check has nothing pending.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { runCli } from './helpers/cli.ts';
import { applyAsPrisma, cases, fingerprint, folders } from './helpers/prisma.ts';
import { withDb } from './helpers/fixture.ts';

test('belay prisma check and deploy on the server: exit 6 with the rows, exit 0 once fixed, deploy, nothing pending after', async () => {
  const c = cases().find((x) => x.name === 'unique-index')!;
  await withDb('postgres', async (f) => {
    await applyAsPrisma(
      f.db,
      c,
      folders(c).filter((n) => !c.pending.includes(n)),
    );
    await f.db.exec(c.failSql);
    const fail = await runCli(['prisma', 'check', c.migrations, '--db', f.url]);
    assert.equal(fail.code, 6, fail.stderr);
    assert.match(fail.stdout, /ERROR PRISMA_DUPLICATE_KEYS \(5\) \[SQLSTATE 23505\]/);
    assert.match(fail.stdout, /at 20240301120000_user_email_unique, line 8:1, statement 1/);
    assert.match(fail.stdout, /"key1":"ann@example.com","rows":3/);
    const json = await runCli(['prisma', 'check', c.migrations, '--db', f.url, '--json']);
    assert.equal(json.code, 6);
    const r = JSON.parse(json.stdout) as { type: string; ok: boolean; findings: Array<{ code: string; count: number }> };
    assert.equal(r.type, 'prisma-check');
    assert.deepEqual(
      r.findings.filter((x) => x.code === 'PRISMA_DUPLICATE_KEYS').map((x) => x.count),
      [5],
    );
    const refused = await runCli(['prisma', 'deploy', c.migrations, '--db', f.url]);
    assert.equal(refused.code, 6, refused.stderr);
    assert.match(refused.stderr, /BELAY_PRISMA_PREDICTED_FAILURE/);

    await f.db.exec(c.passSql);
    // DATABASE_URL from .env in the working directory, the default folder prisma/migrations relative to it
    const cwd = mkdtempSync(path.join(tmpdir(), 'belay-prisma-cli-'));
    try {
      writeFileSync(path.join(cwd, '.env'), `DATABASE_URL="${f.url}"\n`);
      const ok = await runCli(['prisma', 'check', c.migrations], { cwd });
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, /no statement is predicted to fail/);
      const before = await fingerprint(f.db);
      const plan = await runCli(['prisma', 'deploy', c.migrations, '--plan'], { cwd });
      assert.equal(plan.code, 0, plan.stderr);
      assert.match(plan.stdout, /before the transaction:\n\s+\[1\] CREATE UNIQUE INDEX CONCURRENTLY "User_email_key"/);
      assert.equal(await fingerprint(f.db), before);
      const deploy = await runCli(['prisma', 'deploy', c.migrations], { cwd });
      assert.equal(deploy.code, 0, deploy.stderr);
      assert.match(deploy.stdout, /1 migration\(s\) applied and recorded in _prisma_migrations/);
      const after = await runCli(['prisma', 'check', c.migrations, '--json'], { cwd });
      assert.deepEqual((JSON.parse(after.stdout) as { status: { pending: string[] } }).status.pending, []);
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });
});

test('belay prisma check: a missing folder is exit 2 with what to do, before connecting', async () => {
  const r = await runCli(['prisma', 'check', '/nonexistent/migrations', '--db', 'postgres://nobody@127.0.0.1:1/none']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /BELAY_PRISMA_DIR.*does not exist/);
  assert.match(r.stderr, /what to do:/);
});
