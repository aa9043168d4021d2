// What the database does when a step writes (issue 15, item 2), reported by belay check as findings with
// stable codes, kept in belay plan's output and shown in the runbook: triggers the step's UPDATE fires
// (what they set, the tables they write), foreign keys with actions from and into the written table,
// cascades without an index, composite keys; the declared way to say what a trigger changes, and
// disableUserTriggers (refused where the role may not set session_replication_role). Each fact is
// checked against what the server does when the rows are written (rolled back).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { type CheckReport, runChecks } from '../src/checks/run-checks.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { BelayError } from '../src/errors.ts';
import { runbook } from '../src/run/documents.ts';
import { plan } from '../src/run/pipeline.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { seedCalcom } from './fixtures/calcom/seed.ts';
import { DB_KINDS, freshDb, SERVER } from './helpers/fresh-db.ts';
import { flagship } from './helpers/flagship.ts';
import { inline, withDb, withSession } from './helpers/fixture.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { safeApply } from '../src/run/pipeline.ts';

const SCHEMA = `
CREATE TABLE users (id int PRIMARY KEY, name text);
CREATE TABLE audit_log (id serial PRIMARY KEY, note text);
CREATE TABLE docs (
  id int PRIMARY KEY, owner int REFERENCES users (id) ON DELETE CASCADE, title text, code text UNIQUE, "updatedAt" timestamptz,
  w_owner int, w_title text
);
CREATE TABLE links (id int PRIMARY KEY, doc_code text REFERENCES docs (code) ON UPDATE CASCADE);
CREATE TABLE parts (a int, b int, id int NOT NULL UNIQUE, doc int REFERENCES docs (id) ON DELETE CASCADE, n int, PRIMARY KEY (a, b));
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW."updatedAt" := now(); RETURN NEW; END $$;
CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log (note) VALUES ('doc ' || NEW.id); RETURN NULL; END $$;
CREATE TRIGGER a_touch BEFORE UPDATE ON docs FOR EACH ROW EXECUTE FUNCTION touch();
CREATE TRIGGER b_audit AFTER UPDATE OF owner ON docs FOR EACH ROW EXECUTE FUNCTION audit();
CREATE TRIGGER c_insert BEFORE INSERT ON docs FOR EACH ROW EXECUTE FUNCTION touch();
INSERT INTO users VALUES (1, 'ann'), (2, 'bob');
INSERT INTO docs (id, owner, title, code, w_owner, w_title) VALUES (1, NULL, 't1', 'c1', 1, 'T1'), (2, 1, 't2', 'c2', 2, 't2'), (3, NULL, 't3', 'c3', NULL, 'T3');
INSERT INTO parts VALUES (1, 1, 10, 1, 0), (1, 2, 11, 2, 0);
`;

const spec = (input: MigrationInput) => inline(input, 'test');

const docsStep = (extra: Record<string, unknown> = {}) => ({
  kind: 'batched' as const,
  name: 's',
  table: 'docs',
  writes: ['owner', 'title'],
  projection: 'SELECT id, w_owner AS owner, w_title AS title FROM docs WHERE id BETWEEN $1 AND $2',
  ...extra,
});
const notes = (r: CheckReport) => r.findings.filter((f) => f.kind === 'catalog').map((f) => [f.code, f.severity]);
const fact = (r: CheckReport, code: string) => {
  const f = r.findings.find((x) => x.code === code);
  assert.ok(f, `finding ${code} in ${r.findings.map((x) => x.code).join(', ')}`);
  return f;
};

