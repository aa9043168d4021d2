// One session-level advisory lock per migration id forbids two concurrent runs of it.
// Key: (MIGRATION_LOCK_CLASS, hashtext(migration id)). Released when the session ends, so a crash frees it.
import type { Db } from '../db/connection.ts';
import { LockedError } from '../errors.ts';

export const MIGRATION_LOCK_CLASS = 1650814050;
export type LockMode = 'fail' | 'wait';

export async function acquireMigrationLock(db: Db, migrationId: string, mode: LockMode = 'fail'): Promise<() => Promise<void>> {
  if (mode === 'wait') {
    await db.query('SELECT pg_advisory_lock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, migrationId]);
  } else {
    const r = await db.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, hashtext($2)) AS ok', [MIGRATION_LOCK_CLASS, migrationId]);
    if (!r.rows[0]?.ok) throw new LockedError(migrationId);
  }
  return async () => {
    await db.query('SELECT pg_advisory_unlock($1, hashtext($2))', [MIGRATION_LOCK_CLASS, migrationId]).catch(() => undefined);
  };
}

/** The backend holding a migration's lock (the process running it), or null. */
export async function migrationLockHolder(db: Db, migrationId: string): Promise<number | null> {
  if (db.kind !== 'postgres') return null;
  const r = await db.query<{ pid: number }>(
    `SELECT l.pid FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.classid = $1::int::oid AND l.objid = hashtext($2)::oid AND l.objsubid = 2 LIMIT 1`,
    [MIGRATION_LOCK_CLASS, migrationId],
  );
  return r.rows[0]?.pid ?? null;
}
