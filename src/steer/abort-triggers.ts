// Abort triggers: the spec's `abort` conditions, evaluated after every committed batch. When one holds,
// the run pauses (resumable) or rolls back (every committed batch undone). A failed in-batch verification
// rolls back unless the spec declares otherwise. The trigger that fired is kept in runs.error, runs.summary
// and belay.events.
//
// What is counted (generic, so it works for any migration, see docs/rollback.md):
//   conflicts-over        with sql: rows the SQL returns, summed over batches. Without sql: rows this batch
//                         wrote that another session already changed again (rows a rollback would skip).
//   skipped-over          rows the spec's SQL returns (required), summed over batches: the migration says
//                         which rows it counts as skipped (for the flagship, slug conflicts in the range).
//   lock-retries-over     lock/serialization retries of the run so far (from the checkpoints).
//   batch-slower-than-ms  one batch's duration.
import { LOCK_RETRIES_SQL } from '../state/runs.ts';
import type { Db } from '../db/connection.ts';
import { AbortedError, type BelayError, SpecError, VerificationError } from '../errors.ts';
import type { BatchedStep, Migration } from '../spec/define.ts';
import { tell } from '../state/events.ts';
import { type FiredTrigger, mergeSummary, readSummary } from '../state/summary.ts';
import type { BatchController, BatchRecord, RunContext, Stage } from '../contract.ts';
import { resolveStep } from '../spec/resolve.ts';
import { decisionTarget, type DecisionTarget } from '../state/decision.ts';
import { changedSinceSql, writtenCte } from '../state/decision-sql.ts';

export type AbortDecision = 'pause' | 'rollback';

export type { FiredTrigger };

/** The default action of a failed in-batch verification when the spec declares none. */
export const DEFAULT_VERIFICATION_ACTION: AbortDecision = 'rollback';

const NEEDS_THRESHOLD = new Set(['conflicts-over', 'batch-slower-than-ms', 'lock-retries-over', 'skipped-over']);

/** Refuses triggers that cannot be evaluated (before anything is touched). */
export function validateAbortTriggers(spec: Migration): void {
  spec.abort.forEach((t, i) => {
    if (NEEDS_THRESHOLD.has(t.when) && t.threshold === undefined) {
      throw new SpecError(`abort trigger ${t.when} has no threshold`, {
        field: `abort.${i}.threshold`,
        expected: 'a number',
        fix: `Add threshold: N to abort.${i}.`,
      });
    }
    if (t.when === 'skipped-over' && !t.sql) {
      throw new SpecError('abort trigger skipped-over needs sql: the rows it counts as skipped', {
        field: `abort.${i}.sql`,
        expected: 'a SELECT over the batch range $1..$2 (it may read `written`)',
        fix: 'Add sql: returning the rows of [$1, $2] that the step leaves out on purpose (e.g. slug conflicts).',
      });
    }
    if (t.sql && t.when !== 'skipped-over' && t.when !== 'conflicts-over') {
      throw new SpecError(`abort trigger ${t.when} takes no sql`, { field: `abort.${i}.sql`, expected: 'sql only on conflicts-over or skipped-over' });
    }
  });
}

/** Rows returned by a trigger's SQL for one batch; `written` is the table's rows the batch wrote ($1/$2 range, $3 round). */
export function countTriggerSql(d: DecisionTarget, sql: string): string {
  return `WITH ${writtenCte(d)}
SELECT count(*)::int AS n FROM (
${sql}
) AS counted`;
}

/** The abort stage: the spec's triggers evaluated after every batch. */
export function abortStage(spec: Migration): Stage {
  return { name: 'abort-triggers', batches: abortController(spec) };
}

/**
 * A BatchController that evaluates spec.abort after every batch and turns a failed in-batch
 * verification into a rollback (or what the spec declares). Compose it with others via composeControllers.
 */
