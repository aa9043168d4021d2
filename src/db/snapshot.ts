// Exported snapshots let a second session read exactly what this one reads (the backup's checksums, the
// checks' helper sessions). An engine that cannot export one (PGlite; some PostgreSQL-compatible
// distributed engines) gets undefined, and belay reads in its own session instead: slower, as exact.
import type { Db } from './connection.ts';
import { EXPORT_SNAPSHOT_SQL } from './sql.ts';

/** The open transaction's snapshot id, or undefined where it cannot be exported (the transaction goes on). */
export async function exportSnapshot(db: Db): Promise<string | undefined> {
  if (db.kind !== 'postgres') return undefined;
  await db.query('SAVEPOINT belay_export');
  try {
    const id = (await db.query<{ id: string }>(EXPORT_SNAPSHOT_SQL)).rows[0]!.id;
    await db.query('RELEASE SAVEPOINT belay_export');
    return id;
  } catch {
    await db.query('ROLLBACK TO SAVEPOINT belay_export');
    await db.query('RELEASE SAVEPOINT belay_export');
    return undefined;
  }
}
