// Exported snapshots let a second session read exactly what this one reads (the backup's checksums, the
// checks' helper sessions). PGlite has one session and gets undefined: belay then reads in its own session,
// slower and as exact. No savepoint guards the call: PostgreSQL refuses to export from a subtransaction.
import type { Db } from './connection.ts';
import { EXPORT_SNAPSHOT_SQL } from './sql.ts';

/** The open transaction's snapshot id, or undefined on an engine with one session. */
export async function exportSnapshot(db: Db): Promise<string | undefined> {
  if (db.kind !== 'postgres') return undefined;
  return (await db.query<{ id: string }>(EXPORT_SNAPSHOT_SQL)).rows[0]!.id;
}
