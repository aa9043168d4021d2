// The pre-flight as apply hooks: the checks run before the first write (and refuse with
// ChecksFailedError, exit 6, when an error-severity finding has rows), their results are stored
// with the run id, and the checks that protect a write lend guards to every batch.
import type { Db } from '../db/connection.ts';
import { ChecksFailedError } from '../errors.ts';
import type { ApplyOptions, BatchController, RunContext } from '../execute/apply.ts';
import { composeControllers } from '../run/compose.ts';
import { recordEvent } from '../state/runs.ts';
import { INSERT_CHECK_RESULTS_SQL, SELECT_CHECK_RESULTS_SQL } from './check-sql.ts';
import { type GuardFacts, kindOf } from './registry.ts';
import { type CheckReport, runChecks } from './run-checks.ts';
import { uniqueShape } from './unique-after.ts';

export interface PreflightOptions {
  /** Do not run the checks before the first write (recorded as skipped). Guards still protect each batch. */
  skipChecks?: boolean;
  /** Sample rows kept per finding (default 20). */
  sample?: number;
  /** Receives the report before apply goes on or refuses (the CLI prints it). */
  onReport?: (report: CheckReport) => void;
}

export interface Preflight {
  /** ApplyOptions.beforeWrite: resolves the guards, runs and stores the checks, refuses on blocking findings. */
  beforeWrite(ctx: RunContext): Promise<void>;
  /** ApplyOptions.controller member: the protecting checks as in-batch guards. */
  controller: BatchController;
  /** The last report (undefined before beforeWrite ran, or when skipped). */
  readonly report: CheckReport | undefined;
}

export function preflight(opts: PreflightOptions = {}): Preflight {
  const facts: GuardFacts = { indexes: new Map() };
  let report: CheckReport | undefined;
  return {
    get report() {
      return report;
    },
    async beforeWrite(ctx) {
      const { db, runId, migration: m } = ctx;
      // catalog facts for the guards, resolved once so that guards() can stay synchronous
      for (const c of m.spec.checks) if (c.kind === 'unique-after') facts.indexes.set(c.code, (await uniqueShape(db, c, m)).shape);
      if (opts.skipChecks) {
        await db.query(INSERT_CHECK_RESULTS_SQL, [runId, JSON.stringify([{ code: '-', kind: '-', severity: 'info', outcome: 'skipped', count: 0, message: 'pre-flight skipped (--skip-checks)' }])]);
        await recordEvent(db, runId, 'checks-skipped', {});
        ctx.emit({ type: 'log', level: 'warn', message: 'pre-flight checks skipped (--skip-checks)', runId });
        return;
      }
      report = await runChecks(db, m, { sample: opts.sample });
      await storeReport(ctx, report);
      opts.onReport?.(report);
      if (!report.ok) {
        const parts = report.findings.filter((f) => report!.blocking.includes(f.code)).map((f) => `${f.code} (${f.count} row${f.count === 1 ? '' : 's'})`);
        throw new ChecksFailedError(`pre-flight of "${m.spec.id}" found blocking rows: ${parts.join(', ')}; nothing was written`, {
          runId, blocking: report.blocking,
          findings: report.findings.map((f) => ({ code: f.code, severity: f.severity, count: f.count, sample: f.sample.slice(0, 5) })),
        });
      }
    },
    controller: {
      guards(ctx, step, target) {
        return ctx.migration.spec.checks.flatMap((c) => kindOf(c).guard?.(c, step, target, facts) ?? []);
      },
    },
  };
}

/** The ApplyOptions.beforeWrite hook alone (guards need the controller too: prefer withPreflight). */
export function preflightHook(opts: PreflightOptions = {}): (ctx: RunContext) => Promise<void> {
  return preflight(opts).beforeWrite;
}

/** ApplyOptions with the pre-flight before any other beforeWrite hook and its guards added to the controller. */
export function withPreflight(options: ApplyOptions, opts: PreflightOptions = {}): ApplyOptions {
  const p = preflight(opts);
  const before = options.beforeWrite;
  return {
    ...options,
    beforeWrite: async (ctx) => {
      // checks first: a refused run should not pay for a backup
      await p.beforeWrite(ctx);
      await before?.(ctx);
    },
    controller: composeControllers(options.controller, p.controller),
  };
}

async function storeReport(ctx: RunContext, r: CheckReport): Promise<void> {
  const rows = r.findings.map((f) => ({
    code: f.code, kind: f.kind, severity: f.severity, message: f.message, fix: f.fix ?? null, count: f.count, sample: f.sample,
    durationMs: f.durationMs, outcome: f.count === 0 ? 'passed' : f.severity === 'error' ? 'blocked' : 'found',
  }));
  await ctx.db.query(INSERT_CHECK_RESULTS_SQL, [ctx.runId, JSON.stringify(rows)]);
  const counts = Object.fromEntries(r.findings.map((f) => [f.code, f.count]));
  await recordEvent(ctx.db, ctx.runId, 'checks-finished', { ok: r.ok, blocking: r.blocking, counts, durationMs: r.durationMs });
  ctx.emit({
    type: 'log', level: r.ok ? 'info' : 'error', runId: ctx.runId,
    message: `pre-flight: ${r.ok ? 'no blocking findings' : `blocked by ${r.blocking.join(', ')}`} (${r.findings.map((f) => `${f.code} ${f.count}`).join(', ')})`,
  });
}

export interface StoredCheckResult {
  code: string;
  kind: string;
  severity: string;
  /** passed | found | blocked | skipped */
  outcome: string;
  count: number;
  message: string | null;
  fix: string | null;
  sample: Record<string, unknown>[];
  durationMs: number | null;
}

/** The pre-flight results recorded for a run (reports read these). */
export async function checkResults(db: Db, runId: number): Promise<StoredCheckResult[]> {
  const r = await db.query<StoredCheckResult>(SELECT_CHECK_RESULTS_SQL, [runId]);
  return r.rows.map((x) => ({ ...x, count: Number(x.count) }));
}