/** What writing the step's rows does on the server (rolled back): audit rows written, updatedAt set. */
async function groundTruth(db: Db, replica = false): Promise<{ audit: number; touched: number }> {
  await db.query('BEGIN');
  try {
    if (replica) await db.query('SET LOCAL session_replication_role = replica');
    await db.query(`UPDATE docs SET owner = w_owner, title = w_title WHERE owner IS DISTINCT FROM w_owner OR title IS DISTINCT FROM w_title`);
    const audit = Number((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log')).rows[0]!.n);
    // the rows touch() set in this transaction (now() is the transaction's start)
    const touched = Number((await db.query<{ n: number }>('SELECT count(*)::int AS n FROM docs WHERE "updatedAt" = now()')).rows[0]!.n);
    return { audit, touched };
  } finally {
    await db.query('ROLLBACK');
  }
}

for (const kind of DB_KINDS) {
  describe(`catalog notes on ${kind}`, () => {
    let shared: { db: Db; drop(): Promise<void> };
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      await shared.db.exec(SCHEMA);
    });
    after(() => shared.drop());

    test("triggers the step's UPDATE fires, foreign-key actions from and into the table, cascades without an index: warn and info findings with stable codes", async () => {
      const { db } = shared;
      const r = await runChecks(db, spec({ id: 'docs', purpose: 'set owner and title for the tests', tables: ['docs', 'users'], steps: [docsStep()] }));
      assert.deepEqual(
        notes(r),
        [
          ['TRIGGER:a_touch@s', 'warn'],
          ['TRIGGER:b_audit@s', 'warn'],
          ['FK_ACTION:docs_owner_fkey@s', 'warn'],
          ['FK_ACTION:parts_doc_fkey@s', 'info'],
          ['CASCADE_SCAN:docs_owner_fkey@s', 'info'],
          ['CASCADE_SCAN:links_doc_code_fkey@s', 'info'],
          ['CASCADE_SCAN:parts_doc_fkey@s', 'info'],
        ],
        'c_insert does not fire on UPDATE; links reference code, which the step does not write; docs has no index on owner',
      );
      const touch = fact(r, 'TRIGGER:a_touch@s');
      assert.match(touch.message, /sets "updatedAt", which the step does not write/);
      assert.match(touch.fix!, /triggers: \[\{ name: 'a_touch', sets: \['updatedAt'\] \}\]/);
      assert.deepEqual([touch.fact?.sets, touch.count, touch.sample], [['updatedAt'], 0, []]);
      assert.deepEqual(fact(r, 'TRIGGER:b_audit@s').fact?.writesTables, ['audit_log']);
      assert.match(fact(r, 'FK_ACTION:docs_owner_fkey@s').message, /deleting a row of "public"\."users" after the run deletes the rows that reference it/);
      assert.match(fact(r, 'CASCADE_SCAN:parts_doc_fkey@s').fix!, /CREATE INDEX CONCURRENTLY ON "public"\."parts" \("doc"\)/);
      assert.deepEqual(r.catalog[0]!.indirectTables, [{ table: 'audit_log', through: 'b_audit', listed: false }]);
      assert.equal(r.ok, true, 'facts are not blocking');
      // belay plan keeps the same notes as plain data
      const p = await plan(db, spec({ id: 'docs', purpose: 'set owner and title for the tests', tables: ['docs', 'users'], steps: [docsStep()] }), {
        samples: 1,
      });
      assert.deepEqual(
        p.catalog?.flatMap((c) => c.notes.map((n) => [n.code, n.severity])),
        notes(r),
      );
      assert.deepEqual(JSON.parse(JSON.stringify(p.catalog)), p.catalog, 'plain data');
      // what the server does on the same write: the BEFORE trigger sets updatedAt on each written row, the AFTER one
      // (UPDATE OF owner: owner is in every batch's SET list) audits each of them
      assert.deepEqual(await groundTruth(db), { audit: 3, touched: 3 });
    });

    test("a cascade the step's own UPDATE fires: ON UPDATE CASCADE into a written column changes another table (listed, warn when not backed up), and its missing index is a warning", async () => {
      const { db } = shared;
      const m = (tables: string[]) =>
        spec({
          id: 'code',
          purpose: 'rename the codes for the tests',
          tables,
          steps: [
            { kind: 'batched', name: 's', table: 'docs', writes: ['code'], projection: "SELECT id, code || '-x' AS code FROM docs WHERE id BETWEEN $1 AND $2" },
          ],
        });
      const r = await runChecks(db, m(['docs']));
      assert.equal(fact(r, 'FK_ACTION:links_doc_code_fkey@s').severity, 'warn');
      assert.match(fact(r, 'FK_ACTION:links_doc_code_fkey@s').message, /"public"\."links" is not in the migration's tables/);
      assert.equal(fact(r, 'CASCADE_SCAN:links_doc_code_fkey@s').severity, 'warn');
      assert.match(fact(r, 'CASCADE_SCAN:links_doc_code_fkey@s').message, /every row step "s" writes makes the server scan "public"\."links"/);
      assert.deepEqual(r.catalog[0]!.indirectTables, [{ table: 'links', through: 'links_doc_code_fkey', listed: false }]);
      const listed = await runChecks(db, m(['docs', 'links']));
      assert.equal(fact(listed, 'FK_ACTION:links_doc_code_fkey@s').severity, 'info');
      assert.deepEqual(
        listed.catalog[0]!.indirectTables.map((t) => t.listed),
        [true],
      );
    });

    test('declared triggers: what they change is known (info), the table they write is listed; a trigger that does not exist is refused (exit 3)', async () => {
      const { db } = shared;
      const r = await runChecks(
        db,
        spec({
          id: 'docs-declared',
          purpose: 'set owner and title, triggers declared',
          tables: ['docs', 'users', 'audit_log'],
          steps: [
            docsStep({
              triggers: [
                { name: 'a_touch', sets: ['updatedAt'] },
                { name: 'b_audit', writesTables: ['audit_log'] },
              ],
            }),
          ],
        }),
      );
      assert.deepEqual(notes(r).slice(0, 2), [
        ['TRIGGER:a_touch@s', 'info'],
        ['TRIGGER:b_audit@s', 'info'],
      ]);
      assert.equal(fact(r, 'TRIGGER:a_touch@s').fact?.declared, true);
      assert.deepEqual(r.catalog[0]!.indirectTables, [{ table: 'audit_log', through: 'b_audit', listed: true }]);
      const err = await runChecks(
        db,
        spec({
          id: 'docs-typo',
          purpose: 'a declared trigger that does not exist',
          tables: ['docs'],
          steps: [docsStep({ triggers: [{ name: 'a_tuoch', sets: ['updatedAt'] }] })],
        }),
      ).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError && err.exitCode === 3 && err.details.field === 'steps.0.triggers.0.name', String(err));
      assert.match(err.message, /declares trigger "a_tuoch", which "docs" does not have/);
    });

    test('disableUserTriggers where the role may: the ordinary triggers do not fire, and the foreign keys the server then does not enforce are named', async () => {
      const { db } = shared;
      const r = await runChecks(
        db,
        spec({
          id: 'docs-off',
          purpose: 'set owner and title with triggers disabled',
          tables: ['docs', 'users'],
          steps: [docsStep({ disableUserTriggers: true })],
        }),
      );
      assert.deepEqual(
        notes(r).filter(([c]) => /^(TRIGGER|DISABLE)/.test(String(c))),
        [
          ['TRIGGER:a_touch@s', 'info'],
          ['TRIGGER:b_audit@s', 'info'],
          ['DISABLE_TRIGGERS:docs@s', 'info'],
        ],
      );
      assert.equal(fact(r, 'TRIGGER:a_touch@s').fact?.fires, false);
      assert.deepEqual(fact(r, 'DISABLE_TRIGGERS:docs@s').fact?.foreignKeysNotEnforced, ['docs_owner_fkey']);
      assert.deepEqual(r.catalog[0]!.indirectTables, [], 'the audit trigger does not write');
      assert.equal(r.ok, true);
      // the server agrees: under replica the write fires neither trigger
      assert.deepEqual(await groundTruth(db, true), { audit: 0, touched: 0 });
    });

    test('apply with disableUserTriggers: no user trigger fires on the batches or the rollback, and the foreign key the server no longer checks is checked by the batch', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        // doc 4's new owner does not exist: under replica only belay's own check stops it
        await db.exec(`INSERT INTO docs (id, owner, title, code, w_owner, w_title) VALUES (4, NULL, 't4', 'c4', 99, 'T4')`);
        const before = await db.query<{ updatedAt: string | null }>('SELECT id, owner, title, "updatedAt" FROM docs ORDER BY id');
        const m = spec({
          id: 'docs-off-apply',
          purpose: 'set owner and title with triggers disabled',
          tables: ['docs'],
          steps: [docsStep({ disableUserTriggers: true })],
        });
        const refused = await safeApply(db, m, { backup: false, batchSize: 10 });
        assert.match(refused.error?.message ?? '', /FOREIGN_KEY:docs_owner_fkey@s \(1 row\)/, 'the pre-flight predicts it');
        // without the pre-flight (a row changed after it) the batch's own check leaves the row out
        const r = await safeApply(db, m, { backup: false, batchSize: 10, skipChecks: true });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const after = await db.query<{ id: number; owner: number | null; title: string; updatedAt: string | null }>(
          'SELECT id, owner, title, "updatedAt" FROM docs ORDER BY id',
        );
        assert.deepEqual(
          after.rows.map((x) => [x.id, x.owner, x.title]),
          [
            [1, 1, 'T1'],
            [2, 2, 't2'],
            [3, null, 'T3'],
            [4, null, 't4'],
          ],
          'doc 4 left as it was',
        );
        assert.deepEqual(
          after.rows.map((x) => x.updatedAt),
          before.rows.map((x) => x.updatedAt),
          'touch() did not fire',
        );
        assert.equal((await db.query('SELECT 1 FROM audit_log')).rowCount, 0, 'audit() did not fire');
        assert.equal(r.steps[0]!.rowsSkipped, 1, 'the row that would break docs_owner_fkey was left out');
        const rb = await rollback(db, r.runId);
        assert.equal(rb.status, 'rolled_back');
        assert.deepEqual(
          (await db.query('SELECT id, owner, title, "updatedAt" FROM docs ORDER BY id')).rows,
          before.rows,
          'restored, and touch() did not fire on the restore',
        );
        assert.equal((await db.query('SELECT 1 FROM audit_log')).rowCount, 0);
      });
    });

    test('a composite primary key is noted; a step on it walks its declared single-column key', async () => {
      const { db } = shared;
      const r = await runChecks(
        db,
        spec({
          id: 'parts',
          purpose: 'bump n on parts for the tests',
          tables: ['parts'],
          steps: [
            { kind: 'batched', name: 's', table: 'parts', key: 'id', writes: ['n'], projection: 'SELECT id, n + 1 AS n FROM parts WHERE id BETWEEN $1 AND $2' },
          ],
        }),
      );
      const f = fact(r, 'COMPOSITE_KEY:parts@s');
      assert.equal(f.severity, 'info');
      assert.deepEqual(f.fact?.primaryKey, ['a', 'b']);
      assert.match(f.message, /composite \("a", "b"\); step "s" walks it by its key: "id"/);
    });
  });
}

