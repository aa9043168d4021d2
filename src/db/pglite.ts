import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { ConnectionError } from '../errors.ts';

const LOCK_FILE = '.belay-open';

/**
 * PGlite is one process's database: a second process opening the same folder would corrupt it.
 * A lock file holding the owner's pid guards it; a lock left by a dead process (kill -9) is taken over.
 */
function lockFolder(dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (pid && pid !== process.pid && isAlive(pid)) {
        throw new ConnectionError(`PGlite database ${dir} is open in another process (pid ${pid})`, {
          fix: 'Wait for that process to finish: a PGlite folder can be opened by one process at a time.',
        });
      }
      rmSync(file, { force: true });
    }
  }
  throw new ConnectionError(`cannot lock PGlite database ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
import type { Db } from './connection.ts';
import { wrapDbError } from './redact.ts';

/** `pglite:memory` (or `pglite:`) is in memory; `pglite:<dir>` persists in that folder. */
export async function openPglite(url: string, opts: { pgliteTemplate?: Blob } = {}): Promise<Db> {
  const target = url.slice('pglite:'.length);
  const dataDir = target === '' || target === 'memory' ? undefined : target;
  let pgl: PGlite;
  const unlock = dataDir ? lockFolder(dataDir) : () => undefined;
  try {
    pgl = await PGlite.create(dataDir, opts.pgliteTemplate ? { loadDataDir: opts.pgliteTemplate } : {});
  } catch (err) {
    unlock();
    throw new ConnectionError(`cannot open PGlite database at ${dataDir ?? 'memory'}: ${(err as Error).message}`, {
      cause: err,
      fix: 'Check that the folder exists, is writable and holds a PGlite database (or is empty).',
    });
  }
  return {
    kind: 'pglite',
    label: url,
    url,
    async query(sql, params) {
      try {
        const r = await pgl.query(sql, params as unknown[] | undefined);
        const rows = r.rows as never[];
        return { rows, rowCount: r.affectedRows ?? rows.length };
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    async exec(sql) {
      try {
        await pgl.exec(sql);
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    // PGlite has no COPY protocol: COPY goes through its /dev/blob device instead of STDOUT/STDIN. Only the
    // statement's own target is rewritten (the last TO STDOUT: a query inside it may hold those words in a literal).
    async *copyOut(sql) {
      const devSql = sql.replace(/\bTO\s+STDOUT\b(?![\s\S]*\bTO\s+STDOUT\b)/i, "TO '/dev/blob'");
      let blob: Blob | undefined;
      try {
        blob = (await pgl.query(devSql)).blob;
      } catch (err) {
        throw wrapDbError(err, devSql, url);
      }
      if (blob) yield new Uint8Array(await blob.arrayBuffer());
    },
    async copyIn(sql, data) {
      const devSql = sql.replace(/\bFROM\s+STDIN\b(?![\s\S]*\bFROM\s+STDIN\b)/i, "FROM '/dev/blob'");
      const parts: Uint8Array[] = [];
      for await (const c of data) parts.push(c);
      try {
        await pgl.query(devSql, [], { blob: new Blob(parts as BlobPart[]) });
      } catch (err) {
        throw wrapDbError(err, devSql, url);
      }
    },
    async close() {
      await pgl.close().catch(() => undefined);
      unlock();
    },
  };
}
