// What one stage lends another, wired here so that stages never import each other: the check stage's
// runner for verification's recount, and what the documents show of the checks and of the batches.
import { CHECK_KINDS } from '../checks/registry.ts';
import { describeDerivedChecks } from '../checks/describe-derived.ts';
import { checkSql, runChecks } from '../checks/run-checks.ts';
import { writeBatchSql, writtenCte } from '../state/decision-sql.ts';
import { stepFacts } from '../spec/step-facts.ts';
import type { ReportSources } from '../report/sources.ts';
import type { Recount } from '../verify/verify.ts';

/** Verification counts the pre-flight's categories again with the check stage's own runner. */
export const recount: Recount = async (db, spec, checks) =>
  (await runChecks(db, { spec: { ...spec, checks }, file: '<stored spec>', params: {}, checksum: '' }, { sample: 0, derive: false })).findings;

/** The decision's table as the runbook names it, before a run gives it its number. */
const SHOWN_DECISION = 'belay."decision_r<run>_s<step>"';

export const reportSources: ReportSources = {
  checkSql: (c) => (c.kind === 'sql' || c.kind === 'orphans' || c.kind === 'classify' ? checkSql(c) : undefined),
  batchSql: (t) => writeBatchSql({ ...t, relation: SHOWN_DECISION }),
  verifySql: (t, step) => (step.verify ? `WITH ${writtenCte({ ...t, relation: SHOWN_DECISION })}\n${step.verify}` : undefined),
  checkKinds: Object.values(CHECK_KINDS).map((k) => ({ code: k.kind, kind: k.defaultSeverity, meaning: k.meaning, whatToDo: k.defaultFix })),
  liveChecks: (db, m, sample) => runChecks(db, m, { sample }),
  catalog: async (db, m) => ({ facts: await stepFacts(db, m.spec), derived: await describeDerivedChecks(db, m) }),
};
