// belay.check_results: the pre-flight findings recorded with a run before its first write.
import type { Db } from '../db/connection.ts';

export interface StoredCheckResult {
  code: string;
  kind: string;
  severity: string;
  /** passed | found | blocked | skipped | noted (a catalog fact) */
  outcome: string;
  count: number;
  message: string | null;
  fix: string | null;
  sample: Record<string, unknown>[];
  durationMs: number | null;
}

/** A resumed run re-checks, but keeps the prediction made before its first write: verification compares with that. */
const INSERT_CHECK_RESULTS_SQL = `INSERT INTO belay.check_results (run_id, code, kind, severity, outcome, row_count, message, fix, sample, duration_ms)
SELECT $1::bigint, x.code, x.kind, x.severity, x.outcome, x.count, x.message, x.fix, coalesce(x.sample, '[]'::jsonb), x."durationMs"
  FROM jsonb_to_recordset($2::jsonb) AS x(code text, kind text, severity text, outcome text, count bigint, message text, fix text, sample jsonb, "durationMs" real)
 WHERE NOT EXISTS (SELECT 1 FROM belay.check_results c WHERE c.run_id = $1::bigint)`;

const SELECT_CHECK_RESULTS_SQL = `SELECT code, kind, severity, outcome, row_count::float8 AS count, message, fix, sample, duration_ms AS "durationMs"
  FROM belay.check_results WHERE run_id = $1 ORDER BY id`;

/** Records the findings of a run's pre-flight, unless the run has some already. */
export async function storeCheckResults(
  db: Db,
  runId: number,
  rows: ReadonlyArray<Omit<StoredCheckResult, 'fix' | 'sample' | 'durationMs' | 'message'> & Partial<StoredCheckResult>>,
): Promise<void> {
  await db.query(INSERT_CHECK_RESULTS_SQL, [runId, JSON.stringify(rows)]);
}

/** The pre-flight results recorded for a run (verification and reports read these). */
export async function checkResults(db: Db, runId: number): Promise<StoredCheckResult[]> {
  const r = await db.query<StoredCheckResult>(SELECT_CHECK_RESULTS_SQL, [runId]);
  return r.rows.map((x) => ({ ...x, count: Number(x.count) }));
}
