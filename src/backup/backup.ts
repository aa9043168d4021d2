// Verified backups: an in-database copy of each table, checked against its source in one snapshot,
// optionally exported to gzip COPY files, recorded in belay.backups. Restore lives in restore.ts.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { tableInfo } from '../db/catalog.ts';
import { checksumByMethod, checksumColumns, type ChecksumMethod, checksumTable, checksumWith } from '../db/checksum.ts';
import type { Db } from '../db/connection.ts';
import { ident, pinnedSettingsSql } from '../db/sql.ts';
import { BelayError, StateError } from '../errors.ts';
import { type EventSink, noopSink, recordEvent, tell } from '../state/events.ts';
import { ensureState } from '../state/schema.ts';
import { ownerOnly } from '../state/privileges.ts';
import {
  BACKUP_SCHEMA,
  BEGIN_SNAPSHOT_SQL,
  COLUMNS_SQL,
  copyInSql,
  copyTableSql,
  createStagingSql,
  dropCopySql,
  MAX_IDENT_BYTES,
  PRIMARY_KEY_SQL,
  sizeSql,
} from './backup-sql.ts';
import {
  GET_BACKUP_SQL,
  INSERT_BACKUP_SQL,
  LIST_BACKUPS_SQL,
  MARK_COPY_VERIFIED_SQL,
  MARK_DROPPED_SQL,
  MARK_UNVERIFIED_SQL,
  MARK_VERIFIED_SQL,
  RUN_LIVE_BACKUPS_SQL,
  SET_COPY_NAME_SQL,
  SET_FILE_SQL,
} from '../state/backups-sql.ts';
import { ExportError, exportFiles, fileDigest, fileIntact, freeFolderName, readCopyFile, removeAbandoned } from './files.ts';
import { connectReader, openSnapshotReader, type SnapshotReader } from './snapshot-reader.ts';
import type { Stage } from '../contract.ts';
import { tableRoles } from '../spec/written-tables.ts';

export interface BackupColumn {
  name: string;
  type: string;
}

/** One table's backup, as recorded in belay.backups. */
export interface BackupRecord {
  id: number;
  /** The run it was taken for (null for a backup taken outside a run). */
  runId: number | null;
  migrationId: string | null;
  /** The table as the migration names it, e.g. "EventType". */
  sourceTable: string;
  copySchema: string;
  copyTable: string;
  /** The columns of the copy, in order, as they were in the source. */
  columns: BackupColumn[];
  /** The source's primary key when backed up ([] if none). */
  keyColumns: string[];
  /** Row count and checksum of the source and the copy, equal when verified. */
  rows: number | null;
  checksum: string | null;
  /** How the checksum was computed ('text' for backups taken before the typed checksum). */
  checksumMethod: ChecksumMethod;
  /** pg_total_relation_size of the copy. */
  sizeBytes: number | null;
  /** The gzip COPY file (absolute path) and its sha256, when exported. */
  file: string | null;
  fileSha256: string | null;
  fileBytes: number | null;
  manifest: string | null;
  /** unverified: the copy is verified but the file asked for could not be written; a resume exports it again. */
  status: 'verified' | 'unverified' | 'dropped';
  createdAt: string;
  verifiedAt: string | null;
  restoredAt: string | null;
  droppedAt: string | null;
}

export interface TakeBackupOptions {
  /** Also export every copy to `<dir>/<run-N-…>/` as gzip COPY files with a manifest.json. */
  dir?: string;
  migrationId?: string;
  gzipLevel?: number;
  onEvent?: EventSink;
  /**
   * Server only, default true: checksum the sources on a second session in the copy's snapshot while this
   * one copies. false (or no second session to be had) checksums them here, after each copy.
   */
  concurrent?: boolean;
}

/** The qualified, quoted name of a backup's copy. */
export function copySqlName(b: Pick<BackupRecord, 'copySchema' | 'copyTable'>): string {
  return `${ident(b.copySchema)}.${ident(b.copyTable)}`;
}

/** `r<runId>_<table>`; a name over 63 bytes keeps a prefix and gets a hash of the full name, so it stays unique. */
export function copyName(prefix: string, table: string): string {
  const full = `${prefix}_${table.replace(/\./g, '_')}`;
  if (Buffer.byteLength(full) <= MAX_IDENT_BYTES) return full;
  const hash = createHash('sha256').update(full).digest('hex').slice(0, 10);
  let head = full;
  while (Buffer.byteLength(head) > MAX_IDENT_BYTES - 11) head = head.slice(0, -1);
  return `${head}_${hash}`;
}

