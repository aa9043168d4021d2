// Backup files: each copy exported with COPY (text format), gzip-compressed, plus a manifest.json.
// Files are 0600 and their folder 0700: a backup holds every row of the table.
import type { ChecksumMethod } from '../db/checksum.ts';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Db } from '../db/connection.ts';
import { BelayError, EXIT, UsageError } from '../errors.ts';
import { copyOutSql } from './backup-sql.ts';

export const MANIFEST_FORMAT = 'belay-backup/1';
/** gzip level 1: most of the size gain for a fraction of level 6's time. */
export const DEFAULT_GZIP_LEVEL = 1;

export interface ManifestTable {
  backupId: number;
  /** The table as the migration names it. */
  table: string;
  /** The in-database copy the file was exported from. */
  copy: string;
  columns: Array<{ name: string; type: string }>;
  keyColumns: string[];
  rows: number;
  checksum: string;
  /** How checksum was computed (src/db/checksum.ts). */
  checksumMethod: ChecksumMethod;
  /** File name, relative to the manifest's folder. */
  file: string;
  sha256: string;
  bytes: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  runId: number | null;
  migrationId: string | null;
  createdAt: string;
  /** How to read the files: `gunzip | psql -c "COPY <table> FROM STDIN"`. */
  encoding: 'postgresql COPY text format, gzip';
  tables: ManifestTable[];
}

export interface ExportInput {
  backupId: number;
  table: string;
  copySql: string;
  copyName: string;
  columns: Array<{ name: string; type: string }>;
  keyColumns: string[];
  rows: number;
  checksum: string;
  checksumMethod: ChecksumMethod;
}

/** Exports each copy into a new folder under dir; returns the folder, the manifest path and the manifest. */
export async function exportFiles(
  db: Db, dir: string, folderName: string, items: readonly ExportInput[], meta: { runId: number | null; migrationId: string | null; gzipLevel?: number },
): Promise<{ folder: string; manifestPath: string; manifest: Manifest }> {
  if (!db.copyOut) throw new UsageError(`this connection (${db.label}) cannot export COPY files`, 'Run without --backup-dir.');
  const folder = path.resolve(dir, folderName);
  await mkdirEach(path.resolve(dir));
  try {
    await mkdir(folder, { mode: 0o700 });
  } catch (err) {
    throw new BelayError('BELAY_BACKUP_FILES', `cannot create backup folder ${folder}: ${(err as Error).message}`, { cause: err, fix: 'Choose another --backup-dir, or remove the folder left by an earlier attempt.',
    });
  }
  await chmod(folder, 0o700); // mkdir's mode is filtered by the umask
  const tables: ManifestTable[] = [];
  for (const it of items) {
    const file = `${it.copyName}.copy.gz`;
    const { sha256, bytes } = await writeGzip(db.copyOut(copyOutSql(it.copySql)), path.join(folder, file), meta.gzipLevel ?? DEFAULT_GZIP_LEVEL);
    tables.push({ backupId: it.backupId, table: it.table, copy: it.copySql, columns: it.columns, keyColumns: it.keyColumns, rows: it.rows, checksum: it.checksum, checksumMethod: it.checksumMethod, file, sha256, bytes });
  }
  const manifest: Manifest = {
    format: MANIFEST_FORMAT, runId: meta.runId, migrationId: meta.migrationId, createdAt: new Date().toISOString(),
    encoding: 'postgresql COPY text format, gzip', tables,
  };
  const manifestPath = path.join(folder, 'manifest.json');
  await writeFile(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  return { folder, manifestPath, manifest };
}

async function writeGzip(source: AsyncIterable<Uint8Array>, file: string, level: number): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      bytes += chunk.length;
      cb(null, chunk);
    },
  });
  // 'wx': never overwrite a file that is already there
  await pipeline(Readable.from(source), createGzip({ level }), tap, createWriteStream(file, { mode: 0o600, flags: 'wx' }));
  return { sha256: hash.digest('hex'), bytes };
}

/** sha256 and size of a file as stored (compressed). */
export async function fileDigest(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/** The decompressed COPY text of a backup file, as a stream. */
export function readCopyFile(file: string): AsyncIterable<Uint8Array> {
  return createReadStream(file).pipe(createGunzip());
}

export async function readManifest(manifestPath: string): Promise<Manifest> {
  return JSON.parse(await readFile(manifestPath, 'utf8')) as Manifest;
}

/**
 * Checks before anything runs that a backup folder can be created and written, so a bad --backup-dir
 * is a usage error (exit 2) with the database untouched, never a failure half-way through a COPY.
 */
export async function assertWritableDir(dir: string): Promise<void> {
  const { access, constants, rm, stat } = await import('node:fs/promises');
  const abs = path.resolve(dir);
  const probe = path.join(abs, `.belay-probe-${process.pid}`);
  try {
    const s = await stat(abs).catch(() => undefined);
    if (s && !s.isDirectory()) throw new Error('it exists and is not a folder');
    await mkdirEach(abs);
    await access(abs, constants.W_OK);
    await writeFile(probe, 'x', { mode: 0o600 });
    await rm(probe, { force: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why = e.code === 'ENOSPC' ? 'the disk is full' : e.code ? `${e.code}: ${e.message}` : e.message;
    throw new UsageError(`--backup-dir ${dir} cannot hold backups (${why})`, 'Give a writable folder with free space, or drop --backup-dir (the in-database copy is still taken).');
  }
}

/**
 * mkdir -p one level at a time: Node's recursive mkdir never returns on some special file systems
 * (a folder under /proc), where a plain mkdir fails at once.
 */
async function mkdirEach(abs: string): Promise<void> {
  const { stat } = await import('node:fs/promises');
  const missing: string[] = [];
  let dir = abs;
  while (!(await stat(dir).catch(() => undefined))) {
    missing.unshift(dir);
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  for (const d of missing) await mkdir(d, { mode: 0o700 });
}
