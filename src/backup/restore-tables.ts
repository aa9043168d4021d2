// The body of a restore, inside the caller's transaction: each table checked, locked and previewed, then the
// tables written in the order of their foreign keys (restore-order.ts) and compared with their backups.
import { checksumByMethod } from '../db/checksum.ts';
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import { BelayError, serverFields, StateError } from '../errors.ts';
import {
  bumpSequenceSql,
  COLUMNS_SQL,
  DEFER_ALL_SQL,
  lockSql,
  OWNED_SEQUENCES_SQL,
  PRIMARY_KEY_SQL,
  previewKeyedSql,
  previewMultisetSql,
  restoreMergeSql,
  type RestoreStatements,
  restoreReplaceSql,
  setTriggerSql,
  USER_TRIGGERS_SQL,
} from './backup-sql.ts';
import { MARK_RESTORED_SQL } from '../state/backups-sql.ts';
import { type BackupRecord, copySqlName, loadFileIntoStaging } from './backup.ts';
import { foreignKeysAmong, orderByForeignKeys } from './restore-order.ts';

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
  /** Keys per kind (primary key tables only): every key of the rows restore deletes (up to MAX_LISTED), up to 10 of the others. */
  samples: { added: unknown[]; changed: unknown[]; deleted: unknown[] };
  /** 'merge' on the primary key (unchanged rows untouched), or 'replace' every row (no primary key). */
  method: 'merge' | 'replace';
}

export interface RestoreTableResult {
  backupId: number;
  table: string;
  rows: number;
  checksum: string;
  preview: RestorePreview;
}

interface Prepared {
  b: BackupRecord;
  table: CheckedTable;
  source: string;
  preview: RestorePreview;
  sql: RestoreStatements;
  triggers: Array<{ name: string; enabled: string }>;
}

/**
 * Inside the caller's transaction: every table locked and checked first, then the foreign keys' order —
 * rows added since deleted children first, rows put back parents first. A delete that a row still pointing
 * at it blocks (23503) waits, under a savepoint, until that row has been put back. Then every table is
 * compared with its backup.
 */
export async function restoreAll(db: Db, backups: readonly BackupRecord[], from: 'copy' | 'file'): Promise<RestoreTableResult[]> {
  const prepared: Prepared[] = [];
  for (const b of backups) prepared.push(await prepare(db, b, from));
  const names = prepared.map((p) => p.table.sqlName);
  const order = orderByForeignKeys(names, await foreignKeysAmong(db, names));
  if (order.deferred.length > 0) await db.query(DEFER_ALL_SQL);
  const parentsFirst = order.parentsFirst.map((i) => prepared[i]!);
  const childrenFirst = [...parentsFirst].reverse();
  for (const p of prepared) for (const t of p.triggers) await db.query(setTriggerSql(p.table.sqlName, t.name, 'D'));
  const blocked: Prepared[] = [];
  for (const p of childrenFirst) {
    await db.query('SAVEPOINT belay_restore_delete');
    try {
      await db.query(p.sql.delete);
      await db.query('RELEASE SAVEPOINT belay_restore_delete');
    } catch (err) {
      await db.query('ROLLBACK TO SAVEPOINT belay_restore_delete');
      const state = serverFields(err).sqlstate;
      if (state === '23503') blocked.push(p);
      else throw state?.startsWith('23') ? blockedBy(p, `delete the rows added since the backup from ${p.table.sqlName}`, err) : err;
    }
  }
  for (const p of parentsFirst) {
    for (const s of p.sql.write) await run(db, s, p, `put the backed-up rows of ${p.table.sqlName} back`);
  }
  for (const p of blocked) await run(db, p.sql.delete, p, `delete the rows added since the backup from ${p.table.sqlName}`);
  // deferred foreign keys are checked now, not at COMMIT: their failure names the restore, and a table with
  // pending checks cannot have its triggers enabled again
  if (order.deferred.length > 0)
    await run(db, 'SET CONSTRAINTS ALL IMMEDIATE', prepared[0]!, `check the deferred foreign keys ${order.deferred.map((n) => `"${n}"`).join(', ')}`);
  const out: RestoreTableResult[] = [];
  for (const p of prepared) {
    for (const t of p.triggers) await db.query(setTriggerSql(p.table.sqlName, t.name, t.enabled));
    for (const s of (await db.query<{ column: string; seq: string }>(OWNED_SEQUENCES_SQL, [p.table.sqlName])).rows) {
      await db.query(bumpSequenceSql(p.table.sqlName, s.column, s.seq));
    }
  }
  for (const { b, table, preview } of prepared) {
    const after = await checksumByMethod(db, table.sqlName, b.checksumMethod);
    if (Number(after.rows) !== Number(b.rows) || after.checksum !== b.checksum) {
      throw mismatch(b, `after the restore ${table.sqlName} has ${after.rows} rows, checksum ${after.checksum}`);
    }
    await db.query(MARK_RESTORED_SQL, [b.id]);
    out.push({ backupId: b.id, table: b.sourceTable, rows: Number(after.rows), checksum: after.checksum, preview });
  }
  return out;
}