/**
 * Copies every table into schema belay_backup and verifies each copy (row count and checksum equal to
 * the source's, all computed in one REPEATABLE READ snapshot) before returning. Throws
 * BELAY_BACKUP_UNVERIFIED (exit 7) and leaves nothing behind if any copy differs.
 * On a server the sources are checksummed by a second session in the same snapshot while this one copies
 * (snapshot-reader.ts); the copy is re-read here, after it is written, with parallel workers if the server
 * gives them.
 */
export async function takeBackup(db: Db, runId: number | null, tables: readonly string[], opts: TakeBackupOptions = {}): Promise<BackupRecord[]> {
  const emit = opts.onEvent ?? noopSink;
  const session = opts.concurrent === false ? undefined : connectReader(db); // connects while the tables are looked up
  let reader: SnapshotReader | undefined;
  let readerClosed: Promise<void> | undefined;
  let sourcesReadBy: 'second session' | 'backup session' = 'backup session';
  const ids: number[] = [];
  const started = performance.now();
  try {
    await ensureState(db);
    const sources = [];
    for (const t of tables) sources.push(await tableInfo(db, t)); // a missing table fails here, before anything is written
    await db.query(BEGIN_SNAPSHOT_SQL);
    try {
      await db.exec(pinnedSettingsSql());
      // the snapshot is taken here, before belay writes anything; the reader shares it
      if (session) reader = await openSnapshotReader(db, session);
      if (reader) sourcesReadBy = 'second session';
      const plans = [];
      for (const src of sources) {
        const cols = (await db.query<BackupColumn>(COLUMNS_SQL, [src.sqlName])).rows.map((c) => ({ name: c.name, type: c.type }));
        const key = (await db.query<{ name: string }>(PRIMARY_KEY_SQL, [src.sqlName])).rows.map((r) => r.name);
        // CREATE TABLE AS keeps names and types, so the copy is read through the source's columns
        const sumCols = await checksumColumns(db, src.sqlName);
        plans.push({ src, cols, key, sumCols, sourceSum: reader?.checksum(src.sqlName, sumCols) });
      }
      readerClosed = reader?.close(); // once its checksums are done, while this session still works
      for (const { src, cols, key, sumCols, sourceSum } of plans) {
        const ins = await db.query<{ id: number }>(INSERT_BACKUP_SQL, [
          runId,
          opts.migrationId ?? null,
          src.name,
          BACKUP_SCHEMA,
          '',
          JSON.stringify(cols),
          key,
        ]);
        const id = ins.rows[0]!.id;
        const name = copyName(runId === null ? `b${id}` : `r${runId}`, src.name);
        const copy = `${ident(BACKUP_SCHEMA)}.${ident(name)}`;
        await db.query(SET_COPY_NAME_SQL, [id, name]);
        await db.query(copyTableSql(copy, src.sqlName));
        // default privileges set for the whole database (GRANT SELECT ON TABLES TO app) reach the copy too
        await ownerOnly(db, BACKUP_SCHEMA, copy);
        // the copy as written, read back; the source in the same snapshot (here if the reader could not)
        const c = await checksumWith(db, copy, sumCols);
        let s = await sourceSum;
        if (!s || s instanceof Error) {
          sourcesReadBy = 'backup session';
          s = await checksumWith(db, src.sqlName, sumCols);
        }
        if (s.rows !== c.rows || s.checksum !== c.checksum) {
          throw new BelayError(
            'BELAY_BACKUP_UNVERIFIED',
            `the backup of ${src.sqlName} does not match its source: ${c.rows} rows, checksum ${c.checksum} in the copy; ${s.rows} rows, checksum ${s.checksum} in the table`,
            {
              details: { table: src.name, source: s, copy: c },
              fix: 'Nothing was written. Run again; if it persists, check the table for types whose text form is not stable and report it.',
            },
          );
        }
        const size = (await db.query<{ bytes: number }>(sizeSql(copy))).rows[0]!.bytes;
        await db.query(MARK_VERIFIED_SQL, [id, c.rows, c.checksum, Number(size)]);
        ids.push(id);
      }
      await db.query('COMMIT');
    } catch (err) {
      await db.query('ROLLBACK').catch(() => undefined);
      await reader?.close(true);
      if (runId !== null)
        await recordEvent(db, { type: 'backup-failed', runId, error: err instanceof BelayError ? err.toJSON() : { message: String(err) } }).catch(
          () => undefined,
        );
      throw err;
    }
  } finally {
    if (!reader) await (await session)?.close(); // connected, never used
  }
  await readerClosed;
  let records = await getBackups(db, ids);
  if (opts.dir) records = await exportBackups(db, records, opts.dir, opts.gzipLevel);
  const durationMs = performance.now() - started;
  for (const b of records) {
    const event = {
      type: 'backup-taken',
      runId: runId ?? undefined,
      backupId: b.id,
      table: b.sourceTable,
      copy: copySqlName(b),
      rows: b.rows,
      checksum: b.checksum,
      sizeBytes: b.sizeBytes,
      file: b.file,
      sha256: b.fileSha256,
    } as const;
    emit(event);
    if (runId !== null) await recordEvent(db, event);
  }
  if (runId !== null) await tell(db, emit, { type: 'backups-verified', runId, count: records.length, durationMs, sourcesReadBy });
  return records;
}

