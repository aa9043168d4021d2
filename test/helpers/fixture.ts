// What most tests share: a migration given inline (no file), a fresh database that is dropped whatever the
// test does, and a session of its own beside it that is closed whatever the test does.
import { type Db, type OpenOptions, openDb } from '../../src/db/connection.ts';
import type { MigrationInput } from '../../src/spec/define.ts';
import { checksumOf, type LoadedMigration, validate } from '../../src/spec/load.ts';
import { type DbKind, type FreshDb, freshDb } from './fresh-db.ts';

/** A migration as loadMigration() returns it, from a spec given inline. */
export function inline(input: MigrationInput, file = '<inline>'): LoadedMigration {
  const spec = validate(input, file);
  return { spec, file, params: {}, checksum: checksumOf(spec, {}) };
}

/** Runs fn on a fresh database of the kind and drops it afterwards, also when fn throws. */
export async function withDb<T>(kind: DbKind, fn: (f: FreshDb) => Promise<T>, opts: { persistent?: boolean } = {}): Promise<T> {
  const f = await freshDb(kind, opts);
  try {
    return await fn(f);
  } finally {
    await f.drop();
  }
}

/**
 * Runs fn on a session of its own on url (another application beside the test's: a lock holder, a concurrent
 * writer, a role) and closes it afterwards, also when fn throws.
 */
export async function withSession<T>(url: string, fn: (db: Db) => Promise<T>, opts: OpenOptions = {}): Promise<T> {
  const db = await openDb(url, opts);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

/** Polls fn every 50 ms until it gives a value, or fails naming what it waited for. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The first row's column v of a query (undefined without a row). */
export const scalar = async (db: Db, sql: string, params: unknown[] = []) => (await db.query<{ v: unknown }>(sql, params)).rows[0]?.v;
