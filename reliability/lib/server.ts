// The PostgreSQL server the suite runs against: template databases generated once per scenario,
// cloned per trial with CREATE DATABASE … TEMPLATE (a file copy, far faster than generating again).
import { randomBytes } from 'node:crypto';
import { generate } from '../../examples/event-type-owner/generate.ts';
import { type Db, openDb } from '../../src/db/connection.ts';
import { ident } from '../../src/db/sql.ts';

export const SERVER = process.env.BELAY_TEST_SERVER ?? 'postgres://postgres@127.0.0.1:5432';
/** Every database the suite creates starts with this prefix, so a crashed suite's leftovers are easy to find. */
export const DB_PREFIX = 'belay_rel_';

export function dbUrl(name: string, server = SERVER): string {
  return `${server}/${name}`;
}

export async function admin<T>(fn: (db: Db) => Promise<T>): Promise<T> {
  const db = await openDb(dbUrl('postgres'), { applicationName: 'belay-reliability' });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

export function uniqueName(tag: string): string {
  return `${DB_PREFIX}${tag}_${randomBytes(4).toString('hex')}`;
}

/** A database generated with the flagship's data (rows, seed), optionally prepared further, marked as a template. */
export async function createTemplate(tag: string, rows: number, seed: number, prepare?: (url: string) => Promise<void>): Promise<string> {
  const name = uniqueName(`tpl_${tag}`);
  await admin((a) => a.query(`CREATE DATABASE ${ident(name)}`));
  const db = await openDb(dbUrl(name), { applicationName: 'belay-reliability' });
  try {
    await generate(db, { rows, seed });
    await db.query('ANALYZE');
  } finally {
    await db.close();
  }
  if (prepare) await prepare(dbUrl(name));
  return name;
}

/** A fresh copy of a template. No session may be connected to the template while it is copied. */
export async function cloneDb(template: string, tag: string): Promise<string> {
  const name = uniqueName(tag);
  await admin(async (a) => {
    await a.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [template]);
    await a.query(`CREATE DATABASE ${ident(name)} TEMPLATE ${ident(template)}`);
  });
  return name;
}

export async function dropDb(name: string): Promise<void> {
  await admin((a) => a.query(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`));
}

/** Drops every database of this suite left behind by an earlier, interrupted run. */
/**
 * Drops databases of the suite's that an earlier, interrupted run left behind: only those created more than
 * LEFTOVER_AGE_MS ago (PG_VERSION is written once, when a database is created), never a suite's that runs now
 * (npm test runs the short suites side by side).
 */
export const LEFTOVER_AGE_MS = 3 * 3_600_000;

export async function dropLeftovers(): Promise<number> {
  return admin(async (a) => {
    const r = await a.query<{ datname: string }>(
      `SELECT datname FROM pg_database d
        WHERE datname LIKE $1
          AND (pg_stat_file('base/' || d.oid || '/PG_VERSION')).modification < clock_timestamp() - make_interval(secs => $2::float8 / 1000)`,
      [`${DB_PREFIX}%`, LEFTOVER_AGE_MS],
    );
    for (const { datname } of r.rows) await a.query(`DROP DATABASE IF EXISTS ${ident(datname)} WITH (FORCE)`);
    return r.rows.length;
  });
}

export async function withDb<T>(name: string, fn: (db: Db) => Promise<T>, server = SERVER): Promise<T> {
  const db = await openDb(dbUrl(name, server), { applicationName: 'belay-reliability' });
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}
