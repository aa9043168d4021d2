// Making, finding and extending a batched step's decision (the SQL is in decision-sql.ts). The
// decision is made once per run, before the first write; a resume uses the stored one. Catch-up rounds
// add what the rule gives later (rows inserted or changed by the application meanwhile).
import { checksumInTransaction } from '../db/checksum.ts';
import type { Db } from '../db/connection.ts';
import { isComposite } from '../db/key-sql.ts';
import { ident, pinnedSettingsSql } from '../db/sql.ts';
import { DbError, serverFields, VerificationError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import { ruleOf, type StepTarget } from '../spec/resolve.ts';
import { withRetry } from '../db/retry.ts';
import { ownerOnly } from './privileges.ts';
import {
  ADD_ROUND_SQL,
  createFenceSql,
  fenceNames,
  dropFenceSql,
  SET_FENCE_SQL,
  LOCK_TIMEOUT_SQL,
  catchUpSql,
  createDecisionSql,
  createKeyTypeSql,
  decisionKeyType,
  type DecisionTarget,
  analyzeDecisionSql,
  decisionCountSql,
  decisionKeySql,
  decisionProblemsSql,
  decisionRelation,
  dropDecisionSql,
  LIVE_DECISIONS_SQL,
  skippedCountSql,
  MARK_DECISION_DROPPED_SQL,
  fillDecisionSql,
  GET_DECISION_SQL,
  INSERT_DECISION_SQL,
  STEP_HAS_BATCHES_SQL,
  tableChunkSql,
  ruleChangedSql,
  reclassifyChangedSql,
  keysRangeSql,
} from './decision-sql.ts';

export type { DecisionTarget } from './decision-sql.ts';

/** Keys per statement when a range projection is evaluated over the whole table to make the decision. */
export const DECIDE_CHUNK = 10_000;

export interface Decision extends DecisionTarget {
  /** Rows decided (all rounds). */
  rows: number;
  /** Rows decided in the pre-flight's snapshot, before any catch-up round; null: a run of an older belay that had rounds. */
  firstRows: number | null;
  /** A trigger records who else writes the written columns (rollback's conflict rule); false: the row version is the rule. */
  fence: boolean;
  /** Typed, order-independent checksum of the decision as made. */
  checksum: string;
  rounds: number;
}

/** Where the step's decision lives; a composite key's values there are of the decision's own row type. */
export function decisionTarget(t: StepTarget, runId: number | null, stepNo: number): DecisionTarget {
  return { ...t, relation: decisionRelation(runId, stepNo), ...(isComposite(t) ? { keyType: decisionKeyType(runId, stepNo) } : {}) };
}

/**
 * Makes the step's decision in the caller's transaction (REPEATABLE READ, so that every statement of it
 * sees one snapshot): the rule's rows that change something, with their before-images. Refused, with
 * nothing left behind by the caller's rollback, when the rule returns a key twice, a NULL key or a key
 * the table does not have, or a range projection returns keys outside its range.
 */
export async function makeDecision(db: Db, step: BatchedStep, stepNo: number, target: StepTarget, opts: { runId: number | null }): Promise<Decision> {
  const t = decisionTarget(target, opts.runId, stepNo);
  const rule = ruleOf(step, stepNo);
  const temp = opts.runId === null;
  for (const sql of dropDecisionSql(t.relation, isComposite(t) ? t.keyType : undefined)) await db.query(sql);
  if (isComposite(t)) await db.query(createKeyTypeSql(t, temp));
  await db.query(createDecisionSql(t, temp));
  // it holds before-images: default privileges (… GRANT SELECT ON TABLES TO app) must not reach it
  if (!temp) await ownerOnly(db, 'belay', t.relation);
  await fill(db, t, rule, (source, range) => fillDecisionSql(t, source, { range }));
  try {
    await db.query(decisionKeySql(t.relation));
  } catch (err) {
    if (serverFields(err).sqlstate !== '23505') throw err;
    throw new VerificationError(`step "${step.name}": its rule returns a key twice (${serverFields(err).detail ?? 'duplicate key'}); nothing was written`, {
      step: step.name,
      field: rule.field,
      fix: `The rule (${rule.field}) must return each key of ${target.tableName} at most once: group by the key, or pick one row per key.`,
    });
  }
  await db.query(analyzeDecisionSql(t.relation));
  const p = (await db.query<{ missing: number; sample: unknown[] }>(decisionProblemsSql(t.relation))).rows[0]!;
  if (p.missing > 0) {
    throw new VerificationError(
      `step "${step.name}": its rule returns ${p.missing} key(s) that are not rows of ${target.tableName}${rule.kind === 'range' ? ', or outside the range [$1, $2] it was given' : ''} (${JSON.stringify(p.sample)}); nothing was written`,
      {
        step: step.name,
        field: rule.field,
        sample: p.sample,
        fix: `The rule (${rule.field}) must return keys of existing rows of ${target.tableName}${rule.kind === 'range' ? ' within [$1, $2]' : ''}.`,
      },
    );
  }
  const rows = Number((await db.query<{ n: number }>(decisionCountSql(t.relation))).rows[0]!.n);
  // the checksum under pinned text settings, undone with the savepoint so the caller's session keeps its own
  await db.query('SAVEPOINT belay_decision_sum');
  await db.exec(pinnedSettingsSql());
  const sum = await checksumInTransaction(db, t.relation);
  await db.query('ROLLBACK TO SAVEPOINT belay_decision_sum');
  await db.query('RELEASE SAVEPOINT belay_decision_sum');
  if (opts.runId !== null) {
    await db.query(INSERT_DECISION_SQL, [opts.runId, stepNo, t.relation, t.tableName, t.key, t.keyType, [...t.writes], rows, sum.checksum]);
  }
  return { ...t, rows, firstRows: rows, checksum: sum.checksum, rounds: 0, fence: false };
}

/** Runs the rule over the table: one statement for a set-based rule, chunks of the key range for a range projection. */
async function fill(db: Db, t: DecisionTarget, rule: ReturnType<typeof ruleOf>, statement: (source: string, range: boolean) => string): Promise<number> {
  const run = async (sql: string, params: unknown[]) => {
    try {
      return (await db.query(sql, params)).rowCount;
    } catch (err) {
      if (!(err instanceof DbError)) throw err;
      throw new DbError(err.message, err.server, { context: `the rule of ${rule.field}`, cause: err });
    }
  };
  if (rule.kind === 'whole-table') return run(statement(rule.sql, false), []);
  let after: string | null = null;
  let added = 0;
  for (;;) {
    const c: { lo: string | null; hi: string | null } = (
      await db.query<{ lo: string | null; hi: string | null }>(tableChunkSql(t, after === null), [after, DECIDE_CHUNK])
    ).rows[0]!;
    if (c.lo === null || c.hi === null) return added;
    added += await run(statement(rule.sql, true), [c.lo, c.hi]);
    after = c.hi;
  }
}

/** The step's stored decision, or undefined when none was made yet. */
export async function storedDecision(db: Db, runId: number, stepNo: number, target: StepTarget): Promise<Decision | undefined> {
  const r = (
    await db.query<{ relation: string; rows: number; firstRows: number | null; checksum: string; rounds: number; status: string; fence: boolean }>(
      GET_DECISION_SQL,
      [runId, stepNo],
    )
  ).rows[0];
  if (r?.status !== 'live') return undefined;
  const firstRows = r.firstRows === null ? null : Number(r.firstRows);
  return {
    ...decisionTarget(target, runId, stepNo),
    relation: r.relation,
    rows: Number(r.rows),
    firstRows,
    checksum: r.checksum,
    rounds: r.rounds,
    fence: r.fence,
  };
}

/** The step's decision existed and cleanup dropped it (its rollback has no before-images left). */
export async function decisionDropped(db: Db, runId: number, stepNo: number): Promise<boolean> {
  const r = (await db.query<{ status: string }>(GET_DECISION_SQL, [runId, stepNo])).rows[0];
  return r?.status === 'dropped';
}

/** True once the step committed a batch: from then on its decision is never made again. */
export async function stepHasWritten(db: Db, runId: number, stepNo: number): Promise<boolean> {
  return (await db.query<{ has: boolean }>(STEP_HAS_BATCHES_SQL, [runId, stepNo])).rows[0]!.has;
}

/**
 * A catch-up round: the rule again, now; rows it gives that were not decided (inserted meanwhile) or
 * were skipped (changed meanwhile) join the decision as round `round`. Returns the rows added.
 */
export async function catchUp(
  db: Db,
  step: BatchedStep,
  stepNo: number,
  d: Decision,
  round: number,
  runId: number | null,
  opts: { count?: boolean } = {},
): Promise<number> {
  const rule = ruleOf(step, stepNo);
  await db.query('BEGIN');
  try {
    const added = await fill(db, d, rule, (source, range) => catchUpSql(d, source, round, { range }));
    // count: what one more round would add, rolled back (the rows left when the rounds are spent)
    if (opts.count) {
      await db.query('ROLLBACK');
      return added;
    }
    if (runId !== null && added > 0) await db.query(ADD_ROUND_SQL, [runId, stepNo, added]);
    await db.query('COMMIT');
    return added;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Of keys a check or a constraint rejected, those the rule itself no longer gives as decided, evaluated now:
 * the data changed since the decision (the application edited a row the rule reads), not the rule or the
 * check. They are marked skipped as changed. A range rule is evaluated once over the keys' whole range.
 */
export async function changedSinceDecision(db: Db, step: BatchedStep, stepNo: number, d: DecisionTarget, keys: readonly string[]): Promise<string[]> {
  if (keys.length === 0) return [];
  const rule = ruleOf(step, stepNo);
  const range = rule.kind !== 'whole-table';
  let params: unknown[] = [keys];
  if (range) {
    const r = (await db.query<{ lo: string; hi: string }>(keysRangeSql(d), [keys])).rows[0]!;
    params = [r.lo, r.hi, keys];
  }
  const changed = (await db.query<{ k: string }>(ruleChangedSql(d, rule.sql, range), params)).rows.map((r) => r.k);
  if (changed.length) await db.query(reclassifyChangedSql(d), [changed]);
  return changed;
}

/**
 * Puts up the step's write fence before its first batch: from then until cleanup, anyone else's write of a
 * written column (the same value included) is recorded, and rollback leaves that row alone. A role that may
 * not create triggers on the table (42501), or a table that stays locked, runs without it: rollback then
 * treats any newer row version as someone else's write. Returns whether the fence stands.
 */
export async function ensureFence(db: Db, d: Decision, runId: number, stepNo: number, lockTimeoutMs: number): Promise<boolean> {
  if (d.fence) return true;
  try {
    await withRetry(
      async () => {
        await db.query('BEGIN');
        try {
          await db.query(LOCK_TIMEOUT_SQL, [`${lockTimeoutMs}ms`]);
          for (const sql of createFenceSql(d, runId, stepNo)) await db.query(sql);
          await ownerOnly(db, 'belay', fenceNames(runId, stepNo).table);
          await db.query(SET_FENCE_SQL, [runId, stepNo, true]);
          await db.query('COMMIT');
        } catch (err) {
          await db.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      },
      { maxRetries: 5 },
    );
    d.fence = true;
    return true;
  } catch (err) {
    const state = serverFields(err).sqlstate;
    if (state === '42501' || state === '55P03') return false;
    throw err;
  }
}

/**
 * Drops a run's decisions (those decided before `decidedBefore`, epoch ms) and their fences: a run that
 * stopped before its first write and was superseded, or cleanup past the retention. Returns their steps.
 */
export async function dropDecisions(
  db: Db,
  runId: number,
  tableOf: (stepNo: number) => Promise<string | undefined>,
  decidedBefore = Infinity,
): Promise<number[]> {
  const live = (await db.query<{ stepNo: number; relation: string; fence: boolean; decidedMs: number }>(LIVE_DECISIONS_SQL, [runId])).rows.filter(
    (d) => d.decidedMs < decidedBefore,
  );
  for (const d of live) {
    const table = d.fence ? await tableOf(d.stepNo) : undefined;
    if (table) await dropFence(db, { table }, runId, d.stepNo);
    // a composite key's type goes with it (none for a single-column key: IF EXISTS)
    for (const sql of dropDecisionSql(d.relation, decisionKeyType(runId, d.stepNo))) await db.query(sql);
    await db.query(MARK_DECISION_DROPPED_SQL, [runId, d.stepNo]);
  }
  return live.map((d) => d.stepNo);
}

/** Decided rows of a step the run left unchanged (changed since the decision, or rejected); undefined without a decision. */
export async function skippedRows(db: Db, runId: number, stepNo: number): Promise<number | undefined> {
  const live = (await db.query<{ stepNo: number; relation: string }>(LIVE_DECISIONS_SQL, [runId])).rows.find((d) => d.stepNo === stepNo);
  return live ? (await db.query<{ n: number }>(skippedCountSql(live.relation))).rows[0]!.n : undefined;
}

/** Takes a step's fence down (after its rollback, or at cleanup). */
export async function dropFence(db: Db, d: { table: string }, runId: number, stepNo: number): Promise<void> {
  await db.query('BEGIN');
  try {
    for (const sql of dropFenceSql(d, runId, stepNo)) await db.query(sql);
    await db.query(SET_FENCE_SQL, [runId, stepNo, false]);
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * EXPLAIN (FORMAT JSON) of the first chunk of a range rule's decision: a scan per row there is what makes
 * deciding slow. A set-based rule reads whole tables by design: undefined.
 */
export async function explainDecision(db: Db, step: BatchedStep, stepNo: number, target: StepTarget): Promise<unknown> {
  const t = decisionTarget(target, null, stepNo);
  const rule = ruleOf(step, stepNo);
  if (rule.kind !== 'range') return undefined;
  const c = (await db.query<{ lo: string | null; hi: string | null }>(tableChunkSql(t, true), [null, DECIDE_CHUNK])).rows[0]!;
  if (c.lo === null) return undefined;
  const r = await db.query<Record<string, unknown>>(`EXPLAIN (FORMAT JSON) ${fillSelectSql(t, rule.sql)}`, [c.lo, c.hi]);
  const v = Object.values(r.rows[0]!)[0];
  return typeof v === 'string' ? JSON.parse(v) : v;
}

/** The rule's rows for the range [$1, $2] (what a chunk of the decision reads). */
function fillSelectSql(t: DecisionTarget, rule: string): string {
  return `SELECT * FROM (\n${rule}\n) p WHERE p.${ident(t.key)} BETWEEN $1::${t.keyType} AND $2::${t.keyType}`;
}
