// Cleanup after a verified run: temporary indexes dropped, backups archived to files and their
// in-database copies dropped once the retention period is over. What was cleaned lands in runs.summary.cleanup.
import type { Db } from '../db/connection.ts';
import { dropTempIndexes } from './temp-indexes.ts';
import type { Migration } from '../spec/define.ts';
import { MERGE_CLEANUP_SQL } from '../verify/verify-sql.ts';

/** Drops the spec's temporary indexes (missing ones are fine) and records their names in summary.cleanup. */
export async function cleanTempIndexes(db: Db, runId: number, spec: Migration): Promise<string[]> {
  const dropped = await dropTempIndexes(db, spec.tempIndexes);
  await recordCleanup(db, runId, { tempIndexes: { at: new Date().toISOString(), declared: spec.tempIndexes.map((i) => i.name), dropped } });
  return dropped;
}

/** Merges one part into runs.summary.cleanup (tempIndexes, backups …), keeping the others. */
export async function recordCleanup(db: Db, runId: number, part: Record<string, unknown>): Promise<void> {
  await db.query(MERGE_CLEANUP_SQL, [runId, JSON.stringify(part)]);
}
