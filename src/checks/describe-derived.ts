// The predictions belay derives from the catalog for a migration, described without running them (the
// runbook lists them beside the declared checks, with the same codes belay check reports).
import { catalogFacts } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { resolveStep } from '../spec/resolve.ts';
import { exclusionRules, rowRules } from './derived-constraints.ts';
import { derivedUniqueChecks } from './derived-unique.ts';

export interface DerivedDescription {
  code: string;
  kind: string;
  step: string;
  /** Always error: the server would refuse the write. */
  severity: 'error';
  meaning: string;
  fix: string;
}

/** Every derived prediction of the migration's batched steps, in the order belay check reports them. */
export async function describeDerivedChecks(db: Db, m: LoadedMigration): Promise<DerivedDescription[]> {
  const out: DerivedDescription[] = (await derivedUniqueChecks(db, m)).map((d) => ({
    code: d.check.code,
    kind: 'unique-after',
    step: d.origin.step,
    severity: 'error',
    meaning: d.check.message ?? '',
    fix: d.check.fix ?? '',
  }));
  for (const [stepNo, step] of m.spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const target = await resolveStep(db, step, stepNo);
    const facts = await catalogFacts(db, step.table, step.writes);
    for (const r of rowRules(step, facts, target, m.spec.checks).rules)
      out.push({ code: r.code, kind: r.kind, step: step.name, severity: 'error', meaning: r.message, fix: r.fix });
    for (const x of exclusionRules(step, facts, target))
      out.push({ code: x.code, kind: 'exclusion', step: step.name, severity: 'error', meaning: x.message, fix: x.fix });
  }
  return out;
}