/** What the file export needs of a backup: its copy, columns, key and the checksum the file must match. */
export function exportEntry(b: BackupRecord) {
  return {
    backupId: b.id,
    table: b.sourceTable,
    copySql: copySqlName(b),
    copyName: b.copyTable,
    columns: b.columns,
    keyColumns: b.keyColumns,
    rows: b.rows ?? 0,
    checksum: b.checksum ?? '0',
    checksumMethod: b.checksumMethod,
  };
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

async function exportBackups(db: Db, records: BackupRecord[], dir: string, gzipLevel?: number): Promise<BackupRecord[]> {
  const first = records[0];
  if (!first) return records;
  const ids = records.map((b) => b.id);
  try {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
    const prefix = first.runId !== null ? `run-${first.runId}-` : `backup-${first.id}-`;
    // a process killed mid-export left a folder without a manifest: not a backup, and in the way
    await removeAbandoned(dir, prefix);
    const folderName = await freeFolderName(dir, `${prefix}${stamp}`);
    const { manifestPath, manifest, folder } = await exportFiles(db, dir, folderName, records.map(exportEntry), {
      runId: first.runId,
      migrationId: first.migrationId,
      gzipLevel,
    });
    for (const t of manifest.tables) await db.query(SET_FILE_SQL, [t.backupId, path.join(folder, t.file), t.sha256, t.bytes, manifestPath]);
  } catch (err) {
    if (!(err instanceof ExportError)) throw err;
    // the copies are verified, the files are not there: no backup is reported until they are
    await db.query(MARK_UNVERIFIED_SQL, [ids]).catch(() => undefined);
    if (first.runId !== null)
      await recordEvent(db, { type: 'backup-export-failed', runId: first.runId, backups: ids, path: err.path, table: err.table, error: err.message }).catch(
        () => undefined,
      );
    throw new BelayError(
      'BELAY_BACKUP_FILES',
      `${err.message}. The in-database cop${ids.length > 1 ? 'ies are' : 'y is'} verified but no backup file is reported: backup${ids.length > 1 ? 's' : ''} ${ids.join(', ')} marked unverified, nothing was written to the tables`,
      {
        cause: err,
        details: {
          path: err.path,
          table: err.table,
          backups: ids,
          reason: (err.cause as NodeJS.ErrnoException | undefined)?.code,
          resumable: first.runId !== null,
        },
        fix: `Free space or fix the folder (or give another --backup-dir), then run the same command again: the files are exported anew from the verified copies.`,
      },
    );
  }
  return getBackups(db, ids);
}

/**
 * Backups of a resumed run whose file was asked for but is missing, truncated or was never written (a
 * failed or killed export): the in-database copy is checked against what was recorded, then exported
 * again (or, without a folder now, reported as the verified copy it is). Never a new copy: after the
 * first batch, the tables no longer hold what the run started from.
 */
async function exportAgain(db: Db, records: BackupRecord[], dir: string | undefined, gzipLevel: number | undefined, emit: EventSink): Promise<void> {
  for (const b of records) {
    const c = await checksumTable(db, copySqlName(b), b.checksumMethod);
    if (Number(c.rows) !== Number(b.rows) || c.checksum !== b.checksum) {
      throw new BelayError(
        'BELAY_BACKUP_UNVERIFIED',
        `the copy ${copySqlName(b)} of backup ${b.id} no longer matches what was recorded (${c.rows} rows, checksum ${c.checksum}; recorded ${b.rows}, ${b.checksum})`,
        {
          details: { backupId: b.id, copy: c },
          fix: 'Something changed the in-database copy. Do not resume on it: roll the run back (belay rollback <run>) and take the backup again.',
        },
      );
    }
    if (!dir) await db.query(MARK_COPY_VERIFIED_SQL, [b.id]);
  }
  if (dir) await exportBackups(db, records, dir, gzipLevel);
  for (const b of await getBackups(
    db,
    records.map((x) => x.id),
  )) {
    if (b.runId !== null)
      await tell(db, emit, {
        type: 'backup-exported-again',
        runId: b.runId,
        backupId: b.id,
        table: b.sourceTable,
        copy: copySqlName(b),
        file: b.file,
        sha256: b.fileSha256,
      });
  }
}

export async function getBackup(db: Db, id: number): Promise<BackupRecord> {
  await ensureState(db);
  const r = await db.query<BackupRecord>(GET_BACKUP_SQL, [id]);
  if (!r.rows[0]) throw new StateError('BELAY_NO_BACKUP', `backup ${id} not found`, { fix: 'List backups with belay backups list.' });
  return r.rows[0];
}

/** One at a time: a Db is a single session (pg warns about, and PGlite serialises, overlapping queries). */
export async function getBackups(db: Db, ids: readonly number[]): Promise<BackupRecord[]> {
  const out: BackupRecord[] = [];
  for (const id of ids) out.push(await getBackup(db, id));
  return out;
}

export interface ListBackupsOptions {
  runId?: number;
  /** Include dropped backups. */
  all?: boolean;
  limit?: number;
}

/** Newest first; dropped backups only with all: true. */
export async function listBackups(db: Db, opts: ListBackupsOptions = {}): Promise<BackupRecord[]> {
  await ensureState(db);
  return (await db.query<BackupRecord>(LIST_BACKUPS_SQL, [opts.runId ?? null, opts.all ?? false, opts.limit ?? 100])).rows;
}

export interface VerifyBackupResult {
  id: number;
  table: string;
  ok: boolean;
  /** What was recorded when the backup was taken. */
  expected: { rows: number | null; checksum: string | null };
  /** Recomputed from the in-database copy (undefined if the copy was dropped). */
  copy?: { rows: number; checksum: string; ok: boolean };
  /** Recomputed from the exported file: its sha256, then its rows loaded into a temporary table. */
  file?: { sha256: string; sha256Ok: boolean; rows: number; checksum: string; ok: boolean };
  problems: string[];
}

/** Recomputes count and checksum of the copy (and of the file, if exported). Never throws on a mismatch: ok is false. */
export async function verifyBackup(db: Db, id: number, opts: { files?: boolean } = {}): Promise<VerifyBackupResult> {
  const b = await getBackup(db, id);
  const res: VerifyBackupResult = { id, table: b.sourceTable, ok: true, expected: { rows: b.rows, checksum: b.checksum }, problems: [] };
  const same = (x: { rows: number; checksum: string }) => Number(x.rows) === Number(b.rows) && x.checksum === b.checksum;
  if (b.status !== 'dropped') {
    const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [copySqlName(b)]);
    if (!exists.rows[0]?.ok) {
      res.problems.push(`the copy ${copySqlName(b)} is missing`);
    } else {
      const c = await checksumTable(db, copySqlName(b), b.checksumMethod);
      res.copy = { ...c, ok: same(c) };
      if (!res.copy.ok) res.problems.push(`the copy has ${c.rows} rows, checksum ${c.checksum}; ${b.rows} rows, checksum ${b.checksum} were recorded`);
    }
  }
  if (b.file && opts.files !== false) {
    if (!existsSync(b.file)) {
      res.problems.push(`the file ${b.file} is missing`);
    } else {
      const d = await fileDigest(b.file);
      const c = await fileChecksum(db, b);
      res.file = { sha256: d.sha256, sha256Ok: d.sha256 === b.fileSha256, ...c, ok: d.sha256 === b.fileSha256 && same(c) };
      if (!res.file.sha256Ok) res.problems.push(`the file's sha256 is ${d.sha256}, ${b.fileSha256} was recorded`);
      if (!same(c)) res.problems.push(`the file holds ${c.rows} rows, checksum ${c.checksum}; ${b.rows} rows, checksum ${b.checksum} were recorded`);
    }
  }
  if (b.status === 'dropped' && !b.file) res.problems.push('the backup was dropped and has no file');
  res.ok = res.problems.length === 0;
  return res;
}

