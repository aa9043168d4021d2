// `_prisma_migrations` read as `prisma migrate deploy` reads it: a migration is applied when a row with its
// name has finished_at set and rolled_back_at NULL; a row with neither is a failed migration (deploy refuses
// to go on, P3009); a folder without a row that is not rolled back is pending.
import type { Db } from '../db/connection.ts';
import { checksumMatches } from './migrations-dir.ts';
import { historySql, MIGRATIONS_TABLE_EXISTS_SQL, OTHER_TABLES_SQL } from './prisma-sql.ts';
import type { HistoryRow, MigrationFile, MigrationStatus } from './types.ts';

export async function readHistory(db: Db, schema: string): Promise<HistoryRow[] | null> {
  const exists = await db.query<{ exists: boolean }>(MIGRATIONS_TABLE_EXISTS_SQL, [schema]);
  if (!exists.rows[0]?.exists) return null;
  return (await db.query<HistoryRow>(historySql(schema))).rows.map((r) => ({ ...r, applied_steps_count: Number(r.applied_steps_count) }));
}

export function migrationStatus(files: readonly MigrationFile[], rows: readonly HistoryRow[] | null): MigrationStatus {
  const live = (rows ?? []).filter((r) => r.rolled_back_at === null);
  const names = new Set(live.map((r) => r.migration_name));
  const applied = live.filter((r) => r.finished_at !== null);
  const byName = new Map(files.map((f) => [f.name, f]));
  const changed = applied.flatMap((r) => {
    const f = byName.get(r.migration_name);
    return f && !checksumMatches(f.script, r.checksum) ? [{ name: r.migration_name, recorded: r.checksum, local: f.checksum }] : [];
  });
  return {
    tableExists: rows !== null,
    applied: applied.map((r) => r.migration_name),
    pending: files.filter((f) => !names.has(f.name)),
    failed: live.filter((r) => r.finished_at === null),
    changed,
    missingLocally: applied.map((r) => r.migration_name).filter((n) => !byName.has(n)),
  };
}

/** Whether Prisma's schema holds tables other than the history (then it will not create the history). */
export async function schemaHasTables(db: Db, schema: string): Promise<boolean> {
  return ((await db.query<{ n: number }>(OTHER_TABLES_SQL, [schema])).rows[0]?.n ?? 0) > 0;
}

/** The schema Prisma uses: the `schema` parameter of the URL, else public. */
export function prismaSchema(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return 'public';
  return new URLSearchParams(url.slice(q + 1)).get('schema') || 'public';
}