test('server: disableUserTriggers is refused (an error finding, apply would be blocked) when the role may not set session_replication_role, accepted once granted', async () => {
  const role = `belay_t_role_${randomBytes(4).toString('hex')}`;
  const admin = await openDb(`${SERVER}/postgres`);
  await admin.query(`CREATE ROLE ${role} LOGIN`);
  try {
    await withDb('postgres', async (f) => {
      await f.db.exec(`${SCHEMA} GRANT SELECT, UPDATE ON ALL TABLES IN SCHEMA public TO ${role};`);
      await withSession(`${f.url.replace('postgres@', `${role}@`)}`, async (asRole) => {
        const m = spec({
          id: 'docs-off',
          purpose: 'set owner and title with triggers disabled',
          tables: ['docs', 'users'],
          steps: [docsStep({ disableUserTriggers: true })],
        });
        const refused = await runChecks(asRole, m);
        const d = fact(refused, 'DISABLE_TRIGGERS:docs@s');
        assert.equal(d.severity, 'error');
        assert.match(d.message, /may not set session_replication_role/);
        assert.deepEqual(refused.blocking, ['DISABLE_TRIGGERS:docs@s']);
        // the server agrees
        await assert.rejects(asRole.query('SET session_replication_role = replica'), /permission denied/);
        await admin.query(`GRANT SET ON PARAMETER session_replication_role TO ${role}`);
        const granted = await runChecks(asRole, m);
        assert.equal(fact(granted, 'DISABLE_TRIGGERS:docs@s').severity, 'info');
        assert.equal(granted.ok, true);
      });
    });
  } finally {
    // the role holds privileges in the database: it can go once the database is dropped
    await admin.query(`REVOKE SET ON PARAMETER session_replication_role FROM ${role}`).catch(() => undefined);
    await admin.query(`DROP ROLE ${role}`);
    await admin.close();
  }
});

