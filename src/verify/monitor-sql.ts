// All SQL of the monitoring window, in one place.

// A monitoring check's rows are counted by countedSql in ../verify/verify-sql.ts (the same shape as spec.verify).

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
