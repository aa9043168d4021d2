// belay.verifications and belay.verification_results: the rounds of post-run verification (apply, verify,
// monitor), as verify/record.ts writes and reads them.
import { isoUtc } from '../db/sql.ts';

export const INSERT_ROUND_SQL = `INSERT INTO belay.verifications (run_id, source, ok, duration_ms, alerts)
  VALUES ($1, $2, $3, $4, $5) RETURNING id::int AS id, ${isoUtc('at')} AS at`;

export const INSERT_RESULT_SQL = `INSERT INTO belay.verification_results
  (verification_id, run_id, name, kind, result, count, threshold, message, sample, error)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb)`;

export const ROUNDS_SQL = `SELECT v.id::int AS id, v.source, ${isoUtc('v.at')} AS at, v.ok, v.duration_ms::float8 AS "durationMs", v.alerts,
       coalesce((SELECT jsonb_agg(jsonb_build_object('name', r.name, 'kind', r.kind, 'result', r.result, 'count', r.count,
                 'threshold', r.threshold, 'message', r.message, 'sample', r.sample, 'error', r.error) ORDER BY r.seq)
                   FROM belay.verification_results r WHERE r.verification_id = v.id), '[]'::jsonb) AS checks
  FROM belay.verifications v WHERE v.run_id = $1 AND ($2::text IS NULL OR v.source = $2) ORDER BY v.id`;

/**
 * runs.summary.monitor, recomputed from the recorded monitoring rounds (so that --once from cron adds up):
 * first and last round, rounds, alerts; $2 merges the latest window's settings (until, every, status).
 */
export const MONITOR_SUMMARY_SQL = `UPDATE belay.runs r SET summary = r.summary || jsonb_build_object('monitor',
  coalesce(r.summary->'monitor', '{}'::jsonb) || $2::jsonb || (
    SELECT jsonb_build_object('firstRoundAt', min(v.at)::text, 'lastRoundAt', max(v.at)::text, 'rounds', count(*),
           'alerts', coalesce(sum(jsonb_array_length(coalesce(v.alerts, '[]'::jsonb))), 0),
           'alertedRounds', count(*) FILTER (WHERE NOT v.ok))
      FROM belay.verifications v WHERE v.run_id = r.id AND v.source = 'monitor'))
 WHERE r.id = $1`;

/** $1 = run id. The run's verification rounds (apply, verify, monitor), oldest first, numbered from 1. */
export const VERIFICATION_ROUNDS_SQL = `SELECT row_number() OVER (ORDER BY id)::int AS round, id::int AS id, source, ${isoUtc('at')} AS at, ok,
       duration_ms::float8 AS "durationMs"
  FROM belay.verifications WHERE run_id = $1 ORDER BY id`;
