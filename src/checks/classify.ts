// kind 'classify': one SELECT sorts rows into categories; each declared category is reported as its
// own finding. One pass over the data instead of one query per category (the flagship's categories
// share a whole-table classification that costs seconds at 1M rows), and no row is in two categories.
import { ident, literal } from '../db/sql.ts';
import type { Check } from '../spec/define.ts';
import { FINDING_PREFIX } from './check-sql.ts';
import type { CheckKind } from './registry.ts';

export type ClassifyCheck = Extract<Check, { kind: 'classify' }>;

/**
 * Per category: its value, the row count and at most `limit` rows in the SELECT's own order (without the
 * category column). Rows whose category is NULL are left out.
 */
export function classifySql(offending: string, column: string, limit: number): string {
  const c = ident(column);
  // counts by hash aggregate, samples by a top-N per category: sorting every row by (category, order)
  // for a window cost a third of the flagship's classification at 1M rows
  return `${FINDING_PREFIX}${offending}
), o AS (
  SELECT f.*, row_number() OVER () AS belay_ord FROM f
), n AS (
  SELECT o.${c} AS belay_category, count(*)::int AS n FROM o WHERE o.${c} IS NOT NULL GROUP BY o.${c}
)
SELECT n.belay_category::text AS category, n.n,
       (SELECT jsonb_agg(to_jsonb(s) - 'belay_ord' - ${literal(column)} ORDER BY s.belay_ord)
          FROM (SELECT * FROM o WHERE o.${c} = n.belay_category ORDER BY o.belay_ord LIMIT ${Math.max(0, Math.floor(limit))}) s) AS sample
  FROM n`;
}

export const classifyKind: CheckKind<ClassifyCheck> = {
  kind: 'classify',
  meaning: "rows sorted into categories by the check's own SQL, one finding per category",
  defaultSeverity: 'warn',
  defaultFix: "Read each category's sample rows; fix the data or adjust the migration's policy.",
  async prepare(_db, check, m) {
    const i = m.spec.checks.indexOf(check);
    return { sql: check.sql, params: [], embedded: [{ field: `checks.${i}.sql (${check.code})`, text: check.sql, offset: 0 }] };
  },
};
