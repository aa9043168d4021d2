// All SQL of steering a run (throttle conditions), in one place.

// Server only: PGlite has one session and no replicas.
/** Sessions waiting for a lock on the table ($1 = regclass text), other than belay's own. */
export const LOCK_WAITERS_SQL = `SELECT count(*)::int AS n FROM pg_locks l
 WHERE NOT l.granted AND l.relation = to_regclass($1) AND l.pid <> pg_backend_pid()`;

/** The oldest open transaction in this database other than belay's own, in ms ($1 = limit in ms). */
export const OLD_TRANSACTIONS_SQL = `SELECT count(*)::int AS n,
       coalesce(max(extract(epoch FROM clock_timestamp() - xact_start) * 1000), 0)::float8 AS "oldestMs"
  FROM pg_stat_activity
 WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()
   AND backend_type = 'client backend'
   AND xact_start < clock_timestamp() - make_interval(secs => $1::float8 / 1000)`;

/** The worst replay lag over all replicas in ms (NULL when there are no replicas). */
export const REPLICATION_LAG_SQL = `SELECT count(*)::int AS replicas, max(extract(epoch FROM replay_lag) * 1000)::float8 AS "lagMs" FROM pg_stat_replication`;

/**
 * Other sessions holding a lock that can block a writer on one of the tables ($1 = regclass texts):
 * after a lock_timeout belay's own session no longer waits, so pg_blocking_pids() of it is empty; these
 * are the sessions that hold row or table locks there now. Query texts are left out (they may hold data).
 */
export const LOCK_HOLDERS_SQL = `SELECT l.pid, a.usename AS "user", a.application_name AS application, a.state,
       string_agg(DISTINCT l.mode, ', ') AS modes,
       round(extract(epoch FROM clock_timestamp() - a.xact_start) * 1000)::float8 AS "xactMs"
  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.pid <> pg_backend_pid() AND l.mode <> 'AccessShareLock'
   AND l.relation = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)
 GROUP BY l.pid, a.usename, a.application_name, a.state, a.xact_start
 ORDER BY a.xact_start NULLS LAST LIMIT 5`;

export const CURRENT_ROLE_SQL = `SELECT current_user::text AS role, current_database()::text AS database`;
