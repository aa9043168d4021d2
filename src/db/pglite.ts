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
    async close() {
      await pgl.close().catch(() => undefined);
    },
  };
}
