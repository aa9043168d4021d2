// Restore: puts tables back exactly as they were backed up (same count and checksum), in one transaction.
import type { Db } from '../db/connection.ts';
import { ident, pinnedSettingsSql } from '../db/sql.ts';
import { acquireMigrationLock } from '../state/lock.ts';
import { recordEvent } from '../state/events.ts';
import { getBackup, getBackups, copySqlName, loadFileIntoStaging } from './backup.ts';
import { previewEffects, type RestoreEffects } from './restore-effects.ts';
import { checkTable, preview, type RestorePreview, type RestoreTableResult, restoreAll, usable } from './restore-tables.ts';

export { type CascadeEffect, previewEffects, type RestoreEffects } from './restore-effects.ts';
export type { RestorePreview, RestoreTableResult } from './restore-tables.ts';

export interface RestoreOptions {
  /** 'copy' (default): the in-database copy; 'file': the exported gzip COPY file. */
  from?: 'copy' | 'file';
  /**
   * Called with the preview before anything is written; return false to cancel (status 'cancelled').
   * Without it, restore proceeds (library callers decide for themselves). `effects`: what the restore does
   * to tables it does not restore (cascades), from a trial restore rolled back.
   */
  confirm?: (previews: RestorePreview[], effects: RestoreEffects) => boolean | Promise<boolean>;
}

export interface RestoreResult {
  /** restored: every table equals its backup; cancelled: confirm said no, nothing written. */
  status: 'restored' | 'cancelled';
  tables: RestoreTableResult[];
  durationMs: number;
}

/**
 * Restores one or several backups in ONE transaction. Contract: on success every table has exactly the
 * row count and checksum recorded when it was backed up (checked before COMMIT; otherwise ROLLBACK and
 * BELAY_RESTORE_MISMATCH). Several tables go in the order of their foreign keys (rows added since deleted
 * children first, backed-up rows put back parents first, deferrable keys deferred; a cycle of
 * non-deferrable keys is refused, BELAY_RESTORE_CYCLE; a constraint's refusal is BELAY_RESTORE_BLOCKED).
 * User triggers of the tables are disabled for the restore and re-enabled; rows referenced by foreign keys
 * are updated in place (merge on the primary key), never deleted and re-inserted; owned sequences are moved
 * forward past the restored ids, never back. The table must still have the backup's columns
 * (BELAY_BACKUP_SCHEMA_CHANGED otherwise). Takes the migration's advisory lock.
 */
export async function restoreBackup(db: Db, ids: number | readonly number[], opts: RestoreOptions = {}): Promise<RestoreResult> {
  const started = performance.now();
  const list = typeof ids === 'number' ? [ids] : [...ids];
  const backups = await getBackups(db, list);
  const from = opts.from ?? 'copy';
  for (const b of backups) usable(b, from);
  const releases = [];
  try {
    for (const m of new Set(backups.map((b) => b.migrationId).filter((x): x is string => !!x))) releases.push(await acquireMigrationLock(db, m, 'fail'));
    if (opts.confirm) {
      const previews = await previewRestore(db, list, { from });
      if (!(await opts.confirm(previews, await previewEffects(db, list, { from }))))
        return { status: 'cancelled', tables: [], durationMs: performance.now() - started };
    }
    let tables: RestoreTableResult[] = [];
    await db.query('BEGIN');
    try {
      await db.exec(pinnedSettingsSql());
      tables = await restoreAll(db, backups, from);
      await db.query('COMMIT');
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    for (const t of tables) {
      const b = backups.find((x) => x.id === t.backupId)!;
      if (b.runId !== null)
        await recordEvent(db, {
          ...t.preview,
          type: 'backup-restored',
          runId: b.runId,
          backupId: b.id,
          table: b.sourceTable,
          rows: t.rows,
          checksum: t.checksum,
        });
    }
    return { status: 'restored', tables, durationMs: performance.now() - started };
  } finally {
    for (const r of releases) await r();
  }
}

/** What restoring would change, computed in a transaction that is rolled back (nothing is written). */
export async function previewRestore(db: Db, ids: number | readonly number[], opts: { from?: 'copy' | 'file' } = {}): Promise<RestorePreview[]> {
  const list = typeof ids === 'number' ? [ids] : [...ids];
  const from = opts.from ?? 'copy';
  const out: RestorePreview[] = [];
  await db.query('BEGIN');
  try {
    await db.exec(pinnedSettingsSql());
    for (const id of list) {
      const b = await getBackup(db, id);
      usable(b, from);
      const table = await checkTable(db, b);
      const source = from === 'file' ? ident(await loadFileIntoStaging(db, b)) : copySqlName(b);
      out.push(await preview(db, b, table, source, from));
    }
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
  return out;
}