async function prepare(db: Db, b: BackupRecord, from: 'copy' | 'file'): Promise<Prepared> {
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
  const sql =
    table.key.length > 0
      ? restoreMergeSql(table.sqlName, source, table.key, table.writable, table.alwaysIdentity)
      : restoreReplaceSql(table.sqlName, source, table.writable);
  return { b, table, source, preview: p, sql, triggers };
}

/** A statement of the restore; a constraint's refusal (SQLSTATE 23…) is said with the table and what it was doing. */
async function run(db: Db, sql: string, p: Prepared, doing: string): Promise<void> {
  try {
    await db.query(sql);
  } catch (err) {
    throw serverFields(err).sqlstate?.startsWith('23') ? blockedBy(p, doing, err) : err;
  }
}

/** A constraint refused a statement of the restore: which table, what it was doing, what the server said. */
function blockedBy(p: Prepared, doing: string, err: unknown): BelayError {
  const f = serverFields(err);
  const msg = `restore rolled back: could not ${doing}: ${(err as Error).message}${f.detail ? ` (${f.detail})` : ''}`;
  return new BelayError('BELAY_RESTORE_BLOCKED', msg, {
    details: { backupId: p.b.id, table: p.b.sourceTable, ...f },
    cause: err,
    fix: 'Nothing was changed. Rows of another table that is not being restored refer to these rows, or these rows refer to rows deleted since (the constraint and detail above): restore that table too, or put those rows back first.',
  });
}

export async function preview(db: Db, b: BackupRecord, table: CheckedTable, source: string, from: 'copy' | 'file'): Promise<RestorePreview> {
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

export interface CheckedTable {
  sqlName: string;
  key: string[];
  /** Columns restore writes: every column but generated ones (those recompute). */
  writable: string[];
  /** Identity columns GENERATED ALWAYS: inserted back, never updated. */
  alwaysIdentity: string[];
}

/** The table must exist with the backup's columns (names and types, in order). */
export async function checkTable(db: Db, b: BackupRecord): Promise<CheckedTable> {
  const sqlName = qualified(b.sourceTable);
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [sqlName]);
  if (!exists.rows[0]?.ok) {
    throw new StateError('BELAY_BACKUP_SCHEMA_CHANGED', `table ${sqlName} of backup ${b.id} no longer exists`, {
      fix: `Recreate the table with its columns (${b.columns.map((c) => `${c.name} ${c.type}`).join(', ')}), then restore again.`,
    });
  }
  const cols = (await db.query<{ name: string; type: string; generated: boolean; alwaysIdentity: boolean }>(COLUMNS_SQL, [sqlName])).rows;
  const now = cols.map((c) => `${c.name} ${c.type}`).join(', ');
  const then = b.columns.map((c) => `${c.name} ${c.type}`).join(', ');
  if (now !== then) {
    throw new StateError('BELAY_BACKUP_SCHEMA_CHANGED', `table ${sqlName} no longer has the columns it had when backup ${b.id} was taken`, {
      details: { backup: then, now },
      fix: 'Undo the schema change first (the backup holds rows of the old shape), or restore the rows by hand from the copy.',
    });
  }
  const key = (await db.query<{ name: string }>(PRIMARY_KEY_SQL, [sqlName])).rows.map((r) => r.name);
  return {
    sqlName,
    key,
    writable: cols.filter((c) => !c.generated).map((c) => c.name),
    alwaysIdentity: cols.filter((c) => c.alwaysIdentity).map((c) => c.name),
  };
}

export function usable(b: BackupRecord, from: 'copy' | 'file'): void {
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
