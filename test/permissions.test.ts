// belay's schemas belong to the role belay runs as and to no one else, under the default privileges
// applications commonly set; belay refuses schemas of its names that it did not create. On the server,
// with real roles (cluster-wide: named per test and dropped after), belay running as a non-superuser
// that owns the tables.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { writeFileSync } from 'node:fs';
import { type Db, openDb } from '../src/db/connection.ts';
import { EXIT } from '../src/errors.ts';
import { SCHEMA_MARK } from '../src/state/privileges.ts';
import { ensureState } from '../src/state/schema.ts';
import { belay } from './helpers/capture.ts';
import { checksums } from './helpers/flagship.ts';
import { type FreshDb, SERVER } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';

const SCHEMAS = ['belay', 'belay_backup'];

interface Roles {
  f: FreshDb;
  owner: string;
  app: string;
  as: (role: string) => string;
  dir: string;
}

/**
 * Runs fn on a test database with an owner role (no superuser) that owns the tables and an application role that
 * reads them; drops the database, then the roles, also when fn throws.
 */
async function withRoles<T>(fn: (s: Roles) => Promise<T>): Promise<T> {
  const tag = randomBytes(4).toString('hex');
  const owner = `belay_t_owner_${tag}`;
  const app = `belay_t_app_${tag}`;
  try {
    return await withDb('postgres', async (f) => {
      const dbName = new URL(f.url).pathname.slice(1);
      await f.db.exec(`CREATE ROLE ${owner} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; CREATE ROLE ${app} LOGIN NOSUPERUSER;
    GRANT CREATE ON DATABASE ${dbName} TO ${owner}; GRANT CREATE ON DATABASE ${dbName} TO ${app}; GRANT USAGE, CREATE ON SCHEMA public TO ${owner};`);
      const as = (role: string) => {
        const u = new URL(f.url);
        u.username = role;
        return u.toString();
      };
      // the owner's habits: every table and schema it creates is readable by the application
      const o = await openDb(as(owner));
      try {
        await o.exec(`ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO ${app};
      ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO ${app};
      ALTER DEFAULT PRIVILEGES GRANT USAGE, SELECT ON SEQUENCES TO ${app};
      GRANT USAGE ON SCHEMA public TO ${app};
      CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, tier int);
      INSERT INTO people SELECT g, 'person' || g || '@example.com', NULL FROM generate_series(1, 250) g;`);
      } finally {
        await o.close();
      }
      const dir = mkdtempSync(path.join(tmpdir(), 'belay-perm-'));
      writeFileSync(
        path.join(dir, 'migration.ts'),
        `export default {
    id: 'people-tier', purpose: 'Give every person a tier from their id (permission tests).', tables: ['people'],
    steps: [{ kind: 'batched', name: 'tier', table: 'people', writes: ['tier'], projection: 'SELECT id, id % 3 AS tier FROM people WHERE id BETWEEN $1 AND $2' }],
    options: { batchSize: 100 },
  };`,
      );
      return await fn({ f, owner, app, as, dir });
    });
  } finally {
    // the roles hold privileges on the database: they can go once it is dropped
    const a = await openDb(`${SERVER}/postgres`);
    try {
      await a.exec(`DROP ROLE IF EXISTS ${owner}; DROP ROLE IF EXISTS ${app};`);
    } finally {
      await a.close();
    }
  }
}

/** The statements the refusal's fix gives, to run as they are. */
function takeBack(stderr: string): string {
  const fix = /As the owner, take them back: (.*) Then run belay again/.exec(stderr)?.[1];
  assert.ok(fix, stderr);
  return fix;
}

