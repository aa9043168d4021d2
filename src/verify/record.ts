// belay.verifications: one row per round (apply, verify, monitor), its checks in belay.verification_results.
import type { Db } from '../db/connection.ts';
import { mergeSummary } from '../state/summary.ts';
import type { RoundSource, VerifyCheck } from './verify.ts';
import { INSERT_RESULT_SQL, INSERT_ROUND_SQL, ROUNDS_SQL } from '../state/verification-sql.ts';

export interface RoundRecord {
  id: number;
  source: RoundSource;
  at: string;
  ok: boolean;
  durationMs: number;
  /** Monitoring rounds: the alerts raised (check, count, threshold, webhook delivery). */
  alerts: unknown[] | null;
  checks: VerifyCheck[];
}

/** Records a round and its checks; also keeps runs.summary.verification (the latest non-monitor round). */
export async function recordRound(
  db: Db,
  runId: number,
  source: RoundSource,
  ok: boolean,
  durationMs: number,
  checks: VerifyCheck[],
  alerts?: unknown[],
): Promise<{ roundId: number; at: string }> {
  const r = await db.query<{ id: number; at: string }>(INSERT_ROUND_SQL, [runId, source, ok, durationMs, alerts ? JSON.stringify(alerts) : null]);
  const { id, at } = r.rows[0]!;
  for (const c of checks) {
    await db.query(INSERT_RESULT_SQL, [
      id,
      runId,
      c.name,
      c.kind,
      c.result,
      c.count,
      c.threshold ?? null,
      c.message,
      JSON.stringify(c.sample),
      c.error ? JSON.stringify(c.error) : null,
    ]);
  }
  if (source !== 'monitor') {
    const failed = checks.filter((c) => c.result === 'fail' || c.result === 'error').map((c) => c.name);
    await mergeSummary(db, runId, { verification: { roundId: id, at, source, ok, failed } });
  }
  return { roundId: id, at };
}

/** Every recorded round of a run, oldest first (source filters: apply | verify | monitor). */
export async function getRounds(db: Db, runId: number, source?: RoundSource): Promise<RoundRecord[]> {
  const r = await db.query<RoundRecord>(ROUNDS_SQL, [runId, source ?? null]);
  return r.rows;
}
