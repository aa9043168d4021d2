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
  const r = await db.query<{ id: number; rest: string }>(`SELECT id, (to_jsonb(e) - $1::text)::text AS rest FROM "EventType" e ORDER BY id`, [column]);
  return new Map(r.rows.map((x) => [Number(x.id), x.rest]));
}

/** The keys a run's first step wrote (as its decision and batches record them), in key order. */
export async function writtenIds(db: Db, runId: number, stepNo = 0): Promise<number[]> {
  const r = await db.query<{ relation: string; key_type: string }>(`SELECT relation, key_type FROM belay.decisions WHERE run_id = $1 AND step_no = $2`, [
    runId,
    stepNo,
  ]);
  const d = r.rows[0];
  if (!d) return [];
  const w = await db.query<{ k: number }>(
    `SELECT d.k FROM belay.batches b JOIN ${d.relation} d ON d.round = b.round AND d.skipped IS NULL AND d.k BETWEEN b.lo::${d.key_type} AND b.hi::${d.key_type}
      WHERE b.run_id = $1 AND b.step_no = $2 ORDER BY d.k`,
    [runId, stepNo],
  );
  return w.rows.map((x) => Number(x.k));
}
