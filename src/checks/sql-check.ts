// kind 'sql': the spec's own SELECT returns the offending rows.
import type { Check } from '../spec/define.ts';
import type { CheckKind } from './registry.ts';

export const sqlKind: CheckKind<Extract<Check, { kind: 'sql' }>> = {
  kind: 'sql',
  meaning: "rows returned by the check's own SQL",
  defaultSeverity: 'error',
  defaultFix: 'Read the sample rows and fix them, or adjust the check.',
  async prepare(_db, check, m) {
    const i = m.spec.checks.indexOf(check);
    return { sql: check.sql, params: [], embedded: [{ field: `checks.${i}.sql (${check.code})`, text: check.sql, offset: 0 }] };
  },
};
