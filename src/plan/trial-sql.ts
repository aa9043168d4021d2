// Dry runs and rehearsals are recorded apart from real runs, in belay.trials (state schema 4).

/** $1 kind (dry-run | rehearse), $2 migration id, $3 checksum, $4 result (pass | fail), $5 summary (jsonb text). */
export const RECORD_TRIAL_SQL = `INSERT INTO belay.trials (kind, migration_id, checksum, result, summary) VALUES ($1, $2, $3, $4, $5::jsonb)`;

export const LIST_TRIALS_SQL = `SELECT id::int AS id, kind, migration_id AS "migrationId", checksum, result, summary, at::text AS at
  FROM belay.trials WHERE migration_id = $1 ORDER BY id`;