/** Count and checksum of a file's rows, loaded into a temporary table that disappears with the transaction. */
async function fileChecksum(db: Db, b: BackupRecord): Promise<{ rows: number; checksum: string }> {
  await db.query('BEGIN');
  try {
    const stage = await loadFileIntoStaging(db, b);
    await db.exec(pinnedSettingsSql());
    return await checksumByMethod(db, ident(stage), b.checksumMethod);
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}

/** Inside the caller's transaction: a temp table (ON COMMIT DROP) with the backup's columns, filled from its file. */
export async function loadFileIntoStaging(db: Db, b: BackupRecord): Promise<string> {
  if (!b.file) throw new StateError('BELAY_BACKUP_NO_FILE', `backup ${b.id} was not exported to a file`, { fix: 'Restore from the in-database copy instead.' });
  if (!db.copyIn) throw new StateError('BELAY_BACKUP_NO_FILE', `this connection (${db.label}) cannot load COPY files`);
  const stage = `belay_restore_${b.id}`;
  await db.query(`DROP TABLE IF EXISTS pg_temp.${ident(stage)}`);
  await db.query(createStagingSql(stage, b.columns));
  await db.copyIn(copyInSql(ident(stage)), readCopyFile(b.file));
  return stage;
}

/** Drops the in-database copy; the record stays (status dropped) and exported files are kept. */
export async function dropBackup(db: Db, id: number): Promise<BackupRecord> {
  const b = await getBackup(db, id);
  if (b.status === 'dropped') return b;
  await db.query('BEGIN');
  try {
    await db.query(dropCopySql(copySqlName(b)));
    await db.query(MARK_DROPPED_SQL, [id]);
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  if (b.runId !== null) await recordEvent(db, { type: 'backup-dropped', runId: b.runId, backupId: id, copy: copySqlName(b) });
  return getBackup(db, id);
}

export interface BackupHookOptions {
  /** Export files under this folder too (--backup-dir). */
  dir?: string;
  gzipLevel?: number;
  /**
   * Also back up the tables the migration only reads (default false: only the tables it writes, see
   * spec/written-tables.ts; a read table's rows, secrets included, are not copied for nothing).
   */
  readTables?: boolean;
}

/**
 * The backup stage: every table the run writes (with readTables, every table of spec.tables) backed up and
 * verified before the first write.
 * On resume, a run that already has a verified backup of each table is not backed up again.
 */
export function backupStage(opts: BackupHookOptions = {}): Stage {
  return {
    name: 'backup',
    async before(ctx) {
      const { db, runId, migration, emit } = ctx;
      const roles = await tableRoles(db, migration.spec);
      const tables = opts.readTables ? migration.spec.tables : roles.written;
      // the newest live backup of each table (a resumed run keeps its copies: they hold the tables as the run found them)
      const latest = new Map((await db.query<BackupRecord>(RUN_LIVE_BACKUPS_SQL, [runId])).rows.map((b) => [b.sourceTable, b]));
      const again: BackupRecord[] = [];
      for (const b of latest.values()) {
        // a file asked for must be there whole (size and sha256 as recorded) for the backup to count
        if (b.status === 'verified' && (!opts.dir || b.file) && (!b.file || (await fileIntact(b.file, b.fileSha256, b.fileBytes)))) {
          emit({ type: 'backup-kept', runId, backupId: b.id, table: b.sourceTable, copy: copySqlName(b), rows: b.rows });
        } else again.push(b);
      }
      if (again.length > 0) await exportAgain(db, again, opts.dir, opts.gzipLevel, emit);
      const missing = tables.filter((t) => !latest.has(t));
      if (missing.length > 0) await takeBackup(db, runId, missing, { dir: opts.dir, gzipLevel: opts.gzipLevel, migrationId: migration.spec.id, onEvent: emit });
    },
  };
}
