// A second session inside the snapshot of a backup's transaction: it checksums the source tables while the
// first session copies them, so verification costs the copy's re-read and not also a second full read
// after it. Server only (PGlite has one session); without it takeBackup reads the sources itself.
import { type ChecksumColumn, checksumWith, type TableChecksum } from '../db/checksum.ts';
import { type Db, openDb } from '../db/connection.ts';
import { pinnedSettingsSql } from '../db/sql.ts';
import { BEGIN_READER_SQL, EXPORT_SNAPSHOT_SQL, importSnapshotSql, READER_SERIAL_SQL } from './backup-sql.ts';

export interface SnapshotReader {
  /** Queues a checksum of `table` (quoted) read through `columns`; resolves to it, or to the Error that stopped it. */
  checksum(table: string, columns: readonly ChecksumColumn[]): Promise<TableChecksum | Error>;
  /** Ends the session; with cancel, first cancels its running query from `db` (a failed backup need not wait for it). */
  close(cancel?: boolean): Promise<void>;
}

/** Starts connecting the second session (a server only), so that it connects while belay does other work. Never rejects. */
export function connectReader(db: Db): Promise<Db | undefined> {
  if (db.kind !== 'postgres') return Promise.resolve(undefined);
  return openDb(db.url, { applicationName: 'belay backup reader' }).catch(() => undefined);
}

/**
 * Exports the snapshot of db's open REPEATABLE READ transaction and makes `session` (from connectReader) a
 * read-only reader in that snapshot, with the pinned text settings. Undefined when no second session can be
 * had (PGlite, the server's connection limit, a refused import): the caller then checksums in its own
 * session, same snapshot.
 */
export async function openSnapshotReader(db: Db, session: Promise<Db | undefined> = connectReader(db)): Promise<SnapshotReader | undefined> {
  const reader = await session;
  if (!reader) return undefined;
  let id: string;
  try {
    id = (await db.query<{ id: string }>(EXPORT_SNAPSHOT_SQL)).rows[0]!.id;
  } catch (err) {
    await reader.close();
    throw err;
  }
  let pid: number;
  try {
    await reader.query(BEGIN_READER_SQL);
    await reader.query(importSnapshotSql(id));
    await reader.exec(`${pinnedSettingsSql()} ${READER_SERIAL_SQL}`);
    pid = (await reader.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  } catch {
    await reader.close();
    return undefined;
  }
  let queue: Promise<unknown> = Promise.resolve();
  let busy = false;
  let closing = false;
  return {
    checksum(table, columns) {
      const run = queue.then(async () => {
        if (closing) throw new Error('the snapshot reader was closed');
        busy = true;
        try {
          return await checksumWith(reader, table, columns);
        } finally {
          busy = false;
        }
      }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      queue = run;
      return run;
    },
    async close(cancel = false) {
      closing = true;
      if (cancel && busy) await db.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
      await queue;
      await reader.close();
    },
  };
}
