// belay.backups: one row per backup of a table (its copy, checksum, file and status). The backup stage writes
// them, restore, rollback, cleanup and the report read them.
import { isoUtc } from '../db/sql.ts';

const COLS = `id::int AS id, run_id::int AS "runId", migration_id AS "migrationId", source_table AS "sourceTable",
  copy_schema AS "copySchema", copy_table AS "copyTable", columns, key_columns AS "keyColumns", row_count::float8 AS "rows",
  checksum, coalesce(checksum_method, 'text') AS "checksumMethod", size_bytes::float8 AS "sizeBytes", file, file_sha256 AS "fileSha256", file_bytes::float8 AS "fileBytes", manifest,
  status, ${isoUtc('created_at')} AS "createdAt", ${isoUtc('verified_at')} AS "verifiedAt", ${isoUtc('restored_at')} AS "restoredAt", ${isoUtc('dropped_at')} AS "droppedAt"`;

export const INSERT_BACKUP_SQL = `
INSERT INTO belay.backups (run_id, migration_id, source_table, copy_schema, copy_table, columns, key_columns, status)
VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::text[], 'taking') RETURNING id::int AS id`;

export const SET_COPY_NAME_SQL = `UPDATE belay.backups SET copy_table = $2 WHERE id = $1`;

export const MARK_VERIFIED_SQL = `
UPDATE belay.backups SET row_count = $2, checksum = $3, size_bytes = $4, status = 'verified', verified_at = clock_timestamp()
 WHERE id = $1`;

/** A file written whole and flushed: only now is a backup that was asked for with files verified. */
export const SET_FILE_SQL = `UPDATE belay.backups SET file = $2, file_sha256 = $3, file_bytes = $4, manifest = $5, status = 'verified' WHERE id = $1`;

/**
 * The files of these backups could not be written (or were lost): the copies stay, but no backup is
 * reported until they are exported again (belay apply resumes and does it).
 */
export const MARK_UNVERIFIED_SQL = `UPDATE belay.backups SET status = 'unverified', file = NULL, file_sha256 = NULL, file_bytes = NULL, manifest = NULL
 WHERE id = ANY ($1::bigint[])`;

export const MARK_COPY_VERIFIED_SQL = `UPDATE belay.backups SET status = 'verified', verified_at = clock_timestamp() WHERE id = $1`;

export const MARK_RESTORED_SQL = `UPDATE belay.backups SET restored_at = clock_timestamp() WHERE id = $1`;

export const MARK_DROPPED_SQL = `UPDATE belay.backups SET status = 'dropped', dropped_at = clock_timestamp() WHERE id = $1`;

export const GET_BACKUP_SQL = `SELECT ${COLS} FROM belay.backups WHERE id = $1`;

export const LIST_BACKUPS_SQL = `
SELECT ${COLS} FROM belay.backups
 WHERE ($1::bigint IS NULL OR run_id = $1) AND ($2 OR status <> 'dropped')
 ORDER BY id DESC LIMIT $3`;

/** A run's backups whose copies are kept, verified or waiting for their files, oldest first. */
export const RUN_LIVE_BACKUPS_SQL = `SELECT ${COLS} FROM belay.backups WHERE run_id = $1 AND status IN ('verified', 'unverified') ORDER BY id`;
