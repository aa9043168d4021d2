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
