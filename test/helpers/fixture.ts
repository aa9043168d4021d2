// What most tests share: a migration given inline (no file), and a fresh database that is dropped
// whatever the test does.
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
