import { PGlite } from '@electric-sql/pglite';
import { ConnectionError } from '../errors.ts';
import { type Db, wrapDbError } from './connection.ts';

/** `pglite:memory` (or `pglite:`) is in memory; `pglite:<dir>` persists in that folder. */
export async function openPglite(url: string): Promise<Db> {
  const target = url.slice('pglite:'.length);
  const dataDir = target === '' || target === 'memory' ? undefined : target;
  let pgl: PGlite;
  try {
    pgl = await PGlite.create(dataDir);
  } catch (err) {
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
    // PGlite has no COPY protocol: COPY goes through its /dev/blob device instead of STDOUT/STDIN.
    async *copyOut(sql) {
      const devSql = sql.replace(/\bTO\s+STDOUT\b/i, "TO '/dev/blob'");
      let blob: Blob | undefined;
      try {
        blob = (await pgl.query(devSql)).blob;
      } catch (err) {
        throw wrapDbError(err, devSql, url);
      }
      if (blob) yield new Uint8Array(await blob.arrayBuffer());
    },
    async copyIn(sql, data) {
      const devSql = sql.replace(/\bFROM\s+STDIN\b/i, "FROM '/dev/blob'");
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
    },
  };
}
