// Every test gets its own database: a new database on the server, a new PGlite instance (or folder).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { type Db, openDb } from '../../src/db/connection.ts';

export const DB_KINDS = ['postgres', 'pglite'] as const;
export type DbKind = (typeof DB_KINDS)[number];
export const SERVER = process.env.BELAY_TEST_SERVER ?? 'postgres://postgres@127.0.0.1:5432';

export interface FreshDb {
  db: Db;
  /** A URL another process can open (for PGlite only with persistent: true; close db first). */
  url: string;
  drop(): Promise<void>;
}

export async function freshDb(kind: DbKind, opts: { persistent?: boolean } = {}): Promise<FreshDb> {
  if (kind === 'postgres') {
    const name = `belay_t_${randomBytes(6).toString('hex')}`;
    const admin = await openDb(`${SERVER}/postgres`);
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.close();
    const url = `${SERVER}/${name}`;
    const db = await openDb(url);
    return {
      db,
      url,
      async drop() {
        await db.close();
        const a = await openDb(`${SERVER}/postgres`);
        await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        await a.close();
      },
    };
  }
  if (opts.persistent) {
    const dir = mkdtempSync(path.join(tmpdir(), 'belay-pglite-'));
    const url = `pglite:${dir}`;
    const db = await openDb(url);
    return {
      db,
      url,
      async drop() {
        await db.close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  const db = await openDb('pglite:memory', { pgliteTemplate: await pgliteTemplate() });
  return {
    db,
    url: 'pglite:memory',
    async drop() {
      await db.close();
    },
  };
}

let template: Promise<Blob> | undefined;

/**
 * A freshly initialised PGlite data folder, dumped once and kept in the temp folder: each new in-memory
 * database starts from it in about a second instead of running initdb (several seconds).
 */
export function pgliteTemplate(): Promise<Blob> {
  template ??= (async () => {
    const { PGlite } = await import('@electric-sql/pglite');
    const pkg = JSON.parse(readFileSync(new URL('../../node_modules/@electric-sql/pglite/package.json', import.meta.url), 'utf8')) as { version: string };
    const file = path.join(tmpdir(), `belay-pglite-template-${pkg.version}.tar`);
    if (existsSync(file)) return new Blob([readFileSync(file)]);
    const fresh = await PGlite.create();
    const blob = await fresh.dumpDataDir('none');
    await fresh.close();
    const tmp = `${file}.${process.pid}`;
    writeFileSync(tmp, Buffer.from(await blob.arrayBuffer()));
    renameSync(tmp, file); // atomic: parallel test files never read half a file
    return blob;
  })();
  return template;
}
