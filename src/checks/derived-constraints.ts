// Constraints predicted from the catalog with nothing declared, on the rows a batched step writes (the
// rows whose written values change, with their values as they will be): every foreign key from a written
// column (the new value must exist in the parent), every foreign key into a written column that does not
// follow the change (the old value must not be referenced any more), CHECK constraints, the checks of a
// domain a written column has, NOT NULL, and exclusion constraints (each changed row against every other
// row). An error blocks apply before any backup or write, as a declared check does.
import type { CatalogFacts, ColumnFact, ForeignKeyFact, IndexFact, TypeFact } from '../db/catalog-facts.ts';
import { sameKey } from '../db/key-sql.ts';
import { ident, literal } from '../db/sql.ts';
import type { BatchedStep, Check } from '../spec/define.ts';
import type { StepTarget } from '../spec/resolve.ts';
import { type ExclusionShape, oldOf, type RowRule, type WrittenRowsShape } from './check-sql.ts';
import type { DerivedOrigin } from './derived-unique.ts';

/** Kinds of findings derived from the catalog besides unique-after and not-null. */
export type DerivedKind = 'foreign-key' | 'check-constraint' | 'domain' | 'exclusion';

/** A finding a derived rule reports, with the rule that finds its rows. */
export interface DerivedRule {
  code: string;
  kind: DerivedKind | 'not-null';
  message: string;
  fix: string;
  origin: DerivedOrigin;
  rule: RowRule;
}

