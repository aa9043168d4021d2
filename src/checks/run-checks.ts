// Pre-flight checks: each returns offending rows; the result has a stable code, severity, count and samples.
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import type { Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';

export const DEFAULT_SAMPLE = 20;

export interface CheckFinding {
  code: string;
  severity: 'error' | 'warn' | 'info';
  message: string;
  count: number;
  sample: Record<string, unknown>[];
  fix?: string;
}

export interface CheckReport {
  migrationId: string;
  findings: CheckFinding[];
  /** True when no finding of severity error has rows. */
  ok: boolean;
}

/** The SQL that returns a check's offending rows. */
export function checkSql(check: Check): string {
  switch (check.kind) {
    case 'sql':
      return check.sql;
    case 'orphans':
      return `SELECT c.* FROM ${qualified(check.table)} c
 WHERE c.${ident(check.column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${qualified(check.references.table)} p WHERE p.${ident(check.references.column)} = c.${ident(check.column)})`;
    default:
      throw new Error(`check kind ${check.kind} is not supported yet`);
  }
}

export async function runChecks(db: Db, m: LoadedMigration, opts: { sample?: number } = {}): Promise<CheckReport> {
  const limit = opts.sample ?? DEFAULT_SAMPLE;
  const findings: CheckFinding[] = [];
  for (const check of m.spec.checks) {
    if (check.kind === 'unique-after' || check.kind === 'not-null') continue; // evaluated by the predictor
    const sql = checkSql(check);
    const r = await db.query<{ n: number; sample: Record<string, unknown>[] | null }>(
      `WITH f AS (${sql}) SELECT (SELECT count(*) FROM f)::int AS n, (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Number(limit)}) s) AS sample`,
    );
    findings.push({
      code: check.code,
      severity: check.severity,
      message: check.message ?? check.code,
      count: r.rows[0]!.n,
      sample: r.rows[0]!.sample ?? [],
      fix: check.fix,
    });
  }
  return { migrationId: m.spec.id, findings, ok: !findings.some((f) => f.severity === 'error' && f.count > 0) };
}