async function asRole<T>(url: string, fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(url);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

test('regression (permissions): under ALTER DEFAULT PRIVILEGES … TO app, the application reads neither the decisions (before-images) nor the backups; belay works as a non-superuser owner', async () => {
  await withRoles(async (s) => {
    const apply = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(apply.code, EXIT.ok, apply.stderr);
    // every relation and schema of belay's: only its owner holds anything
    const acl = await s.f.db.query<{ name: string; owner: string; others: string[] | null }>(
      `
      SELECT n.nspname || '.' || c.relname AS name, pg_get_userbyid(c.relowner) AS owner,
             (SELECT array_agg(DISTINCT a.grantee::regrole::text) FROM aclexplode(c.relacl) a WHERE a.grantee <> c.relowner) AS others
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1) AND c.relkind IN ('r', 'S')
      UNION ALL
      SELECT n.nspname, pg_get_userbyid(n.nspowner), (SELECT array_agg(DISTINCT a.grantee::regrole::text) FROM aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner)
        FROM pg_namespace n WHERE n.nspname = ANY ($1)`,
      [SCHEMAS],
    );
    assert.ok(
      acl.rows.some((r) => r.name.startsWith('belay_backup.r1_people')),
      'the backup copy exists to be checked',
    );
    assert.ok(
      acl.rows.some((r) => r.name === 'belay.decision_r1_s0'),
      'the decision (before-images) exists to be checked',
    );
    for (const r of acl.rows) {
      assert.equal(r.owner, s.owner, `${r.name} belongs to the role belay ran as`);
      assert.equal(r.others, null, `${r.name} grants nothing to anyone else`);
    }
    // the application, with everything default privileges would have given it, reads none of it
    await asRole(s.as(s.app), async (app) => {
      assert.equal((await app.query<{ n: number }>('SELECT count(*)::int AS n FROM people')).rows[0]!.n, 250, 'the application still reads its own tables');
      for (const q of ['SELECT * FROM belay.decision_r1_s0', 'SELECT * FROM belay.runs', 'SELECT * FROM belay_backup.r1_people']) {
        await assert.rejects(app.query(q), (e: unknown) => (e as { server?: { sqlstate?: string } }).server?.sqlstate === '42501', q);
      }
      const priv = await app.query<{ t: string; sel: boolean }>(
        `SELECT n.nspname || '.' || c.relname AS t, has_table_privilege(c.oid, 'SELECT') AS sel
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1) AND c.relkind = 'r'`,
        [SCHEMAS],
      );
      assert.deepEqual(
        priv.rows.filter((r) => r.sel),
        [],
        "SELECT on no table of belay's",
      );
    });
    const rb = await belay(['rollback', '1', '--db', s.as(s.owner)]);
    assert.equal(rb.code, EXIT.ok, rb.stderr);
    assert.equal((await s.f.db.query<{ n: number }>('SELECT count(*)::int AS n FROM people WHERE tier IS NULL')).rows[0]!.n, 250, 'rolled back as the owner');
  });
});

test('regression (permissions): a schema belay or belay_backup created first by another role is refused (exit 8) with how to fix it, and nothing is written', async () => {
  await withRoles(async (s) => {
    const before = await checksums(s.f.db, ['people']);
    for (const schema of SCHEMAS) {
      await asRole(s.as(s.app), (app) => app.exec(`CREATE SCHEMA ${schema}`));
      const r = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
      assert.equal(r.code, EXIT.state, r.stderr);
      assert.match(r.stderr, /BELAY_STATE_SCHEMA/);
      assert.match(r.stderr, new RegExp(`schema "${schema}" is owned by role "${s.app}", not by "${s.owner}"`));
      assert.match(r.stderr, new RegExp(`ALTER SCHEMA "${schema}" RENAME TO "${schema}_old"`));
      assert.deepEqual(await checksums(s.f.db, ['people']), before);
      const inside = await s.f.db.query(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = ANY ($1)`, [SCHEMAS]);
      assert.equal(inside.rowCount, 0, 'belay created nothing in a schema it does not own');
      await asRole(s.as(s.app), (app) => app.exec(`DROP SCHEMA ${schema}`));
    }
    // the owner's own schema, not made by belay: refused until it is marked as belay's
    await asRole(s.as(s.owner), (o) => o.exec('CREATE SCHEMA belay'));
    const unmarked = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(unmarked.code, EXIT.state, unmarked.stderr);
    assert.match(unmarked.stderr, /schema "belay" exists but was not created by belay/);
    assert.match(unmarked.stderr, /COMMENT ON SCHEMA "belay" IS/);
    await asRole(s.as(s.owner), (o) => o.exec(`COMMENT ON SCHEMA belay IS '${SCHEMA_MARK.replace(/'/g, "''")}'`));
    // made by the owner, it got USAGE for the application from the default privileges: refused until taken back
    const marked = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(marked.code, EXIT.state, marked.stderr);
    assert.match(marked.stderr, new RegExp(`grants privileges to other roles \\(privileges on the schema to ${s.app}\\)`));
    await asRole(s.as(s.owner), (o) => o.exec(takeBack(marked.stderr)));
    const ok = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(ok.code, EXIT.ok, ok.stderr);
    // a grant added later: refused with the REVOKE that takes it back; after it, belay goes on
    await asRole(s.as(s.owner), (o) => o.exec(`GRANT USAGE ON SCHEMA belay TO ${s.app}; GRANT SELECT ON belay.undo TO ${s.app}`));
    // every command that writes belay's state (verify records its round) refuses
    const report = await belay(['verify', '1', '--db', s.as(s.owner)]);
    assert.equal(report.code, EXIT.state, report.stderr);
    assert.match(report.stderr, new RegExp(`grants privileges to other roles \\(privileges on the schema to ${s.app}; belay\\.undo to ${s.app}\\)`));
    await asRole(s.as(s.owner), (o) => o.exec(takeBack(report.stderr)));
    const after = await belay(['verify', '1', '--db', s.as(s.owner)]);
    assert.equal(after.code, EXIT.ok, after.stderr);
    // default privileges set inside belay's schema would hand its next tables out: refused, with the revoke
    await asRole(s.as(s.owner), (o) => o.exec(`ALTER DEFAULT PRIVILEGES IN SCHEMA belay GRANT SELECT ON TABLES TO ${s.app}`));
    const defaults = await belay(['verify', '1', '--db', s.as(s.owner)]);
    assert.equal(defaults.code, EXIT.state, defaults.stderr);
    assert.match(defaults.stderr, new RegExp(`ALTER DEFAULT PRIVILEGES FOR ROLE ${s.owner} IN SCHEMA belay REVOKE ALL ON TABLES FROM ${s.app};`));
    await asRole(s.as(s.owner), (o) => o.exec(takeBack(defaults.stderr)));
    const clean = await belay(['verify', '1', '--db', s.as(s.owner)]);
    assert.equal(clean.code, EXIT.ok, clean.stderr);
  });
});

test('regression (messages): a role without CREATE on the database gets the GRANT to run (BELAY_PRIVILEGE, exit 9), no run and no write', async () => {
  await withRoles(async (s) => {
    const dbName = new URL(s.f.url).pathname.slice(1);
    await s.f.db.exec(`REVOKE CREATE ON DATABASE ${dbName} FROM ${s.owner}`);
    const before = await checksums(s.f.db, ['people']);
    const r = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(r.code, EXIT.database, r.stderr);
    assert.match(r.stderr, /BELAY_PRIVILEGE/);
    assert.match(r.stderr, new RegExp(`role "${s.owner}" may not create schemas in database "${dbName}"`));
    assert.match(r.stderr, new RegExp(`GRANT CREATE ON DATABASE "${dbName}" TO "${s.owner}"`));
    assert.match(r.stderr, /no run was started/);
    assert.deepEqual(await checksums(s.f.db, ['people']), before);
    assert.equal((await s.f.db.query(`SELECT 1 FROM pg_namespace WHERE nspname = ANY ($1)`, [SCHEMAS])).rowCount, 0);
    await s.f.db.exec(`GRANT CREATE ON DATABASE ${dbName} TO ${s.owner}`);
    const ok = await belay(['apply', s.dir, '--db', s.as(s.owner)]);
    assert.equal(ok.code, EXIT.ok, ok.stderr);
  });
});

test("belay's schemas are marked as belay's and owner-only on PGlite too", async () => {
  await withDb('pglite', async (f) => {
    await ensureState(f.db);
    await ensureState(f.db);
    const r = await f.db.query<{ n: string; c: string | null; acl: string | null }>(
      `SELECT nspname AS n, obj_description(oid, 'pg_namespace') AS c, nspacl::text AS acl FROM pg_namespace WHERE nspname = ANY ($1) ORDER BY 1`,
      [SCHEMAS],
    );
    assert.deepEqual(
      r.rows.map((x) => [x.n, x.c]),
      SCHEMAS.map((n) => [n, SCHEMA_MARK]),
    );
    for (const x of r.rows) assert.ok(x.acl === null || !/(^|[{,])=/.test(x.acl), `${x.n}: nothing for PUBLIC (${x.acl})`);
  });
});
