// Unique violations predicted from the catalog with nothing declared: for every batched step, every unique
// index (the unique and primary-key constraints included) that reads a column the step writes gets the
// unique-after prediction, unless the spec declares a unique-after check on that index for that step (the
// declared one then stands, with its own code and severity). A spec declares business rules; what the
// database already enforces, belay finds by itself.
import { catalogFacts, type IndexFact } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import type { Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';

type UniqueAfterCheck = Extract<Check, { kind: 'unique-after' }>;

/** Where a derived check comes from: the step and the catalog object it protects. */
export interface DerivedOrigin {
  source: 'catalog';
  step: string;
  table: string;
  /** The index a unique or exclusion prediction reads. */
  index?: string;
  /** The constraint: the one the index backs (unique, primary key, exclusion), the foreign key, CHECK or domain constraint; null for a plain unique index and NOT NULL. */
  constraint: string | null;
  /** The written column a domain or NOT NULL prediction is about. */
  column?: string;
  /** pg_get_indexdef or pg_get_constraintdef, for the reader. */
  definition: string;
}

export interface DerivedCheck {
  /** A unique-after check as if declared: it runs through the same kind, SQL and error reporting. */
  check: UniqueAfterCheck;
  origin: DerivedOrigin;
}

/**
 * The code of a derived unique finding: one per index and step, stable, and never one a spec can
 * declare (spec codes are upper-case letters, digits, _ and -), so findings, stored results and the
 * blocking list, which are keyed by code, stay unambiguous.
 */
export function derivedUniqueCode(index: string, step: string): string {
  return `UNIQUE:${index}@${step}`;
}

/** Every unique index over a written column of a batched step, as a check, in step and index order. */
export async function derivedUniqueChecks(db: Db, m: LoadedMigration): Promise<DerivedCheck[]> {
  const declared = new Set(m.spec.checks.flatMap((c) => (c.kind === 'unique-after' ? [`${c.step}\0${c.index}`] : [])));
  const out: DerivedCheck[] = [];
  for (const step of m.spec.steps) {
    if (step.kind !== 'batched') continue;
    const facts = await catalogFacts(db, step.table, step.writes);
    for (const ix of facts.uniqueIndexes) {
      if (declared.has(`${step.name}\0${ix.name}`)) continue;
      out.push({ check: checkFor(ix, step.name, facts.table.sqlName), origin: originOf(ix, step.name, step.table) });
    }
  }
  return out;
}

function checkFor(ix: IndexFact, step: string, table: string): UniqueAfterCheck {
  const what = ix.constraint ? `${ix.constraint.type} constraint "${ix.constraint.name}"` : `unique index "${ix.name}"`;
  const terms = ix.terms.map((t) => t.sql).join(', ');
  return {
    kind: 'unique-after',
    code: derivedUniqueCode(ix.name, step),
    severity: 'error',
    step,
    index: ix.name,
    message: `rows step "${step}" would give the same (${terms}) as another row of ${table}: ${what} (from the catalog) refuses it with 23505`,
    fix: 'Make the projection skip these rows (collidesWith names the row each one meets), or fix the data first. A unique-after check declared on this index replaces this one.',
  };
}

function originOf(ix: IndexFact, step: string, table: string): DerivedOrigin {
  return { source: 'catalog', step, table, index: ix.name, constraint: ix.constraint?.name ?? null, definition: ix.definition };
}
