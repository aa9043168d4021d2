// Dry runs and rehearsals are recorded apart from real runs, in belay.trials (state schema 4).

/** $1 kind (dry-run | rehearse), $2 migration id, $3 checksum, $4 result (pass | fail), $5 summary (jsonb text). */
export const RECORD_TRIAL_SQL = `INSERT INTO belay.trials (kind, migration_id, checksum, result, summary) VALUES ($1, $2, $3, $4, $5::jsonb)`;

export const LIST_TRIALS_SQL = `SELECT id::int AS id, kind, migration_id AS "migrationId", checksum, result, summary, at::text AS at
  FROM belay.trials WHERE migration_id = $1 ORDER BY id`;

/**
 * The scratch run of a rolled-back batch (the undo log's foreign keys need one). A fixed id, not the
 * sequence: rolled-back trials must not make the next real run's id jump. $1 migration id, $2 checksum,
 * $3 spec (jsonb text), $4 step names (text[]), $5 step kinds (text[]).
 */
export const TRIAL_RUN_ID = -1;
export const INSERT_TRIAL_RUN_SQL = `WITH r AS (
  INSERT INTO belay.runs (id, migration_id, checksum, spec, mode, status) VALUES (${TRIAL_RUN_ID}, $1, $2, $3::jsonb, 'trial', 'running') RETURNING id
)
INSERT INTO belay.steps (run_id, step_no, name, kind, status)
SELECT r.id, s.ord - 1, s.name, s.kind, 'pending' FROM r, unnest($4::text[], $5::text[]) WITH ORDINALITY AS s(name, kind, ord)`;