for (const kind of DB_KINDS) {
  test(`${kind}: Cal.com-shaped data, flagship unchanged: check and runbook name the same catalog facts`, async () => {
    await withDb(kind, async (f) => {
      await seedCalcom(f.db, { seed: 3 });
      const m = await flagship();
      const r = await runChecks(f.db, m);
      const codes = r.findings
        .filter((x) => x.kind === 'catalog')
        .map((x) => [x.code, x.severity])
        .sort();
      assert.deepEqual(
        codes,
        [
          ['FK_ACTION:EventType_userId_fkey@assign-owner', 'warn'],
          ['FK_ACTION:EventType_parentId_fkey@assign-owner', 'info'],
          ['FK_ACTION:Host_eventTypeId_fkey@assign-owner', 'info'],
          ['FK_ACTION:Webhook_eventTypeId_fkey@assign-owner', 'info'],
          ['FK_ACTION:_user_eventtype_A_fkey@assign-owner', 'info'],
          ['CASCADE_SCAN:Webhook_eventTypeId_fkey@assign-owner', 'info'],
        ].sort(),
      );
      const fk = r.findings.find((x) => x.code === 'FOREIGN_KEY:EventType_userId_fkey@assign-owner');
      assert.equal(fk?.count, 0, 'the flagship assigns only users that exist');
      const md = await runbook(m, { db: f.db });
      assert.ok(md.includes('### What the database does on these writes'));
      for (const [c] of codes) assert.ok(md.includes(`\`${c}\``), `runbook lacks ${c}`);
      assert.ok(md.includes('`FOREIGN_KEY:EventType_userId_fkey@assign-owner`'), 'runbook lists the derived predictions');
      assert.ok(md.includes('`UNIQUE:EventType_userId_parentId_key@assign-owner`'));
    });
  });
}
