// Cleanup after a verified run: the temporary indexes dropped, what was dropped recorded in runs.summary.cleanup.
import type { Db } from '../db/connection.ts';
import type { Migration } from '../spec/define.ts';
import { mergeSummaryPart } from '../state/summary.ts';
import { dropTempIndexes } from './temp-indexes.ts';

/** Drops the spec's temporary indexes (missing ones are fine) and records their names in summary.cleanup. */
export async function cleanTempIndexes(db: Db, runId: number, spec: Migration): Promise<string[]> {
  const dropped = await dropTempIndexes(db, spec.tempIndexes);
  await mergeSummaryPart(db, runId, 'cleanup', { tempIndexes: { at: new Date().toISOString(), declared: spec.tempIndexes.map((i) => i.name), dropped } });
  return dropped;
}