/** Every row rule of a step, in order: foreign keys (from, then into), CHECKs, domains, NOT NULL. */
export function rowRules(
  step: BatchedStep,
  facts: CatalogFacts,
  target: StepTarget,
  declared: readonly Check[],
): { shape: WrittenRowsShape; rules: DerivedRule[] } {
  const isKey = (c: string) => target.keyColumns.includes(c);
  const writes = step.writes.filter((w) => !isKey(w));
  const idx = (c: string) => step.writes.indexOf(c);
  const col = (c: string) => facts.columns.find((x) => x.name === c)!;
  const v = (c: string) => `v.${ident(c)}`;
  const show = (cols: readonly string[]) => [
    ...target.keyColumns.map((c) => [c, v(c)] as const),
    ...cols.filter((c) => !isKey(c)).map((c) => [c, v(c)] as const),
  ];
  const origin = (o: Omit<DerivedOrigin, 'source' | 'step' | 'table'>): DerivedOrigin => ({ source: 'catalog', step: step.name, table: step.table, ...o });
  const changed = (cols: readonly string[]) =>
    cols
      .filter((c) => idx(c) >= 0)
      .map((c) => `${v(c)} IS DISTINCT FROM v.${oldOf(idx(c))}`)
      .join(' OR ');
  const rules: DerivedRule[] = [];
  const reads = new Set<string>();

  for (const fk of facts.foreignKeysFrom) {
    for (const c of fk.childColumns) reads.add(c);
    const selfWritten = fk.parent.sqlName === facts.table.sqlName && fk.parentColumns.some((c) => step.writes.includes(c));
    rules.push({
      code: `FOREIGN_KEY:${fk.name}@${step.name}`,
      kind: 'foreign-key',
      message: `rows step "${step.name}" would give (${fk.childColumns.map((c) => `"${c}"`).join(', ')}) a value that ${fk.parent.sqlName} (${fk.parentColumns.map((c) => `"${c}"`).join(', ')}) does not hold: foreign key "${fk.name}" (from the catalog) refuses it with 23503`,
      fix: `Make the step's rule write only values that exist in ${fk.parent.sqlName} (join it), or create the missing parent rows first. NULL references nothing and passes.`,
      origin: origin({ constraint: fk.name, definition: fkDefinition(fk) }),
      rule: { violated: `(${changed(fk.writtenColumns)}) AND ${missingParent(fk, target, selfWritten)}`, show: show(fk.childColumns) },
    });
  }
  for (const fk of facts.foreignKeysInto) {
    // an ON UPDATE action follows the change (a fact of its own); NO ACTION and RESTRICT refuse it
    if (fk.writtenColumns.length === 0 || (fk.onUpdate !== 'no action' && fk.onUpdate !== 'restrict')) continue;
    for (const c of fk.parentColumns) reads.add(c);
    const refs = fk.parentColumns.map((p, i) => `c.${ident(fk.childColumns[i]!)} = ${idx(p) >= 0 ? `v.${oldOf(idx(p))}` : v(p)}`).join(' AND ');
    rules.push({
      code: `REFERENCED:${fk.name}@${step.name}`,
      kind: 'foreign-key',
      message: `rows step "${step.name}" would change (${fk.parentColumns.map((c) => `"${c}"`).join(', ')}) while rows of ${fk.child.sqlName} still reference the old value: foreign key "${fk.name}" (ON UPDATE ${fk.onUpdate.toUpperCase()}, from the catalog) refuses it with 23503`,
      fix: `Point the rows of ${fk.child.sqlName} elsewhere (or delete them) first, or make the step's rule leave these rows alone.`,
      origin: origin({ constraint: fk.name, definition: fkDefinition(fk) }),
      rule: {
        violated: `(${changed(fk.parentColumns)}) AND EXISTS (SELECT 1 FROM ${fk.child.sqlName} c WHERE ${refs})`,
        show: [
          ...show(fk.parentColumns.filter((p) => idx(p) < 0)),
          ...fk.parentColumns.filter((p) => idx(p) >= 0).map((p) => [p, `v.${oldOf(idx(p))}`] as const),
          ['becomes', `jsonb_build_object(${fk.parentColumns.map((p) => `${literal(p)}, ${v(p)}`).join(', ')})`] as const,
          ['referencedBy', `(SELECT count(*) FROM ${fk.child.sqlName} c WHERE ${refs})`] as const,
        ],
      },
    });
  }
  for (const c of facts.checks) {
    for (const x of c.reads) reads.add(x);
    rules.push({
      code: `CHECK:${c.name}@${step.name}`,
      kind: 'check-constraint',
      message: `rows step "${step.name}" would make CHECK constraint "${c.name}" false: ${c.definition} (from the catalog) refuses them with 23514`,
      fix: "Make the step's rule write values that satisfy the constraint, or leave these rows out of it.",
      origin: origin({ constraint: c.name, definition: c.definition }),
      rule: { violated: `NOT coalesce((${c.expression}), true)`, show: show(c.reads) },
    });
  }
  for (const w of writes) {
    const column = col(w);
    const dom = column.typeInfo.kind === 'domain' ? column.typeInfo.domain : undefined;
    for (const d of dom?.checks ?? []) {
      // VALUE is an unreserved keyword: in the sub-select it names the one column, the value written
      const test = `(SELECT ${checkExpression(d.definition)} FROM (SELECT ${v(w)} AS value) belay_d)`;
      rules.push({
        code: `DOMAIN:${w}.${d.name}@${step.name}`,
        kind: 'domain',
        message: `rows step "${step.name}" would write into "${w}" a value its type ${column.typeInfo.name} refuses: ${d.definition} (constraint "${d.name}", from the catalog; 23514)`,
        fix: `Make the step's rule write values the domain accepts, or leave these rows out of it.`,
        origin: origin({ constraint: d.name, column: w, definition: d.definition }),
        rule: { violated: `NOT coalesce(${test}, true)`, show: show([w]) },
      });
    }
  }
  for (const w of writes) {
    const column = col(w);
    const domainNotNull = !!column.typeInfo.domain?.notNull;
    if (!column.notNull && !domainNotNull) continue;
    // a declared not-null check on this column after this step stands for it
    if (declared.some((c) => c.kind === 'not-null' && c.step === step.name && c.column === w && c.table === step.table)) continue;
    rules.push({
      code: `NOT_NULL:${w}@${step.name}`,
      kind: 'not-null',
      message: `rows step "${step.name}" would set "${w}" to NULL, which ${column.notNull ? 'is NOT NULL' : `its type ${column.typeInfo.name} forbids`} (from the catalog; 23502)`,
      fix: "Make the step's rule give these rows a value, or leave them out of it.",
      origin: origin({ constraint: null, column: w, definition: column.notNull ? `"${w}" ${column.type} NOT NULL` : `${column.typeInfo.name} NOT NULL` }),
      rule: { violated: `${v(w)} IS NULL`, show: show([w]) },
    });
  }
  const shape: WrittenRowsShape = {
    table: target.table,
    key: target.key,
    keyColumns: target.keyColumns,
    keyType: target.keyType,
    writes: step.writes.map((w) => ({ name: w, type: storedType(col(w)) })),
    reads: [...reads].filter((c) => !step.writes.includes(c) && !isKey(c)),
  };
  return { shape, rules };
}

