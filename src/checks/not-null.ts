// kind 'not-null': NULLs in a column that is about to become NOT NULL, after the step's projected
// values when the check names a step that writes the column.
import { column, tableInfo } from '../db/catalog.ts';
import type { Check } from '../spec/define.ts';
import { keyRangeSql, notNullAfterSql, notNullNowSql, PROJECTION_PREFIX } from './check-sql.ts';
import type { CheckKind } from './registry.ts';
import { projectedStep, wholeTable } from './unique-after.ts';
import { resolveStep } from '../spec/resolve.ts';

type NotNullCheck = Extract<Check, { kind: 'not-null' }>;

export const notNullKind: CheckKind<NotNullCheck> = {
  kind: 'not-null',
  meaning: 'rows that would still hold NULL in a column that is becoming NOT NULL',
  defaultSeverity: 'error',
  defaultFix: 'Give these rows a value (extend the projection or backfill them) before adding NOT NULL.',
  async prepare(db, check, m) {
    const i = m.spec.checks.indexOf(check);
    const info = await tableInfo(db, check.table);
    column(info, check.column, `checks.${i}.column (${check.code})`);
    if (check.step) {
      const { step, stepNo } = projectedStep(m, check.code, check.step);
      // the projection only says something about this column when the step writes it in this table
      if (step.table === check.table && step.writes.includes(check.column)) {
        const t = await resolveStep(db, step, stepNo);
        const range = await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(t.table, t));
        return {
          sql: notNullAfterSql(t.table, t, check.column, wholeTable(step, stepNo, m).text),
          params: [range.rows[0]!.lo, range.rows[0]!.hi],
          embedded: [{ ...wholeTable(step, stepNo, m), offset: PROJECTION_PREFIX.length }],
        };
      }
    }
    return { sql: notNullNowSql(info.sqlName, check.column), params: [], embedded: [] };
  },
};
