// The check stage: the checks run before the first write (and refuse with
// ChecksFailedError, exit 6, when an error-severity finding has rows), their results are stored
// with the run id, and the checks that protect a write lend guards to every batch.
import { ChecksFailedError, SpecError } from '../errors.ts';
import { tell } from '../state/events.ts';
import { type DecisionTarget, storedDecision } from '../state/decision.ts';
import { resolveStep } from '../spec/resolve.ts';
import { storeCheckResults } from '../state/check-results.ts';
import { priorSqlSteps } from './prior-steps.ts';
import { type GuardFacts, kindOf } from './registry.ts';
import { type CheckReport, runChecks } from './run-checks.ts';
import { uniqueShape } from './unique-after.ts';
import type { RunContext, Stage } from '../contract.ts';

export interface PreflightOptions {
  /** Do not run the checks before the first write (recorded as skipped). Guards still protect each batch. */
  skipChecks?: boolean;
  /** Sample rows kept per finding (default 20). */
  sample?: number;
  /** Receives the report before apply goes on or refuses (the CLI prints it). */
  onReport?: (report: CheckReport) => void;
}

/** The check stage: before the first write it runs and stores the checks; every batch gets their guards. */
export interface Preflight extends Stage {
  /** The last report (undefined before the stage ran, or when skipped). */
  readonly report: CheckReport | undefined;
}

export function preflight(opts: PreflightOptions = {}): Preflight {
  const facts: GuardFacts = { indexes: new Map() };
  let report: CheckReport | undefined;
  return {
    name: 'check',
    get report() {
      return report;
    },
    async before(ctx) {
      const { db, runId, migration: m } = ctx;
      // catalog facts for the guards, resolved once so that guards() can stay synchronous; an index a plain-SQL
      // step creates does not exist yet (the checks preview it): its batches keep the server's own check
      const pending = (await priorSqlSteps(db, m.spec)).length > 0;
      for (const c of m.spec.checks) {
        if (c.kind !== 'unique-after') continue;
        try {
          facts.indexes.set(c.code, (await uniqueShape(db, c, m)).shape);
        } catch (err) {
          if (!(pending && err instanceof SpecError)) throw err;
        }
      }
      if (opts.skipChecks) {
        await storeCheckResults(db, runId, [
          { code: '-', kind: '-', severity: 'info', outcome: 'skipped', count: 0, message: 'pre-flight skipped (--skip-checks)' },
        ]);
        await tell(db, ctx.emit, { type: 'checks-skipped', runId });
        return;
      }
      // the predictions read the decisions made in this snapshot (the decide stage), not the rules again
      const decisions = new Map<number, DecisionTarget>();
      for (const [i, step] of m.spec.steps.entries()) {
        if (step.kind !== 'batched') continue;
        const d = await storedDecision(db, runId, i, await resolveStep(db, step, i));
        if (d) decisions.set(i, d);
      }
      report = await runChecks(db, m, { sample: opts.sample, decisions });
      await storeReport(ctx, report);
      opts.onReport?.(report);
      if (!report.ok) {
        const parts = report.findings
          .filter((f) => report!.blocking.includes(f.code))
          .map((f) => (f.kind === 'catalog' ? f.code : `${f.code} (${f.count} row${f.count === 1 ? '' : 's'})`));
        throw new ChecksFailedError(`pre-flight of "${m.spec.id}" found blocking rows: ${parts.join(', ')}; nothing was written`, {
          runId,
          blocking: report.blocking,
          findings: report.findings.map((f) => ({ code: f.code, severity: f.severity, count: f.count, sample: f.sample.slice(0, 5) })),
        });
      }
    },
    batches: {
      guards(ctx, step, target) {
        return ctx.migration.spec.checks.flatMap((c) => kindOf(c).guard?.(c, step, target, facts) ?? []);
      },
    },
  };
}

async function storeReport(ctx: RunContext, r: CheckReport): Promise<void> {
  const rows = r.findings.map((f) => ({
    code: f.code,
    kind: f.kind,
    severity: f.severity,
    message: f.message,
    fix: f.fix ?? null,
    count: f.count,
    sample: f.sample,
    // a catalog fact is about the schema: noted, or blocking when it is an error
    durationMs: f.durationMs,
    outcome: f.kind === 'catalog' ? (f.severity === 'error' ? 'blocked' : 'noted') : f.count === 0 ? 'passed' : f.severity === 'error' ? 'blocked' : 'found',
  }));
  await storeCheckResults(ctx.db, ctx.runId, rows);
  const counts = Object.fromEntries(r.findings.map((f) => [f.code, f.count]));
  await tell(ctx.db, ctx.emit, { type: 'checks-finished', runId: ctx.runId, ok: r.ok, blocking: r.blocking, counts, durationMs: r.durationMs });
}

export { checkResults, type StoredCheckResult } from '../state/check-results.ts';