/** Every exclusion constraint over a written column, as a check of its own. */
export function exclusionRules(
  step: BatchedStep,
  facts: CatalogFacts,
  target: StepTarget,
): Array<{ code: string; message: string; fix: string; origin: DerivedOrigin; shape: ExclusionShape }> {
  return facts.exclusions.map((ix: IndexFact) => ({
    code: `EXCLUSION:${ix.constraint?.name ?? ix.name}@${step.name}`,
    message: `rows step "${step.name}" would give (${ix.terms.map((t) => t.sql).join(', ')}) values that conflict with another row under exclusion constraint "${ix.constraint?.name ?? ix.name}" (from the catalog; 23P01)`,
    fix: "Make the step's rule skip these rows (collidesWith names the row each one meets), or change the rows they meet first.",
    origin: { source: 'catalog', step: step.name, table: step.table, index: ix.name, constraint: ix.constraint?.name ?? null, definition: ix.definition },
    shape: {
      table: target.table,
      key: target.key,
      keyColumns: target.keyColumns,
      keyType: target.keyType,
      writes: target.writes,
      terms: ix.terms.map((t) => ({ name: t.column ?? t.sql, sql: t.sql, operator: t.operator ?? '=' })),
      predicate: ix.predicate,
      reads: ix.reads,
    },
  }));
}

/** No parent holds the row's reference (MATCH SIMPLE: a NULL column references nothing; MATCH FULL: all or none). */
function missingParent(fk: ForeignKeyFact, target: StepTarget, selfWritten: boolean): string {
  const cs = fk.childColumns.map((c) => `v.${ident(c)}`);
  const eq = (alias: string) => fk.parentColumns.map((p, i) => `${alias}.${ident(p)} = ${cs[i]}`).join(' AND ');
  // the parent is the table itself and the step writes the referenced columns: the parents as they will be
  const exists = selfWritten
    ? `(EXISTS (SELECT 1 FROM v q WHERE ${eq('q')}) OR EXISTS (SELECT 1 FROM ${fk.parent.sqlName} q WHERE ${eq('q')} AND NOT EXISTS (SELECT 1 FROM v w WHERE ${sameKey(target, 'w', 'q')})))`
    : `EXISTS (SELECT 1 FROM ${fk.parent.sqlName} q WHERE ${eq('q')})`;
  const allSet = cs.map((c) => `${c} IS NOT NULL`).join(' AND ');
  if (fk.match === 'full' && cs.length > 1)
    return `((num_nulls(${cs.join(', ')}) > 0 AND num_nonnulls(${cs.join(', ')}) > 0) OR (${allSet} AND NOT ${exists}))`;
  return `(${allSet} AND NOT ${exists})`;
}

function fkDefinition(fk: ForeignKeyFact): string {
  return `FOREIGN KEY (${fk.childColumns.map((c) => ident(c)).join(', ')}) REFERENCES ${fk.parent.sqlName} (${fk.parentColumns.map((c) => ident(c)).join(', ')}) ON UPDATE ${fk.onUpdate.toUpperCase()} ON DELETE ${fk.onDelete.toUpperCase()}`;
}

/** The type a written value is compared as: the column's type without modifiers, a domain's base type (its checks are rules of their own). */
function storedType(c: ColumnFact): string {
  const base = (t: TypeFact): TypeFact => (t.kind === 'domain' && t.domain ? base(t.domain.base) : t);
  return base(c.typeInfo).name;
}

/** "CHECK ((VALUE > 0)) NOT VALID" → "((VALUE > 0))": the expression pg_get_constraintdef prints. */
function checkExpression(definition: string): string {
  return definition.replace(/^CHECK\s*/i, '').replace(/\s+NOT VALID$/i, '');
}