export function abortController(spec: Migration): BatchController {
  validateAbortTriggers(spec);
  const triggers = spec.abort;
  const verifyTrigger = triggers.findIndex((t) => t.when === 'verification-failed');
  // running totals per trigger index, kept in runs.summary.abortTotals so that a resumed run goes on counting
  let totals: Record<number, number> | undefined;
  let fired: FiredTrigger | undefined;
  const targets = new Map<number, DecisionTarget>();

  async function target(db: Db, runId: number, stepNo: number): Promise<DecisionTarget> {
    let t = targets.get(stepNo);
    if (!t) {
      t = decisionTarget(await resolveStep(db, spec.steps[stepNo] as BatchedStep, stepNo), runId, stepNo);
      targets.set(stepNo, t);
    }
    return t;
  }

  async function record(ctx: RunContext, f: FiredTrigger): Promise<void> {
    fired = f;
    await tell(ctx.db, ctx.emit, { type: 'abort-triggered', runId: ctx.runId, ...f });
    await mergeSummary(ctx.db, ctx.runId, { abort: f });
  }

  async function measure(ctx: RunContext, i: number, info: BatchRecord): Promise<number> {
    const t = triggers[i]!;
    const { db } = ctx;
    switch (t.when) {
      case 'batch-slower-than-ms':
        return info.durationMs;
      case 'lock-retries-over':
        return (await db.query<{ n: number }>(LOCK_RETRIES_SQL, [info.runId])).rows[0]!.n;
      case 'conflicts-over':
      case 'skipped-over': {
        const tg = await target(db, info.runId, info.stepNo);
        const r = t.sql
          ? await db.query<{ n: number }>(countTriggerSql(tg, t.sql), [info.lo, info.hi, info.round])
          : await db.query<{ n: number }>(changedSinceSql(tg), [info.lo, info.hi, info.round, info.xid]);
        totals![i] = (totals![i] ?? 0) + r.rows[0]!.n;
        return totals![i]!;
      }
      default:
        return 0;
    }
  }

  return {
    async afterBatch(ctx, info) {
      if (totals === undefined) {
        totals = { ...(ctx.resumed ? ((await readSummary(ctx.db, ctx.runId)).abortTotals ?? {}) : {}) };
      }
      let hit: FiredTrigger | undefined;
      for (const [i, t] of triggers.entries()) {
        if (t.when === 'verification-failed') continue;
        const value = await measure(ctx, i, info);
        if (value <= t.threshold!) continue;
        const unit = t.when === 'batch-slower-than-ms' ? ' ms' : '';
        const what = {
          'batch-slower-than-ms': `batch ${info.batchNo} of step "${info.step}" took ${Math.round(value)} ms`,
          'lock-retries-over': `${value} lock retries so far`,
          'conflicts-over': `${value} conflicting rows so far${t.sql ? " (counted by the trigger's SQL)" : ' (rows written and changed again by others)'}`,
          'skipped-over': `${value} skipped rows so far (counted by the trigger's SQL)`,
        }[t.when];
        const f: FiredTrigger = {
          index: i,
          when: t.when,
          threshold: t.threshold,
          decision: t.action,
          value,
          reason: `${what}, over the threshold of ${t.threshold}${unit}`,
          batchNo: info.batchNo,
          step: info.step,
        };
        if (!hit || (hit.decision === 'pause' && f.decision === 'rollback')) hit = f;
      }
      if (Object.keys(totals).length > 0) await mergeSummary(ctx.db, ctx.runId, { abortTotals: totals });
      if (!hit) return 'continue';
      await record(ctx, hit);
      return hit.decision;
    },

    async onError(ctx, err): Promise<BelayError | undefined> {
      if (err instanceof AbortedError && fired && err.details.decision === fired.decision) {
        return new AbortedError(`run ${ctx.runId}: abort trigger ${fired.when} fired: ${fired.reason} (${fired.decision})`, { ...err.details, trigger: fired });
      }
      // only an in-batch verification (it names its batch): post-run verifications have their own reporting
      if (err instanceof VerificationError && err.details.batchNo !== undefined) {
        const t = verifyTrigger >= 0 ? triggers[verifyTrigger]! : undefined;
        const f: FiredTrigger = {
          index: verifyTrigger,
          when: 'verification-failed',
          decision: t?.action ?? DEFAULT_VERIFICATION_ACTION,
          value: 1,
          reason: err.message,
          batchNo: err.details.batchNo as number,
          step: err.details.step as string | undefined,
        };
        await record(ctx, f);
        return new AbortedError(`run ${ctx.runId}: abort trigger verification-failed fired: ${err.message} (${f.decision})`, {
          decision: f.decision,
          trigger: f,
          verification: err.toJSON(),
        });
      }
      return undefined;
    },
  };
}
