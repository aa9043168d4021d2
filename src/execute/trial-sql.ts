// Dry runs and rehearsals are recorded apart from real runs, in belay.trials (state schema 4).
import { ident, literal } from '../db/sql.ts';
import type { StepTarget } from '../spec/resolve.ts';

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

// ---- agreement of a step's wholeTableProjection with its batches (dry run). Both sides are digested the
// ---- same way: count and sum of hashes of the after-image jsonb {key, written columns}, as the undo log holds it.

/** Digest of the after-images a rolled-back trial batch wrote. $1 run id, $2 step no. */
export const TRIAL_DIGEST_SQL = `SELECT count(*)::int AS rows, coalesce(sum(hashtextextended(a::text, 0)::numeric), 0)::text AS sum
  FROM belay.undo u CROSS JOIN LATERAL jsonb_array_elements(u.after) a
 WHERE u.run_id = $1 AND u.step_no = $2 AND u.batch_no = 1`;

/**
 * Digest of what wholeTableProjection would write: its rows whose new values differ from the current
 * ones (as a batch's UPDATE decides), each value converted to the column's type through the table's row
 * type. $1/$2 = the table's whole key range (a set-based form may ignore them).
 */
export function wholeTableDigestSql(t: StepTarget, projection: string): string {
  const k = ident(t.key);
  const obj = `jsonb_build_object(${literal(t.key)}, o.${k}, ${t.writes.map((c) => `${literal(c)}, r.${ident(c)}`).join(', ')})`;
  return `WITH p AS (
${projection}
)
SELECT count(*)::int AS rows, coalesce(sum(hashtextextended(${obj}::text, 0)::numeric), 0)::text AS sum
  FROM p JOIN ${t.table} o ON o.${k} = p.${k}
  CROSS JOIN LATERAL jsonb_populate_record(NULL::${t.table}, to_jsonb(p)) r
 WHERE (${t.writes.map((c) => `o.${ident(c)} IS DISTINCT FROM r.${ident(c)}`).join(' OR ')})
   AND ($1::${t.keyType} IS NOT NULL OR $2::${t.keyType} IS NULL)`;
}
