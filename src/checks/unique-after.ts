// kind 'unique-after': rows that would violate a unique index once a projected step has written
// its new values, predicted over the whole table from the projection, without a write.
import { tableInfo } from '../db/catalog.ts';
import { type IndexFact, readIndexes } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import { SpecError } from '../errors.ts';
import type { BatchedStep, Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { keyRangeSql, PROJECTION_PREFIX, type UniqueAfterShape, uniqueAfterSql, uniqueGuardSql } from './check-sql.ts';
import type { CheckKind, CheckTarget } from './registry.ts';
import { decidedRowsSql } from '../state/decision-sql.ts';
import { resolveStep, ruleOf, type StepTarget } from '../spec/resolve.ts';

type UniqueAfterCheck = Extract<Check, { kind: 'unique-after' }>;

export const uniqueAfterKind: CheckKind<UniqueAfterCheck> = {
  kind: 'unique-after',
  meaning: 'rows the step would give the same unique-index value as another row (the write would fail or be wrong)',
  defaultSeverity: 'error',
  defaultFix: "Make the projection skip or rename the colliding rows (see each row's collidesWith), or fix the data first.",
  async prepare(db, check, m) {
    const { step, stepNo, shape } = await uniqueShape(db, check, m);
    const range = await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(shape.table, shape));
    return {
      sql: uniqueAfterSql(shape, wholeTable(step, stepNo, m).text),
      params: [range.rows[0]!.lo, range.rows[0]!.hi],
      embedded: [{ ...wholeTable(step, stepNo, m), offset: PROJECTION_PREFIX.length }],
    };
  },
  // Inside each batch, after the write: no row this batch wrote shares the index value of another row. An
  // index the server enforces at the write needs no guard: its 23505 leaves the row out the same way, for free.
  guard(check, step, _target, facts) {
    if (step.name !== check.step) return undefined;
    const shape = facts.indexes.get(check.code);
    return shape && !shape.enforced ? { name: `guard ${check.code}`, sql: uniqueGuardSql(shape) } : undefined;
  },
};

/** The step a check names, which must be a batched (projected) step. */
export function projectedStep(m: LoadedMigration, code: string, name: string): { step: BatchedStep; stepNo: number } {
  const stepNo = m.spec.steps.findIndex((s) => s.name === name);
  const step = m.spec.steps[stepNo];
  if (step?.kind !== 'batched') {
    throw new SpecError(`check ${code} names step "${name}", which is not a batched step with a projection`, {
      field: `checks (${code}).step`,
      expected: `one of: ${
        m.spec.steps
          .filter((s) => s.kind === 'batched')
          .map((s) => s.name)
          .join(', ') || '(no batched step)'
      }`,
    });
  }
  return { step, stepNo };
}

/**
 * What the step writes, over the whole table: its decision when it was made in this snapshot (apply, belay
 * check, the dry run), else its rule (set-based, or the range projection over the whole key range).
 */
export function wholeTable(step: BatchedStep, stepNo: number, m: CheckTarget): { field: string; text: string } {
  const d = m.decisions?.get(stepNo);
  if (d) return { field: `the decision of steps.${stepNo} (${step.name})`, text: decidedRowsSql(d) };
  const rule = ruleOf(step, stepNo);
  return { field: rule.field, text: rule.sql };
}

/** Reads the named index from the catalog: its key terms (columns or expressions), partial predicate, NULL semantics. */
export async function uniqueShape(
  db: Db,
  check: UniqueAfterCheck,
  m: LoadedMigration,
): Promise<{ step: BatchedStep; stepNo: number; shape: UniqueAfterShape }> {
  const { step, stepNo } = projectedStep(m, check.code, check.step);
  const target = await resolveStep(db, step, stepNo);
  const info = await tableInfo(db, step.table);
  const indexes = await readIndexes(db, info.oid, step.writes);
  const field = `checks (${check.code}).index`;
  const ix = indexes.find((x) => x.name === check.index);
  if (!ix) {
    const names =
      indexes
        .filter((x) => x.unique)
        .map((x) => x.name)
        .join(', ') || '(none)';
    throw new SpecError(`check ${check.code}: index "${check.index}" does not exist on table ${info.sqlName} (its unique indexes: ${names})`, {
      field,
      expected: `a unique index of ${info.sqlName}: ${names}`,
      fix: "Name an existing unique index of the step's table (its exact name and case).",
    });
  }
  if (!ix.unique) throw new SpecError(`check ${check.code}: index "${check.index}" is not unique`, { field, expected: 'a unique index' });
  return { step, stepNo, shape: uniqueShapeOf(target, ix) };
}

/** The shape the unique-after SQL compares: the batch target's key and writes, the index's terms as SQL. */
export function uniqueShapeOf(target: StepTarget, ix: IndexFact): UniqueAfterShape {
  return {
    table: target.table,
    key: target.key,
    keyColumns: target.keyColumns,
    keyType: target.keyType,
    writes: target.writes,
    // a COLLATE of the index's own, and on a written column (whose new value may carry the projection's collation)
    terms: ix.terms.map((t) => {
      const collate = t.collation && (!t.columnCollation || (t.column !== null && target.writes.includes(t.column)));
      return { name: t.column ?? t.sql, sql: collate ? `(${t.sql} COLLATE ${t.collation})` : t.sql };
    }),
    predicate: ix.predicate,
    nullsNotDistinct: ix.nullsNotDistinct,
    reads: ix.reads,
    enforced: ix.valid && ix.ready && !ix.deferrable,
  };
}
