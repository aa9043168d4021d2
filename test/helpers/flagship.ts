// Shared setup for tests of the flagship: generated data, the loaded migration, table checksums.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../../src/db/connection.ts';
import { checksumTable } from '../../src/db/checksum.ts';
import { qualified } from '../../src/db/sql.ts';
import { type LoadedMigration, loadMigration } from '../../src/spec/load.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const FLAGSHIP = path.join(ROOT, 'examples/event-type-owner');
export const FLAGSHIP_TABLES = ['EventType', '_user_eventtype', 'users'] as const;

export function flagship(params: Record<string, string> = {}): Promise<LoadedMigration> {
  return loadMigration(FLAGSHIP, params);
}

/** Checksums of the flagship's tables, keyed by table name. */
export async function checksums(db: Db, tables: readonly string[] = FLAGSHIP_TABLES): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables) {
    const c = await checksumTable(db, qualified(t));
    out[t] = `${c.rows}:${c.checksum}`;
  }
  return out;
}

/** Every EventType row as text with one column left out, keyed by id (to prove nothing else changed). */
export async function rowsWithout(db: Db, column: string): Promise<Map<number, string>> {
  const r = await db.query<{ id: number; rest: string }>(
    `SELECT id, (to_jsonb(e) - $1::text)::text AS rest FROM "EventType" e ORDER BY id`, [column],
  );
  return new Map(r.rows.map((x) => [Number(x.id), x.rest]));
}
