// Restore: puts a table back exactly as it was backed up (same count and checksum), in one transaction.
import { checksumByMethod } from '../db/checksum.ts';
import type { Db } from '../db/connection.ts';
import { ident, pinnedSettingsSql, qualified } from '../db/sql.ts';
import { BelayError, StateError } from '../errors.ts';
import { acquireMigrationLock } from '../state/lock.ts';
import { recordEvent } from '../state/events.ts';
import {
  bumpSequenceSql,
  COLUMNS_SQL,
  lockSql,
  MARK_RESTORED_SQL,
  OWNED_SEQUENCES_SQL,
  PRIMARY_KEY_SQL,
  previewKeyedSql,
  previewMultisetSql,
  restoreMergeSql,
  restoreReplaceSql,
  setTriggerSql,
  USER_TRIGGERS_SQL,
} from './backup-sql.ts';
import { type BackupRecord, copySqlName, getBackup, getBackups, loadFileIntoStaging } from './backup.ts';

export interface RestorePreview {
  backupId: number;
  table: string;
  from: 'copy' | 'file';
  /** Rows in the table now that the backup does not have: restore deletes them. */
  added: number;
  /** Rows whose key is in both but whose values differ: restore overwrites them (0 without a primary key). */
  changed: number;
  /** Rows of the backup missing from the table: restore inserts them. */
  deleted: number;
  /** Up to 10 keys per kind (primary key tables only). */
  samples: { added: unknown[]; changed: unknown[]; deleted: unknown[] };
  /** 'merge' on the primary key (unchanged rows untouched), or 'replace' every row (no primary key). */
  method: 'merge' | 'replace';
}

export interface RestoreOptions {
  /** 'copy' (default): the in-database copy; 'file': the exported gzip COPY file. */
  from?: 'copy' | 'file';
  /**
   * Called with the preview before anything is written; return false to cancel (status 'cancelled').
   * Without it, restore proceeds (library callers decide for themselves).
   */
  confirm?: (previews: RestorePreview[]) => boolean | Promise<boolean>;
}

