// Backups after a verified run: archived to gzip COPY files with a manifest (the backup stage's file format,
// restorable with `belay backups restore <id> --from file`), and the in-database copies dropped once the
// retention period is over. A copy is only ever dropped when its archive file is there and matches its sha256.
import path from 'node:path';
import { dropBackup, exportEntry, getBackup, listBackups, type BackupRecord } from './backup.ts';
import { SET_FILE_SQL } from '../state/backups-sql.ts';
import { ExportError, exportFiles, fileDigest } from './files.ts';
import type { Db } from '../db/connection.ts';
import { BelayError, UsageError } from '../errors.ts';
import { mergeSummaryPart } from '../state/summary.ts';

/** In-database copies are kept this long after they were taken (belay cleanup --retention). */
export const DEFAULT_RETENTION_MS = 7 * 86_400_000;

export interface ArchiveOptions {
  /** Folder the archive goes into (a new sub-folder per archive). Needed when a copy has no file yet. */
  dir?: string;
  /** Drop in-database copies older than this that are archived (default: keep every copy). */
  retentionMs?: number;
  gzipLevel?: number;
  /** Without dir, a copy with no file is an error (default) or, false, simply kept (belay cleanup). */
  requireArchive?: boolean;
  /** The clock, for tests. */
  now?: Date;
}

export interface ArchiveResult {
  /** Backups exported now, with their file. */
  archived: Array<{ id: number; table: string; file: string; sha256: string }>;
  /** The manifest written now, if any. */
  manifest?: string;
  /** In-database copies dropped (archived and past the retention). */
  dropped: number[];
  /** Copies kept, and why. */
  kept: Array<{ id: number; table: string; reason: string }>;
}

/** Archives one backup or every backup of a run; with retentionMs, drops the archived copies past it. */
export async function archiveBackups(db: Db, target: { backupId?: number; runId?: number }, opts: ArchiveOptions = {}): Promise<ArchiveResult> {
  if ((target.backupId === undefined) === (target.runId === undefined)) throw new UsageError('name a backup id or --run N (one of them)');
  const list = target.backupId !== undefined ? [await getBackup(db, target.backupId)] : await listBackups(db, { runId: target.runId });
  const live = list.filter((b) => b.status === 'verified').sort((a, b) => a.id - b.id);
  const toExport = live.filter((b) => !b.file);
  const out: ArchiveResult = { archived: [], dropped: [], kept: [] };
  if (toExport.length > 0 && (opts.dir || opts.requireArchive !== false)) {
    if (!opts.dir) {
      throw new UsageError(`backup(s) ${toExport.map((b) => b.id).join(', ')} have no archive file yet`, 'Pass --dir <folder> to archive them there.');
    }
    const first = toExport[0]!;
    const stamp = (opts.now ?? new Date()).toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
    const folderName = `archive-${first.runId !== null ? `run-${first.runId}` : `backup-${first.id}`}-${stamp}`;
    const { folder, manifestPath, manifest } = await exportFiles(db, opts.dir, folderName, toExport.map(exportEntry), {
      runId: first.runId,
      migrationId: first.migrationId,
      gzipLevel: opts.gzipLevel,
    }).catch((err: unknown) => {
      if (!(err instanceof ExportError)) throw err;
      throw new BelayError('BELAY_BACKUP_FILES', `${err.message}; nothing was archived and every in-database copy is kept`, {
        cause: err,
        details: { path: err.path, table: err.table },
        fix: 'Free space or fix the folder (or give another --dir), then archive again.',
      });
    });
    for (const t of manifest.tables) {
      await db.query(SET_FILE_SQL, [t.backupId, path.join(folder, t.file), t.sha256, t.bytes, manifestPath]);
      out.archived.push({ id: t.backupId, table: t.table, file: path.join(folder, t.file), sha256: t.sha256 });
    }
    out.manifest = manifestPath;
  }
  const now = (opts.now ?? new Date()).getTime();
  for (const stale of live) {
    const b = await getBackup(db, stale.id);
    if (opts.retentionMs === undefined) {
      out.kept.push({ id: b.id, table: b.sourceTable, reason: 'no retention given' });
      continue;
    }
    const age = now - Date.parse(b.createdAt.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'));
    if (age < opts.retentionMs) {
      out.kept.push({ id: b.id, table: b.sourceTable, reason: `within retention (until ${new Date(now - age + opts.retentionMs).toISOString()})` });
      continue;
    }
    const why = await archiveProblem(b);
    if (why) {
      out.kept.push({ id: b.id, table: b.sourceTable, reason: why });
      continue;
    }
    await dropBackup(db, b.id);
    out.dropped.push(b.id);
  }
  const runs = new Set(list.map((b) => b.runId).filter((x): x is number => x !== null));
  for (const runId of runs) {
    await mergeSummaryPart(db, runId, 'cleanup', {
      backups: {
        at: new Date(now).toISOString(),
        manifest: out.manifest ?? null,
        retentionMs: opts.retentionMs ?? null,
        archived: out.archived.filter((a) => list.find((b) => b.id === a.id)?.runId === runId),
        dropped: out.dropped.filter((id) => list.find((b) => b.id === id)?.runId === runId),
        kept: out.kept.filter((k) => list.find((b) => b.id === k.id)?.runId === runId),
      },
    });
  }
  return out;
}

/** Why a copy must not be dropped yet (no file, or a file that does not match what was recorded), or undefined. */
async function archiveProblem(b: BackupRecord): Promise<string | undefined> {
  if (!b.file || !b.fileSha256) return 'not archived (pass --dir to archive it first)';
  try {
    const d = await fileDigest(b.file);
    return d.sha256 === b.fileSha256 ? undefined : `archive file ${b.file} does not match its recorded sha256`;
  } catch (err) {
    return `archive file ${b.file} cannot be read: ${(err as Error).message}`;
  }
}
