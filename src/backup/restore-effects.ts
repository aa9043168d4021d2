// What a restore does beyond its own tables: rows that its deletes reach through ON DELETE actions in tables
// it does not restore, found by a trial restore that is rolled back.
import type { Db } from '../db/connection.ts';
import { pinnedSettingsSql, qualified } from '../db/sql.ts';
import { CASCADE_REACHABLE_SQL, PRIMARY_KEY_SQL, snapshotDiffSql, snapshotRowsSql } from './backup-sql.ts';
import { getBackups } from './backup.ts';
import { restoreAll } from './restore-tables.ts';

/** Rows of a table the restore does not restore that it deletes or changes all the same (ON DELETE actions). */
export interface CascadeEffect {
  table: string;
  deleted: number;
  /** Set to NULL or their default by ON DELETE SET NULL / SET DEFAULT. */
  changed: number;
  /** Every key (the whole row as text for a table without a primary key). */
  deletedKeys: unknown[];
  changedKeys: unknown[];
}

export interface RestoreEffects {
  cascades: CascadeEffect[];
  /** The trial restore failed: the restore would fail the same way (its message). */
  failure?: string;
}

/**
 * What restoring the backups does beyond their own tables: the tables ON DELETE actions reach from them
 * are snapshotted by key, the restore is tried and rolled back, and the rows gone or changed are listed.
 * Only when such a table exists (otherwise nothing is tried: the per-table preview says it all).
 */
export async function previewEffects(db: Db, ids: number | readonly number[], opts: { from?: 'copy' | 'file' } = {}): Promise<RestoreEffects> {
  const list = typeof ids === 'number' ? [ids] : [...ids];
  const from = opts.from ?? 'copy';
  const backups = await getBackups(db, list);
  const cascades: CascadeEffect[] = [];
  let failure: string | undefined;
  await db.query('BEGIN');
  try {
    await db.exec(pinnedSettingsSql());
    const names = backups.map((b) => qualified(b.sourceTable));
    const reached = (await db.query<{ name: string }>(CASCADE_REACHABLE_SQL, [names])).rows.map((r) => r.name);
    if (reached.length === 0) return { cascades };
    const snaps = [];
    for (const [i, table] of reached.entries()) {
      const key = (await db.query<{ name: string }>(PRIMARY_KEY_SQL, [table])).rows.map((r) => r.name);
      await db.query(snapshotRowsSql(`belay_cascade_${i}`, table, key));
      snaps.push({ name: `belay_cascade_${i}`, table, key });
    }
    await db.query('SAVEPOINT belay_trial_restore');
    try {
      await restoreAll(db, backups, from);
    } catch (err) {
      failure = (err as Error).message;
      await db.query('ROLLBACK TO SAVEPOINT belay_trial_restore');
    }
    if (!failure) {
      for (const s of snaps) {
        const d = (await db.query<Omit<CascadeEffect, 'table'>>(snapshotDiffSql(s.name, s.table, s.key))).rows[0]!;
        if (d.deleted > 0 || d.changed > 0) cascades.push({ table: s.table, ...d, deleted: Number(d.deleted), changed: Number(d.changed) });
      }
    }
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
  return { cascades, failure };
}