export interface RestoreTableResult {
  backupId: number;
  table: string;
  rows: number;
  checksum: string;
  preview: RestorePreview;
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
 * BELAY_RESTORE_MISMATCH). User triggers of the table are disabled for the restore and re-enabled;
 * rows referenced by foreign keys are updated in place (merge on the primary key), never deleted and
 * re-inserted; owned sequences are moved forward past the restored ids, never back. The table must still
 * have the backup's columns (BELAY_BACKUP_SCHEMA_CHANGED otherwise). Takes the migration's advisory lock.
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
      if (!(await opts.confirm(previews))) return { status: 'cancelled', tables: [], durationMs: performance.now() - started };
    }
    const tables: RestoreTableResult[] = [];
    await db.query('BEGIN');
    try {
      await db.exec(pinnedSettingsSql());
      for (const b of backups) tables.push(await restoreOne(db, b, from));
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

async function restoreOne(db: Db, b: BackupRecord, from: 'copy' | 'file'): Promise<RestoreTableResult> {
  const table = await checkTable(db, b);
  await db.query(lockSql(table.sqlName));
  const source = from === 'file' ? ident(await loadFileIntoStaging(db, b)) : copySqlName(b);
  if (from === 'file') {
    // a damaged file must not become the table
    const f = await checksumByMethod(db, source, b.checksumMethod);
    if (Number(f.rows) !== Number(b.rows) || f.checksum !== b.checksum) {
      throw mismatch(b, `the file ${b.file} holds ${f.rows} rows, checksum ${f.checksum}`);
    }
  }
  const p = await preview(db, b, table, source, from);
  const triggers = (await db.query<{ name: string; enabled: string }>(USER_TRIGGERS_SQL, [table.sqlName])).rows;
  for (const t of triggers) await db.query(setTriggerSql(table.sqlName, t.name, 'D'));
  const stmts =
    table.key.length > 0 ? restoreMergeSql(table.sqlName, source, table.key, table.writable) : restoreReplaceSql(table.sqlName, source, table.writable);
  for (const s of stmts) await db.query(s);
  for (const t of triggers) await db.query(setTriggerSql(table.sqlName, t.name, t.enabled));
  for (const s of (await db.query<{ column: string; seq: string }>(OWNED_SEQUENCES_SQL, [table.sqlName])).rows) {
    await db.query(bumpSequenceSql(table.sqlName, s.column, s.seq));
  }
  const after = await checksumByMethod(db, table.sqlName, b.checksumMethod);
  if (Number(after.rows) !== Number(b.rows) || after.checksum !== b.checksum) {
    throw mismatch(b, `after the restore ${table.sqlName} has ${after.rows} rows, checksum ${after.checksum}`);
  }
  await db.query(MARK_RESTORED_SQL, [b.id]);
  return { backupId: b.id, table: b.sourceTable, rows: Number(after.rows), checksum: after.checksum, preview: p };
}

async function preview(db: Db, b: BackupRecord, table: CheckedTable, source: string, from: 'copy' | 'file'): Promise<RestorePreview> {
  const p: RestorePreview = {
    backupId: b.id,
    table: b.sourceTable,
    from,
    added: 0,
    changed: 0,
    deleted: 0,
    samples: { added: [], changed: [], deleted: [] },
    method: table.key.length > 0 ? 'merge' : 'replace',
  };
  if (table.key.length > 0) {
    const r = await db.query<{ kind: 'added' | 'changed' | 'deleted'; n: number; sample: unknown[] }>(previewKeyedSql(table.sqlName, source, table.key));
    for (const x of r.rows) {
      p[x.kind] = Number(x.n);
      p.samples[x.kind] = x.sample ?? [];
    }
  } else {
    const r = await db.query<{ kind: 'added' | 'deleted'; n: number }>(previewMultisetSql(table.sqlName, source));
    for (const x of r.rows) p[x.kind] = Number(x.n);
  }
  return p;
}

interface CheckedTable {
  sqlName: string;
  key: string[];
  /** Columns restore writes: every column but generated ones (those recompute). */
  writable: string[];
}

/** The table must exist with the backup's columns (names and types, in order). */
async function checkTable(db: Db, b: BackupRecord): Promise<CheckedTable> {
  const sqlName = qualified(b.sourceTable);
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [sqlName]);
  if (!exists.rows[0]?.ok) {
    throw new StateError('BELAY_BACKUP_SCHEMA_CHANGED', `table ${sqlName} of backup ${b.id} no longer exists`, {
      fix: `Recreate the table with its columns (${b.columns.map((c) => `${c.name} ${c.type}`).join(', ')}), then restore again.`,
    });
  }
  const cols = (await db.query<{ name: string; type: string; generated: boolean }>(COLUMNS_SQL, [sqlName])).rows;
  const now = cols.map((c) => `${c.name} ${c.type}`).join(', ');
  const then = b.columns.map((c) => `${c.name} ${c.type}`).join(', ');
  if (now !== then) {
    throw new StateError('BELAY_BACKUP_SCHEMA_CHANGED', `table ${sqlName} no longer has the columns it had when backup ${b.id} was taken`, {
      details: { backup: then, now },
      fix: 'Undo the schema change first (the backup holds rows of the old shape), or restore the rows by hand from the copy.',
    });
  }
  const key = (await db.query<{ name: string }>(PRIMARY_KEY_SQL, [sqlName])).rows.map((r) => r.name);
  return { sqlName, key, writable: cols.filter((c) => !c.generated).map((c) => c.name) };
}

function usable(b: BackupRecord, from: 'copy' | 'file'): void {
  if (from === 'copy' && b.status === 'dropped') {
    throw new StateError('BELAY_BACKUP_DROPPED', `the in-database copy of backup ${b.id} was dropped`, {
      fix: b.file ? `Restore from its file: belay backups restore ${b.id} --from file.` : 'No copy or file of this backup is left.',
    });
  }
  if (b.rows === null || b.checksum === null) throw new StateError('BELAY_BACKUP_UNVERIFIED', `backup ${b.id} was never verified`);
}

function mismatch(b: BackupRecord, what: string): BelayError {
  return new BelayError(
    'BELAY_RESTORE_MISMATCH',
    `restore of backup ${b.id} rolled back: ${what}; the backup recorded ${b.rows} rows, checksum ${b.checksum}`,
    {
      details: { backupId: b.id, table: b.sourceTable },
      fix: 'Nothing was changed. Check for rules or constraints that alter inserted rows, then verify the backup (belay backups verify).',
    },
  );
}
