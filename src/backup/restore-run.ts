// `belay rollback <run> --from-backup`: the second path back. Restores the tables the run wrote from their
// verified backups (restoreBackup, one transaction, in the foreign keys' order, checked against the backups'
// checksums), after showing what that would overwrite, including changes made by others since the backup and
// rows of other tables that cascades delete, and asking to confirm. A table the run only read is restored
// only when asked (readTables): restoring it deletes whatever others added since.
import { type BackupRecord, copySqlName, listBackups } from './backup.ts';
import { previewEffects, previewRestore, type RestoreEffects, type RestorePreview, restoreBackup } from './restore.ts';
import { type TableRoles, tableRoles } from '../spec/written-tables.ts';
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { StateError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import { recordEvent } from '../state/events.ts';
import { getRun, MARK_RESTORED_FROM_BACKUP_SQL, setRunStatus } from '../state/runs.ts';
import { othersChangesSql, writtenKeysSql } from '../state/decision-sql.ts';
import { storedDecision } from '../state/decision.ts';
import { resolveStep } from '../spec/resolve.ts';

export interface BackupRollbackPreview {
  runId: number;
  /** Tables restored that the run only read (with readTables). */
  readTables: string[];
  /** Tables the run only read that are left as they are (backed up, but readTables not given). */
  skipped: string[];
  /** Rows of tables not restored that the restore deletes or changes (ON DELETE actions), every key; a failure the trial restore met. */
  effects: RestoreEffects;
  tables: Array<
    RestorePreview & {
      /** Rows that differ from the backup and that this run never wrote (null: table without a one-column key). */
      notWrittenByRun: { count: number; sample: string[] } | null;
    }
  >;
}

export interface BackupRollbackOptions {
  /** Shown the preview before anything is written; false cancels. Without it the restore proceeds. */
  confirm?: (p: BackupRollbackPreview) => boolean | Promise<boolean>;
  /** 'copy' (default): the in-database copies; 'file': the exported files. */
  from?: 'copy' | 'file';
  /** Also restore the tables the run only read (they must have been backed up: apply --backup-read-tables). */
  readTables?: boolean;
}

export interface BackupRollbackResult {
  runId: number;
  status: 'restored' | 'cancelled';
  preview: BackupRollbackPreview;
  tables: Array<{ table: string; backupId: number; rows: number; checksum: string }>;
  durationMs: number;
}

export async function rollbackFromBackup(db: Db, runId: number, opts: BackupRollbackOptions = {}): Promise<BackupRollbackResult> {
  const t0 = performance.now();
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const roles = await tableRoles(db, spec);
  const backups = await runBackups(db, runId, roles, opts.readTables);
  // the preview restoreBackup computes under the migration's lock, completed with what others changed
  let preview: BackupRollbackPreview = { runId, readTables: [], skipped: [], effects: { cascades: [] }, tables: [] };
  const confirm = async (previews: RestorePreview[], effects: RestoreEffects) => {
    preview = await withOthers(db, runId, roles, backups, previews, effects, opts);
    return opts.confirm ? opts.confirm(preview) : true;
  };
  const r = await restoreBackup(
    db,
    backups.map((b) => b.id),
    { from: opts.from, confirm },
  );
  if (r.status === 'cancelled') {
    await recordEvent(db, { type: 'rollback-from-backup-cancelled', runId });
    return { runId, status: 'cancelled', preview, tables: [], durationMs: performance.now() - t0 };
  }
  for (const sql of MARK_RESTORED_FROM_BACKUP_SQL) await db.query(sql, [runId]);
  const tables = r.tables.map((t) => ({ table: t.table, backupId: t.backupId, rows: t.rows, checksum: t.checksum }));
  await setRunStatus(db, runId, 'rolled_back', { summary: { rollback: { by: 'backup', tables } } });
  await recordEvent(db, {
    type: 'rollback-from-backup',
    runId,
    tables,
    overwritten: preview.tables.map((p) => ({
      table: p.table,
      changed: p.changed,
      added: p.added,
      deleted: p.deleted,
      notWrittenByRun: p.notWrittenByRun?.count,
    })),
    cascades: preview.effects.cascades.map((c) => ({ table: c.table, deleted: c.deleted, changed: c.changed })),
    readTables: preview.readTables,
  });
  return { runId, status: 'restored', preview, tables, durationMs: performance.now() - t0 };
}

/** The newest verified backup of every table the run wrote (and read, with readTables); refuses when one is missing. */
async function runBackups(db: Db, runId: number, roles: TableRoles, readTables = false): Promise<BackupRecord[]> {
  const all = await listBackups(db, { runId });
  const out: BackupRecord[] = [];
  const missing: string[] = [];
  for (const t of readTables ? [...roles.written, ...roles.read] : roles.written) {
    const b = all.find((x) => x.sourceTable === t && x.status === 'verified' && x.checksum !== null);
    if (b) out.push(b);
    else missing.push(t);
  }
  if (missing.length > 0) {
    const read = missing.filter((t) => roles.read.includes(t));
    throw new StateError('BELAY_NO_BACKUP', `run ${runId} has no verified backup of ${missing.map((t) => `"${t}"`).join(', ')}; nothing was restored`, {
      details: { runId, missing, readOnly: read },
      fix:
        read.length === missing.length
          ? `${read.map((t) => `"${t}"`).join(', ')} ${read.length > 1 ? 'are' : 'is'} only read by the migration, so the run did not back ${read.length > 1 ? 'them' : 'it'} up (apply --backup-read-tables does): restore without --include-read-tables.`
          : `Roll back from the undo log instead (belay rollback ${runId}), or restore single backups with belay backups restore.`,
    });
  }
  return out;
}

/** What restoring would overwrite, computed without writing anything. */
export async function previewRollbackFromBackup(
  db: Db,
  runId: number,
  opts: { from?: 'copy' | 'file'; readTables?: boolean } = {},
): Promise<BackupRollbackPreview> {
  const run = await getRun(db, runId);
  const roles = await tableRoles(db, run.spec as Migration);
  const backups = await runBackups(db, runId, roles, opts.readTables);
  const ids = backups.map((b) => b.id);
  return withOthers(db, runId, roles, backups, await previewRestore(db, ids, opts), await previewEffects(db, ids, opts), opts);
}

async function withOthers(
  db: Db,
  runId: number,
  roles: TableRoles,
  backups: BackupRecord[],
  previews: RestorePreview[],
  effects: RestoreEffects,
  opts: { from?: 'copy' | 'file'; readTables?: boolean },
): Promise<BackupRollbackPreview> {
  const spec = (await getRun(db, runId)).spec as Migration;
  const tables: BackupRollbackPreview['tables'] = [];
  for (const p of previews) {
    const b = backups.find((x) => x.id === p.backupId)!;
    let notWrittenByRun: { count: number; sample: string[] } | null = null;
    const written = b.keyColumns.length > 0 && (opts.from ?? 'copy') === 'copy' ? await writtenKeysOf(db, runId, spec, b.sourceTable, b.keyColumns) : undefined;
    if (written !== undefined) {
      const r = await db.query<{ n: number; sample: string[] }>(othersChangesSql(qualified(b.sourceTable), copySqlName(b), b.keyColumns, written));
      notWrittenByRun = { count: r.rows[0]!.n, sample: r.rows[0]!.sample };
    }
    tables.push({ ...p, notWrittenByRun });
  }
  const backedUp = new Set((await listBackups(db, { runId })).filter((b) => b.status === 'verified').map((b) => b.sourceTable));
  return {
    runId,
    readTables: opts.readTables ? roles.read : [],
    skipped: opts.readTables ? [] : roles.read.filter((t) => backedUp.has(t)),
    effects,
    tables,
  };
}

/**
 * The keys the run's batched steps wrote to `table`, as text: one SELECT over their decisions. Undefined when
 * a step walks another key than the backup's (the primary key): their keys would not compare.
 */
async function writtenKeysOf(db: Db, runId: number, spec: Migration, table: string, keyColumns: readonly string[]): Promise<string | undefined> {
  const parts: string[] = [];
  for (const [stepNo, step] of spec.steps.entries()) {
    if (step.kind !== 'batched' || step.table !== table) continue;
    const target = await resolveStep(db, step, stepNo);
    if (target.keyColumns.join('\0') !== keyColumns.join('\0')) return undefined;
    const d = await storedDecision(db, runId, stepNo, target);
    if (d) parts.push(writtenKeysSql(d, runId, stepNo));
  }
  return parts.length ? parts.join('\nUNION ALL\n') : 'SELECT NULL::text AS k WHERE false';
}
