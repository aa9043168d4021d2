// kind 'orphans': rows referencing a parent row that does not exist (declare it twice for both sides of a link table).
import { column, tableInfo } from '../db/catalog.ts';
import { qualified } from '../db/sql.ts';
import type { Check } from '../spec/define.ts';
import { orphansSql, parentGuardSql } from './check-sql.ts';
import type { CheckKind } from './registry.ts';

type OrphansCheck = Extract<Check, { kind: 'orphans' }>;

export const orphansKind: CheckKind<OrphansCheck> = {
  kind: 'orphans',
  meaning: 'rows whose reference points at a parent row that does not exist',
  defaultSeverity: 'warn',
  defaultFix: 'Delete the orphan rows or restore their parents; add a foreign key so that no new ones appear.',
  async prepare(db, check, m) {
    const i = m.spec.checks.indexOf(check);
    const child = await tableInfo(db, check.table);
    column(child, check.column, `checks.${i}.column (${check.code})`);
    const parent = await tableInfo(db, check.references.table);
    column(parent, check.references.column, `checks.${i}.references.column (${check.code})`);
    return { sql: orphansSql(child.sqlName, check.column, parent.sqlName, check.references.column), params: [], embedded: [] };
  },
  // A step that writes the referencing column must never write a value whose parent is gone.
  guard(check, step, target) {
    if (step.table !== check.table || !step.writes.includes(check.column)) return undefined;
    return { name: `guard ${check.code}`, sql: parentGuardSql(target, check.column, qualified(check.references.table), check.references.column) };
  },
};
