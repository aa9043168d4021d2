// What `belay watch` reads, all of it short autocommit SELECTs: the dashboard must never hold a lock or a
// transaction that the running apply's throttle would then wait for.
import { isoUtc } from '../db/sql.ts';

/** Every run, newest first, with its steps' progress summed (no spec, no summary: the list stays light). */
export const WATCH_RUNS_SQL = `SELECT r.id::int AS id, r.migration_id AS "migrationId", r.status, r.mode, r.file,
       ${isoUtc('r.started_at')} AS "startedAt", ${isoUtc('r.finished_at')} AS "finishedAt", r.error->>'code' AS "errorCode",
       coalesce(sum(s.rows_done), 0)::float8 AS "rowsDone", sum(s.rows_total)::float8 AS "rowsTotal",
       coalesce(sum(s.rows_changed), 0)::float8 AS "rowsChanged"
  FROM belay.runs r LEFT JOIN belay.steps s ON s.run_id = r.id
 GROUP BY r.id ORDER BY r.id DESC`;

/** The run's newest batches ($2 of them), newest first, with the database's clock in ms since the epoch. */
export const WATCH_BATCHES_SQL = `SELECT step_no AS "stepNo", batch_no AS "batchNo", rows_in_range AS rows, rows_changed AS changed,
       duration_ms::float8 AS "durationMs", (extract(epoch FROM committed_at) * 1000)::float8 AS at
  FROM belay.batches WHERE run_id = $1 ORDER BY committed_at DESC, batch_no DESC LIMIT $2`;

export const WATCH_NOW_SQL = `SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`;

/** The run's newest events ($2 of them), newest first. */
export const WATCH_EVENTS_SQL = `SELECT id::int AS id, ${isoUtc('at')} AS at, type, data FROM belay.events WHERE run_id = $1 ORDER BY id DESC LIMIT $2`;

/** The newest throttle event and every tune taken, oldest first: the run's throttle state as the apply recorded it. */
export const WATCH_THROTTLE_SQL = `SELECT
  (SELECT jsonb_build_object('type', type, 'at', ${isoUtc('at')}, 'data', data) FROM belay.events
    WHERE run_id = $1 AND type IN ('throttled', 'throttle-released') ORDER BY id DESC LIMIT 1) AS last,
  (SELECT jsonb_agg(jsonb_build_object('at', ${isoUtc('at')}, 'settings', data->'settings') ORDER BY id) FROM belay.events
    WHERE run_id = $1 AND type = 'control-taken' AND data->>'command' = 'tune') AS tunes`;

/** Commands left for the run that its apply has not taken yet (it takes them between two batches). */
export const WATCH_PENDING_SQL = `SELECT id::int AS id, command, settings, ${isoUtc('requested_at')} AS "requestedAt"
  FROM belay.controls WHERE run_id = $1 AND seen_at IS NULL ORDER BY id`;

/** The run's newest findings: pre-flight checks that found rows and verification results that did not pass. */
export const WATCH_FINDINGS_SQL = `SELECT * FROM (
  SELECT 'check' AS source, ${isoUtc('checked_at')} AS at, code AS name, severity AS result, row_count::float8 AS count, message
    FROM belay.check_results WHERE run_id = $1 AND outcome <> 'passed'
  UNION ALL
  SELECT 'verification', ${isoUtc('v.at')}, r.name, r.result, r.count::float8, r.message
    FROM belay.verification_results r JOIN belay.verifications v ON v.id = r.verification_id
   WHERE r.run_id = $1 AND r.result NOT IN ('pass', 'skipped')
) f ORDER BY at DESC LIMIT $2`;

/** Sessions waiting for a lock on any of the tables ($1 = regclass texts): what the throttle's lock condition counts. */
export const WATCH_LOCK_WAITERS_SQL = `SELECT count(*)::int AS n FROM pg_locks l
 WHERE NOT l.granted AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)`;
