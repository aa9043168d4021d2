// Every test gets its own database: a new database on the server, a new PGlite instance (or folder).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
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
      db, url,
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
    return { db, url, async drop() { await db.close(); rmSync(dir, { recursive: true, force: true }); } };
  }
  const db = await openDb('pglite:memory');
  return { db, url: 'pglite:memory', async drop() { await db.close(); } };
}
