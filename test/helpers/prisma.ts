// The Prisma corpus: test/fixtures/prisma/<case>/ holds migrations/ (in the shape `prisma migrate dev`
// writes them), fail.sql (a seed that makes the pending migration fail), pass.sql (run after fail.sql: a
// state in which it passes) and expect.json. Also: applying migrations the way Prisma does, and a
// fingerprint of the whole database (rows and catalog) to prove a check changed nothing.
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Db } from '../../src/db/connection.ts';
import { checksumTable } from '../../src/db/checksum.ts';
import { qualified } from '../../src/db/sql.ts';
import { serverFields } from '../../src/errors.ts';
import { ROOT } from './flagship.ts';

export const FIXTURES = path.join(ROOT, 'test/fixtures/prisma');

export interface ExpectedFinding {
  code: string;
  statement: number;
  line: number;
  /** Exact count, or null when the predictor cannot count (the statement's own error). */
  count: number | null;
}

export interface Case {
  name: string;
  dir: string;
  migrations: string;
  /** Folders that are pending; every other folder is applied during setup. */
  pending: string[];
  fail: { findings: ExpectedFinding[]; sqlstate: string | null };
  pass: { sqlstate: null; findings?: ExpectedFinding[] };
  /** Database kinds the case runs on (default both). */
  kinds?: Array<'postgres' | 'pglite'>;
  /** The failing run commits part of the file (an explicit COMMIT inside it): the pass state needs a fresh database. */
  halfApplied?: boolean;
  failSql: string;
  passSql: string;
}

export function cases(): Case[] {
  return readdirSync(FIXTURES, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => {
      const dir = path.join(FIXTURES, e.name);
      const expect = JSON.parse(readFileSync(path.join(dir, 'expect.json'), 'utf8')) as Omit<Case, 'name' | 'dir' | 'migrations' | 'failSql' | 'passSql'>;
      return {
        ...expect,
        name: e.name,
        dir,
        migrations: path.join(dir, 'migrations'),
        failSql: readFileSync(path.join(dir, 'fail.sql'), 'utf8'),
        passSql: readFileSync(path.join(dir, 'pass.sql'), 'utf8'),
      };
    });
}

const folders_ = new Set<string>();
process.on('exit', () => {
  for (const d of folders_) rmSync(d, { recursive: true, force: true });
});

/** A migrations folder in the temp folder, written from { name: migration.sql or null for none }; removed at exit. */
export function migrationsFolder(files: Record<string, string | null>, lock?: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-prisma-'));
  folders_.add(dir);
  if (lock) writeFileSync(path.join(dir, 'migration_lock.toml'), lock);
  for (const [name, sql] of Object.entries(files)) {
    mkdirSync(path.join(dir, name));
    if (sql !== null) writeFileSync(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

export function script(c: Case, name: string): string {
  return readFileSync(path.join(c.migrations, name, 'migration.sql'), 'utf8');
}

/** The migrations folders of a case, in Prisma's order. */
export function folders(c: Case): string[] {
  return readdirSync(c.migrations, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
}

// Written here from Prisma's schema engine, independently of src/prisma, so a mistake there shows.
const PRISMA_TABLE = `CREATE TABLE _prisma_migrations (
    id                      VARCHAR(36) PRIMARY KEY NOT NULL,
    checksum                VARCHAR(64) NOT NULL,
    finished_at             TIMESTAMPTZ,
    migration_name          VARCHAR(255) NOT NULL,
    logs                    TEXT,
    rolled_back_at          TIMESTAMPTZ,
    started_at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    applied_steps_count     INTEGER NOT NULL DEFAULT 0
);`;

export const sha256 = (s: string) => createHash('sha256').update(Buffer.from(s, 'utf8')).digest('hex');

/** What `prisma migrate deploy` does for each name: the row, the script as one query string, the step and the finish. */
export async function applyAsPrisma(db: Db, c: Case, names: readonly string[]): Promise<void> {
  const has = await db.query<{ t: string | null }>(`SELECT to_regclass('_prisma_migrations')::text AS t`);
  if (!has.rows[0]!.t) await db.exec(PRISMA_TABLE);
  for (const name of names) {
    const s = script(c, name);
    const id = randomUUID();
    await db.query(`INSERT INTO _prisma_migrations (id, checksum, started_at, migration_name) VALUES ($1, $2, now(), $3)`, [id, sha256(s), name]);
    await db.exec(s);
    await db.query(`UPDATE _prisma_migrations SET applied_steps_count = applied_steps_count + 1 WHERE id = $1`, [id]);
    await db.query(`UPDATE _prisma_migrations SET finished_at = now() WHERE id = $1`, [id]);
  }
}

/** Sends a script as Prisma does (one simple query); the SQLSTATE it fails with, or null. */
export async function runLikePrisma(db: Db, sql: string): Promise<string | null> {
  try {
    await db.exec(sql);
    return null;
  } catch (err) {
    await db.exec('ROLLBACK').catch(() => undefined); // a failure inside the file's own BEGIN leaves it open
    return serverFields(err).sqlstate ?? 'unknown';
  }
}

/** Every user table's rows (typed checksum) and the catalog of the public schema, as one text. */
export async function fingerprint(db: Db, opts: { skip?: readonly string[] } = {}): Promise<string> {
  const tables = await db.query<{ s: string; t: string }>(
    `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2`,
  );
  const parts: string[] = [];
  for (const r of tables.rows) {
    if (opts.skip?.includes(r.t)) continue;
    const c = await checksumTable(db, qualified([r.s, r.t]));
    parts.push(`${r.s}.${r.t}:${c.rows}:${c.checksum}`);
  }
  return `${parts.join('\n')}\n${await catalogText(db)}`;
}

/** The catalog of the public schema (relations, columns, constraints, index validity, enum labels) as text. */
export async function catalogText(db: Db): Promise<string> {
  const catalog = await db.query<{ x: string }>(`
    SELECT string_agg(x, E'\\n' ORDER BY x) AS x FROM (
      SELECT format('rel %s %s', c.relname, c.relkind) AS x FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace
      UNION ALL SELECT format('col %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL SELECT format('con %s %s %s', conname, convalidated, pg_get_constraintdef(oid)) FROM pg_constraint WHERE connamespace = 'public'::regnamespace
      UNION ALL SELECT format('idx %s %s', indexrelid::regclass, indisvalid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relnamespace = 'public'::regnamespace
      UNION ALL SELECT format('enum %s %s', t.typname, e.enumlabel) FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
    ) q`);
  return catalog.rows[0]!.x ?? '';
}

/**
 * Two databases compared: the catalog of public, and every table's rows (except _prisma_migrations) as
 * sorted JSON without timestamp columns, which hold the time each database was seeded.
 */
export async function comparable(db: Db): Promise<string> {
  const tables = await db.query<{ t: string; ts: string[] | null }>(
    `SELECT c.relname AS t, array_agg(a.attname::text) FILTER (WHERE a.atttypid IN ('timestamp'::regtype, 'timestamptz'::regtype)) AS ts
       FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND c.relname <> '_prisma_migrations' GROUP BY 1 ORDER BY 1`,
  );
  const parts: string[] = [];
  for (const { t, ts } of tables.rows) {
    const r = await db.query<{ x: string | null }>(
      `SELECT string_agg(j, E'\\n' ORDER BY j) AS x FROM (SELECT (to_jsonb(t) - $1::text[])::text AS j FROM ${qualified(t)} t) q`,
      [ts ?? []],
    );
    parts.push(`${t}\n${r.rows[0]!.x ?? ''}`);
  }
  return `${parts.join('\n')}\n${await catalogText(db)}`;
}
