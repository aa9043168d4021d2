// A second session inside the snapshot of a backup's transaction: it checksums the source tables while the
// first session copies them, so verification costs the copy's re-read and not also a second full read
// after it. Server only (PGlite has one session); without it takeBackup reads the sources itself.
import { type ChecksumColumn, checksumWith, type TableChecksum } from '../db/checksum.ts';
import { type Db, openDb } from '../db/connection.ts';
import { exportSnapshot } from '../db/snapshot.ts';
import { importSnapshotSql, pinnedSettingsSql } from '../db/sql.ts';
import { BEGIN_READER_SQL, READER_SERIAL_SQL } from './backup-sql.ts';

export interface SnapshotReader {
  /** Queues a checksum of `table` (quoted) read through `columns`; resolves to it, or to the Error that stopped it. */
  checksum(table: string, columns: readonly ChecksumColumn[]): Promise<TableChecksum | Error>;
  /**
   * Ends the session once its queued checksums are done (idempotent). With cancel, first cancels its running
   * query from the exporting session and fails what is still queued: a failed backup need not wait for them.
   */
  close(cancel?: boolean): Promise<void>;
}

/** Starts connecting the second session (a server only), so that it connects while belay does other work. Never rejects. */
export function connectReader(db: Db): Promise<Db | undefined> {
  if (db.kind !== 'postgres') return Promise.resolve(undefined);
  return openDb(db.url, { applicationName: 'belay backup reader' }).catch(() => undefined);
}

/**
 * Exports the snapshot of db's open REPEATABLE READ transaction; `session` (from connectReader) imports it
 * in the background, read-only, with the pinned text settings, so db goes on at once. The import needs
 * the exporting transaction still open: the caller waits for every checksum it queued before it ends
 * that transaction. Undefined on PGlite. When the second session can't be had (the server's connection
 * limit, a refused import) every checksum resolves to an Error, and the caller reads in its own session,
 * same snapshot.
 */
export async function openSnapshotReader(db: Db, session: Promise<Db | undefined> = connectReader(db)): Promise<SnapshotReader | undefined> {
  const id = await exportSnapshot(db);
  if (id === undefined) return undefined;
  let pid: number | undefined;
  let busy = false;
  let cancelled = false;
  const ready = (async () => {
    const reader = await session;
    if (!reader) throw new Error('no second session could be opened');
    await reader.query(BEGIN_READER_SQL);
    await reader.query(importSnapshotSql(id));
    await reader.exec(`${pinnedSettingsSql()} ${READER_SERIAL_SQL}`);
    pid = (await reader.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    return reader;
  })();
  let queue: Promise<unknown> = ready.catch(() => undefined);
  let closed: Promise<void> | undefined;
  return {
    checksum(table, columns) {
      const run = queue
        .then(async () => {
          const reader = await ready;
          if (cancelled) throw new Error('the backup stopped before this checksum');
          busy = true;
          try {
            return await checksumWith(reader, table, columns);
          } finally {
            busy = false;
          }
        })
        .catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
      queue = run;
      return run;
    },
    async close(cancel = false) {
      if (cancel && !cancelled) {
        cancelled = true;
        if (busy && pid !== undefined) await db.query('SELECT pg_cancel_backend($1)', [pid]).catch(() => undefined);
      }
      closed ??= queue.then(async () => {
        const reader = await ready.catch(() => undefined);
        await (reader ?? (await session))?.close();
      });
      return closed;
    },
  };
}
