// The registry of built-in check kinds: what each finds, its default severity and suggested fix,
// how it turns into SQL, and which in-batch guard it lends to apply. Exported for the runbook.
import type { Db } from '../db/connection.ts';
import type { BatchedStep, Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import type { DecisionTarget } from '../state/decision-sql.ts';
import { classifyKind } from './classify.ts';
import { notNullKind } from './not-null.ts';
import { orphansKind } from './orphans.ts';
import { sqlKind } from './sql-check.ts';
import { uniqueAfterKind } from './unique-after.ts';
import type { StepTarget } from '../spec/resolve.ts';

export type CheckKindName = Check['kind'];

/** User SQL embedded in a check's query: an error position inside it is shown in the user's text. */
export interface EmbeddedSql {
  /** Spec field, e.g. `steps.0.projection (assign-owner)`. */
  field: string;
  text: string;
  /** Character offset of `text` inside the prepared query. */
  offset: number;
}

/** The migration as the checks see it: with the steps' decisions when they were made (by stepNo). */
export type CheckTarget = LoadedMigration & { readonly decisions?: ReadonlyMap<number, DecisionTarget> };

/** A check ready to run: the query that returns its offending rows, with its parameters. */
export interface PreparedCheck {
  sql: string;
  params: unknown[];
  embedded: EmbeddedSql[];
}

/** An in-batch guard: SQL that may read `written` and must return no rows. */
export interface Guard {
  name: string;
  sql: string;
}

export interface CheckKind<C extends Check = Check> {
  kind: C['kind'];
  /** What an offending row means, one sentence (runbook, docs). */
  meaning: string;
  /** Severity when the spec gives none. */
  defaultSeverity: 'error' | 'warn' | 'info';
  /** What to do about offending rows when the spec gives no fix. */
  defaultFix: string;
  /** Resolves names against the catalog (SpecError naming a missing table/column/index) and builds the query. */
  prepare(db: Db, check: C, m: CheckTarget): Promise<PreparedCheck>;
  /** The guard this check lends to each batch of `step`, if it protects that step's writes. Catalog facts come from prepareGuards. */
  guard?(check: C, step: BatchedStep, target: StepTarget, facts: GuardFacts): Guard | undefined;
}

/** Catalog facts resolved once before the first write, so that guards can be built synchronously. */
export interface GuardFacts {
  /** Unique index shapes by check code (unique-after). */
  indexes: Map<string, import('./check-sql.ts').UniqueAfterShape>;
}

export const CHECK_KINDS: { readonly [K in CheckKindName]: CheckKind<Extract<Check, { kind: K }>> } = Object.freeze({
  sql: sqlKind,
  classify: classifyKind,
  orphans: orphansKind,
  'unique-after': uniqueAfterKind,
  'not-null': notNullKind,
});

export function kindOf<C extends Check>(check: C): CheckKind<C> {
  return CHECK_KINDS[check.kind] as unknown as CheckKind<C>;
}

/** One line per check of a spec, for the runbook: code, kind, severity, meaning, fix, and whether it guards batches. */
export interface CheckDescription {
  code: string;
  kind: CheckKindName;
  severity: 'error' | 'warn' | 'info';
  meaning: string;
  fix: string;
  guardsBatches: boolean;
}

export function describeChecks(m: LoadedMigration): CheckDescription[] {
  return m.spec.checks.flatMap((c) => {
    const guardsBatches =
      c.kind === 'unique-after' ||
      (c.kind === 'orphans' && m.spec.steps.some((s) => s.kind === 'batched' && s.table === c.table && s.writes.includes(c.column)));
    return declaredFindings(c).map((d) => ({ ...d, guardsBatches }));
  });
}

/** A finding a check can report: one per check, one per category for classify. */
export interface DeclaredFinding {
  code: string;
  kind: CheckKindName;
  severity: 'error' | 'warn' | 'info';
  meaning: string;
  fix: string;
  /** Its rows are the rows the migration changes (changes: true). */
  changes: boolean;
}

export function declaredFindings(c: Check): DeclaredFinding[] {
  const k = kindOf(c);
  if (c.kind === 'classify') {
    return c.categories.map((x) => ({
      code: x.code,
      kind: c.kind,
      severity: x.severity,
      meaning: x.message,
      fix: x.fix ?? k.defaultFix,
      changes: !!x.changes,
    }));
  }
  return [
    { code: c.code, kind: c.kind, severity: c.severity, meaning: c.message ?? k.meaning, fix: c.fix ?? k.defaultFix, changes: c.kind === 'sql' && !!c.changes },
  ];
}

/** Codes belay itself reports about checks (not findings): in the error registry, listed here for the runbook. */
export const CHECK_ERROR_CODES = Object.freeze({
  /** A check's SQL failed at run time (position shown), or names a missing table/column. Exit 3. */
  sqlFailed: 'BELAY_CHECK_SQL',
  /** An error-severity finding has rows: apply refuses before any write. Exit 6. */
  blocked: 'BELAY_CHECKS',
});
