// Backup files: each copy exported with COPY (text format), gzip-compressed, plus a manifest.json.
// Files are 0600 and their folder 0700: a backup holds every row of the table.
import type { ChecksumMethod } from '../db/checksum.ts';
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import type { Db } from '../db/connection.ts';
import { BelayError, UsageError } from '../errors.ts';
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

/** The suffix a file has while it is written: renamed to its name only once complete (fsync'd). */
export const PARTIAL_SUFFIX = '.partial';

/**
 * A file name for a copy: the copy's name with anything but letters, digits, "." "_" "-" replaced (a table
 * may be named "a/b" or "..") and, when something was replaced, a hash of the name, so names stay apart.
 */
export function fileNameFor(copyName: string): string {
  const safe = copyName.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_');
  const tag = safe === copyName ? '' : `-${createHash('sha256').update(copyName).digest('hex').slice(0, 8)}`;
  return `${safe}${tag}.copy.gz`;
}

/** A file-system error in words, for a message: "the disk is full (ENOSPC)". */
export function fileProblem(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOSPC: 'the disk is full',
    EDQUOT: 'the disk quota is used up',
    EFBIG: 'the file is larger than this process may write',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    EROFS: 'the file system is read-only',
    ENOENT: 'a folder on the path does not exist (any more)',
    ENOTDIR: 'a part of the path is a file, not a folder',
    EEXIST: 'a file of that name is already there',
    EIO: 'an input/output error',
    EMFILE: 'too many open files',
  };
  return e?.code ? `${why[e.code] ?? e.message} (${e.code})` : (e?.message ?? String(err));
}

/** What went wrong writing a backup file, for the caller to mark the backups and say what to do. */
export class ExportError extends Error {
  readonly path: string;
  readonly table?: string;
  constructor(message: string, opts: { path: string; table?: string; cause: unknown }) {
    super(message, { cause: opts.cause });
    this.path = opts.path;
    this.table = opts.table;
  }
}

/**
 * Exports each copy into a new folder under dir; returns the folder, the manifest path and the manifest.
 * Each file is written under a temporary name, flushed to disk and renamed once whole; the manifest comes
 * last, the same way: a folder without manifest.json holds no backup. On any error the partial files are
 * removed and an ExportError says which file and why.
 */
export async function exportFiles(
  db: Db,
  dir: string,
  folderName: string,
  items: readonly ExportInput[],
  meta: { runId: number | null; migrationId: string | null; gzipLevel?: number },
): Promise<{ folder: string; manifestPath: string; manifest: Manifest }> {
  if (!db.copyOut) throw new UsageError(`this connection (${db.label}) cannot export COPY files`, 'Run without --backup-dir.');
  const folder = path.resolve(dir, folderName);
  try {
    await mkdirEach(path.resolve(dir));
    await mkdir(folder, { mode: 0o700 });
    await chmod(folder, 0o700); // mkdir's mode is filtered by the umask
  } catch (err) {
    throw new ExportError(`cannot create backup folder ${folder}: ${fileProblem(err)}`, { path: folder, cause: err });
  }
  const tables: ManifestTable[] = [];
  let current = { path: folder, table: undefined as string | undefined };
  try {
    for (const it of items) {
      const file = fileNameFor(it.copyName);
      current = { path: path.join(folder, file), table: it.table };
      const { sha256, bytes } = await writeGzip(db.copyOut(copyOutSql(it.copySql)), current.path, meta.gzipLevel ?? DEFAULT_GZIP_LEVEL);
      tables.push({
        backupId: it.backupId,
        table: it.table,
        copy: it.copySql,
        columns: it.columns,
        keyColumns: it.keyColumns,
        rows: it.rows,
        checksum: it.checksum,
        checksumMethod: it.checksumMethod,
        file,
        sha256,
        bytes,
      });
    }
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      runId: meta.runId,
      migrationId: meta.migrationId,
      createdAt: new Date().toISOString(),
      encoding: 'postgresql COPY text format, gzip',
      tables,
    };
    const manifestPath = path.join(folder, 'manifest.json');
    current = { path: manifestPath, table: undefined };
    await writeWhole(manifestPath, Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    return { folder, manifestPath, manifest };
  } catch (err) {
    // nothing half-written stays behind to be taken for a backup: the folder goes, with what it holds
    await rm(folder, { recursive: true, force: true }).catch(() => undefined);
    if (err instanceof BelayError) throw err;
    throw new ExportError(`cannot write backup file ${current.path}${current.table ? ` of table ${current.table}` : ''}: ${fileProblem(err)}`, {
      ...current,
      cause: err,
    });
  }
}

/** Writes bytes to file through a temporary name, flushed, then renamed: a reader sees all of it or nothing. */
async function writeWhole(file: string, data: Buffer): Promise<void> {
  const tmp = `${file}${PARTIAL_SUFFIX}`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
}

/**
 * COPY → gzip → file, through a temporary name renamed once flushed. When the file cannot be written the
 * rest of the COPY is still read (and dropped): the session stays usable, so the run can be marked and its
 * lock released instead of the process hanging on a connection stuck mid-COPY.
 */
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
  const it = source[Symbol.asyncIterator]();
  // the stream may stop reading (it failed); the COPY is then drained below, not abandoned
  const held: AsyncIterable<Uint8Array> = { [Symbol.asyncIterator]: () => ({ next: () => it.next(), return: async () => ({ done: true, value: undefined }) }) };
  const tmp = `${file}${PARTIAL_SUFFIX}`;
  const out = createWriteStream(tmp, { mode: 0o600, flags: 'wx' });
  try {
    await pipeline(Readable.from(held), createGzip({ level }), tap, out);
  } catch (err) {
    for (;;) if ((await it.next().catch(() => ({ done: true }))).done) break;
    throw err;
  }
  const fh = await open(tmp, 'r+');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Folders of earlier exports under dir whose name starts with prefix and that hold no manifest.json: what
 * a process killed mid-export left. Removed when they hold nothing but partial files; never reported.
 */
export async function removeAbandoned(dir: string, prefix: string): Promise<string[]> {
  const removed: string[] = [];
  const entries = await readdir(path.resolve(dir), { withFileTypes: true }).catch(() => []);
  for (const e of entries) {
    if (!e.isDirectory() || !e.name.startsWith(prefix)) continue;
    const folder = path.join(path.resolve(dir), e.name);
    const inside = await readdir(folder).catch(() => ['?']);
    if (inside.includes('manifest.json') || !inside.every((f) => f.endsWith(PARTIAL_SUFFIX))) continue;
    await rm(folder, { recursive: true, force: true });
    removed.push(folder);
  }
  return removed;
}

/** A folder name under dir that is not taken yet: name, name-2, name-3 … */
export async function freeFolderName(dir: string, name: string): Promise<string> {
  for (let i = 1; ; i++) {
    const candidate = i === 1 ? name : `${name}-${i}`;
    if (!(await stat(path.resolve(dir, candidate)).catch(() => undefined))) return candidate;
  }
}

/** True when the file is there with the size and sha256 recorded: what a backup may be reported with. */
export async function fileIntact(file: string | null, sha256: string | null, bytes: number | null): Promise<boolean> {
  if (!file || !sha256) return false;
  const st = await stat(file).catch(() => undefined);
  if (!st?.isFile() || (bytes !== null && st.size !== Number(bytes))) return false;
  return (await fileDigest(file)).sha256 === sha256;
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
    throw new UsageError(
      `--backup-dir ${dir} cannot hold backups (${why})`,
      'Give a writable folder with free space, or drop --backup-dir (the in-database copy is still taken).',
    );
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
