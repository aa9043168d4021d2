// Post-run verification: did the run change exactly what it said, do the touched tables' constraints
// hold, do the migration's own verify queries pass, and did no column it does not write change?
// A baseline (pre-flight counts, checksums of untouched columns) is taken before the first write.
import { checkResults } from '../state/check-results.ts';
import { tableInfo } from '../db/catalog.ts';
import { type Db, transaction } from '../db/connection.ts';
import { pinnedSettingsSql } from '../db/sql.ts';
import { BelayError, VerificationError } from '../errors.ts';
import type { BatchedStep, Check, Migration } from '../spec/define.ts';
import { ensureState } from '../state/schema.ts';
import { getRun } from '../state/runs.ts';
import { type Baseline, mergeSummary, readSummary, type UntouchedBaseline } from '../state/summary.ts';
import { recordRound } from './record.ts';
import {
  countedSql,
  INVALID_UNIQUE_SQL,
  keyRangeSql,
  nullsSql,
  offendingWrittenSql,
  UNVALIDATED_SQL,
  untouchedChecksumSql,
  validateConstraintSql,
  writtenCountedSql,
} from './verify-sql.ts';
import { type Decision, storedDecision } from '../state/decision.ts';
import {
  decisionCountSql,
  decisionRangeSql,
  decisionTotalsSql,
  fenceCountSql,
  fenceNames,
  writesHeldSql,
  writtenAsWrittenSql,
  writtenRowsSql,
} from '../state/decision-sql.ts';
import type { Stage } from '../contract.ts';
import { resolveStep, tableCounts, writtenTables } from '../spec/resolve.ts';

export const DEFAULT_SAMPLE = 10;
/** Key buckets of the untouched-column checksum: a mismatch is located to about 1 % of the key range. */
export const DEFAULT_BUCKETS = 100;

/** pass; fail (offending rows); error (the check could not run: counts as a failure); warn (reported only); skipped. */
export type CheckOutcome = 'pass' | 'fail' | 'error' | 'warn' | 'skipped';
export type CheckKind = 'writes' | 'categories' | 'constraints' | 'spec' | 'untouched' | 'monitor';

export interface VerifyCheck {
  /** Stable name: writes-held, expected-changes, categories, unique-indexes-valid, … or the spec's own name. */
  name: string;
  kind: CheckKind;
  result: CheckOutcome;
  /** Offending rows (or buckets, categories, constraints) found. */
  count: number;
  /** Up to `sample` offending rows, as JSON. */
  sample: unknown[];
  message: string;
  /** Monitoring checks: alert when count is above this. */
  threshold?: number;
  /** When result is error: what the server said. */
  error?: Record<string, unknown>;
}

export interface VerifyResult {
  runId: number;
  migrationId: string;
  /** Id of the recorded round in belay.verifications (0 when not recorded). */
  roundId: number;
  at: string;
  source: RoundSource;
  /** No check failed or errored. */
  ok: boolean;
  durationMs: number;
  checks: VerifyCheck[];
}

export type RoundSource = 'apply' | 'verify' | 'monitor';

export interface VerifyOptions {
  /** Who asked (recorded): apply (the afterWrite hook), verify (the command, default), monitor. */
  source?: RoundSource;
  /** Rows kept per failing check (default DEFAULT_SAMPLE). */
  sample?: number;
  /** Re-validate NOT VALID foreign keys and checks with ALTER TABLE … VALIDATE CONSTRAINT (a table scan). */
  validateConstraints?: boolean;
  /** Record the round in belay.verifications (default true). */
  record?: boolean;
  /**
   * The application writes to the touched tables while the run goes on: recounted categories and
   * untouched-column checksums then report other sessions' edits as warnings, not failures.
   */
  concurrentWrites?: boolean;
  /** Counts the given checks' rows again (the pipeline passes the check stage's runner); without it the recount is skipped. */
  recount?: Recount;
}

/** Runs checks read-only and returns each finding's code, severity and row count. */
export type Recount = (db: Db, spec: Migration, checks: Check[]) => Promise<ReadonlyArray<{ code: string; severity: string; count: number }>>;

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** Takes the baseline before the first write; on a resume the first baseline stays. */
export async function captureBaseline(db: Db, runId: number, spec: Migration, opts: { buckets?: number } = {}): Promise<Baseline> {
  const written = await writtenTables(db, spec);
  const untouched: UntouchedBaseline[] = [];
  for (const t of spec.tables) {
    const info = await tableInfo(db, t);
    const w = written.find((x) => x.tableName === t);
    const columns = info.columns.map((c) => c.name).filter((c) => !w?.writes.includes(c));
    if (columns.length === 0) continue;
    const key = w?.key ?? (info.primaryKey.length === 1 ? info.primaryKey[0] : undefined);
    const keyType = info.columns.find((c) => c.name === key)?.type;
    const b: UntouchedBaseline = { table: t, columns, buckets: {} };
    if (key && keyType && INTEGER_TYPES.has(keyType)) {
      const r = await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(info.sqlName, key));
      const { lo, hi } = r.rows[0]!;
      if (lo !== null && hi !== null) {
        const span = BigInt(hi) - BigInt(lo) + 1n;
        const n = BigInt(opts.buckets ?? DEFAULT_BUCKETS);
        Object.assign(b, { key, lo, hi, width: String((span + n - 1n) / n) });
      }
    }
    b.buckets = await bucketSums(db, info.sqlName, b);
    untouched.push(b);
  }
  const baseline: Baseline = { at: new Date().toISOString(), untouched };
  await mergeSummary(db, runId, { verify: baseline });
  return baseline;
}

async function bucketSums(db: Db, sqlName: string, b: Omit<UntouchedBaseline, 'buckets'>): Promise<Record<string, [number, string]>> {
  return transaction(db, async () => {
    // t::text depends on DateStyle, TimeZone, …: pin them so the before and after sums are comparable
    await db.exec(pinnedSettingsSql());
    const r = await db.query<{ b: string; n: number; sum: string }>(untouchedChecksumSql(sqlName, b.columns, b));
    return Object.fromEntries(r.rows.map((x) => [String(x.b), [Number(x.n), String(x.sum)] as [number, string]]));
  });
}

export async function storedBaseline(db: Db, runId: number): Promise<Baseline | undefined> {
  return (await readSummary(db, runId)).verify;
}

/** Runs every post-run check of a run and records the round. Never throws for a failing check: see `ok`. */
export async function verifyRun(db: Db, runId: number, opts: VerifyOptions = {}): Promise<VerifyResult> {
  await ensureState(db);
  const t0 = performance.now();
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const limit = opts.sample ?? DEFAULT_SAMPLE;
  const baseline = run.summary.verify;
  const decisions = await runDecisions(db, runId, spec);
  const checks: VerifyCheck[] = [
    ...(await writesHeld(db, runId, decisions, limit)),
    ...(await categoryChecks(db, runId, spec, decisions, opts.recount)),
    ...(await constraintChecks(db, spec, opts.validateConstraints ?? false, limit)),
    ...(await stepChecks(db, runId, decisions, limit)),
    ...(await specChecks(db, spec, limit)),
    await untouchedCheck(db, baseline, limit),
  ];
  // belay writes only the decided rows' written columns: drift elsewhere is taken for the application's when the
  // run saw the application write (or the user says it does); with no such sign it fails (a trigger on belay's
  // own writes, a stage that writes, or something nobody expected)
  const evidence = opts.concurrentWrites
    ? ['the application writes to these tables (--concurrent-writes)']
    : await applicationEvidence(db, runId, run.summary.countsBefore, spec, decisions, checks);
  const warnOnly = (c: VerifyCheck, why: string) => {
    c.result = 'warn';
    c.message = `${c.message} (warning only, ${why}; the application wrote meanwhile: ${evidence.join('; ')})`;
  };
  for (const c of checks) {
    if (c.result !== 'fail' || evidence.length === 0) continue;
    if (c.name === 'categories' || c.name === 'untouched-columns') warnOnly(c, 'belay writes only the decided rows');
    // every written row passed the step's check inside its batch, in the batch's transaction: a row failing it
    // now was changed (or what it reads was) after its batch committed
    else if (decisions.some((x) => c.name === `${x.step.name}.verify`)) warnOnly(c, 'every written row passed this check inside its batch');
    else if (spec.verify.some((v) => v.name === c.name) && (await notWrittenByRun(db, runId, decisions, spec.verify.find((v) => v.name === c.name)!.sql)))
      warnOnly(c, 'none of these rows is one the run wrote');
  }
  return finishRound(db, run.id, run.migrationId, opts.source ?? 'verify', checks, performance.now() - t0, opts.record ?? true);
}

/**
 * Whether every row a spec verify query returns carries a step's key and none is a row the run wrote: rows
 * belay never touched that fail the query now fail because the data changed (the decided ones were decided on
 * the data as it was), not because of the run.
 */
async function notWrittenByRun(db: Db, runId: number, decisions: StepDecision[], sql: string): Promise<boolean> {
  if (decisions.length === 0) return false;
  for (const { stepNo, d } of decisions) {
    const r = (await db.query<{ n: number; keyed: number; mine: number }>(offendingWrittenSql(sql, writtenRowsSql(d, runId, stepNo), d))).rows[0]!;
    if (r.keyed !== r.n || r.mine > 0) return false;
  }
  return true;
}

/** What shows that the application wrote while the run went on: one line each; empty = nothing seen. */
async function applicationEvidence(
  db: Db,
  runId: number,
  countsBefore: Record<string, number> | undefined,
  spec: Migration,
  decisions: StepDecision[],
  checks: readonly VerifyCheck[],
): Promise<string[]> {
  const out: string[] = [];
  for (const { stepNo, step, d } of decisions) {
    if (d.fence) {
      const n = (await db.query<{ n: number }>(fenceCountSql(fenceNames(runId, stepNo).table))).rows[0]!.n;
      if (n > 0) out.push(`the write fence of step "${step.name}" recorded ${n} row(s) written by others`);
    }
  }
  for (const c of checks) {
    if ((c.name.startsWith('changed-since:') || c.name.startsWith('not-written:')) && c.count > 0) out.push(`${c.name}: ${c.count} row(s)`);
  }
  if (countsBefore) {
    const now = await tableCounts(db, spec).catch(() => ({}) as Record<string, number>);
    for (const [t, n] of Object.entries(countsBefore)) if (now[t] !== undefined && now[t] !== n) out.push(`${t} held ${n} rows before the run, ${now[t]} now`);
  }
  return out;
}

export async function finishRound(
  db: Db,
  runId: number,
  migrationId: string,
  source: RoundSource,
  checks: VerifyCheck[],
  durationMs: number,
  record: boolean,
  alerts?: unknown[],
): Promise<VerifyResult> {
  const ok = !checks.some((c) => c.result === 'fail' || c.result === 'error');
  let roundId = 0;
  let at = new Date().toISOString();
  if (record) ({ roundId, at } = await recordRound(db, runId, source, ok, durationMs, checks, alerts));
  return { runId, migrationId, roundId, at, source, ok, durationMs, checks };
}

interface StepDecision {
  stepNo: number;
  step: BatchedStep;
  d: Decision;
}

/** The run's batched steps with the decision each walked (a step that never started has none). */
export async function runDecisions(db: Db, runId: number, spec: Migration): Promise<StepDecision[]> {
  const out: StepDecision[] = [];
  for (const [stepNo, step] of spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const d = await storedDecision(db, runId, stepNo, await resolveStep(db, step, stepNo));
    if (d) out.push({ stepNo, step, d });
  }
  return out;
}

/**
 * Every row the run wrote still holds what it wrote (and still exists); and the decided rows it did not
 * write, because someone changed them first or an in-batch check left them out, listed apart (a warning:
 * the application's doing, not belay's).
 */
async function writesHeld(db: Db, runId: number, decisions: StepDecision[], limit: number): Promise<VerifyCheck[]> {
  const out: VerifyCheck[] = [];
  for (const { stepNo, step, d } of decisions) {
    const fence = d.fence ? fenceNames(runId, stepNo).table : undefined;
    let byOthers: { count: number; sample: unknown[] } = { count: 0, sample: [] };
    out.push(
      await guarded(
        `writes-held:${step.name}`,
        'writes',
        `rows of ${d.tableName} step "${step.name}" wrote that no longer hold the written value${fence ? ', with no other writer recorded by the fence' : ''}`,
        async () => {
          const r = (
            await db.query<{ n: number; sample: unknown[] | null; othersN: number; othersSample: unknown[] | null }>(
              writesHeldSql(d, runId, stepNo, limit, fence),
            )
          ).rows[0]!;
          byOthers = { count: r.othersN, sample: r.othersSample ?? [] };
          return { count: r.n, sample: r.sample ?? [] };
        },
      ),
    );
    // the application's doing, listed apart: a warning, the run stays completed
    out.push({
      name: `changed-since:${step.name}`,
      kind: 'writes',
      result: byOthers.count > 0 ? 'warn' : 'pass',
      count: byOthers.count,
      sample: byOthers.sample,
      message: `rows step "${step.name}" wrote that the application changed or deleted afterwards (recorded by the write fence, or deleted)`,
    });
    const left = await guarded(
      `not-written:${step.name}`,
      'writes',
      `decided rows of step "${step.name}" left unchanged: changed by someone since the decision, or rejected by an in-batch check`,
      async () => {
        const r = (await db.query<{ skippedChanged: number; rejected: number; skippedSample: unknown[] }>(decisionTotalsSql(d, runId, stepNo))).rows[0]!;
        return { count: r.skippedChanged + r.rejected, sample: r.skippedSample.slice(0, limit) };
      },
    );
    if (left.result === 'fail') left.result = 'warn';
    out.push(left);
  }
  return out;
}

/**
 * Pre-flight categories (as stored by the pre-flight before the first write) against the run: rows the
 * pre-flight said would change (the findings of checks that declare changes: true) equal the rows the
 * run changed; every other category of the sql and orphans kinds (rows that stay as they are) has the
 * same count today.
 */
async function categoryChecks(db: Db, runId: number, spec: Migration, decisions: StepDecision[], recount: Recount | undefined): Promise<VerifyCheck[]> {
  const stored = (await checkResults(db, runId)).filter((r) => r.outcome !== 'skipped');
  if (stored.length === 0) {
    const why = "no pre-flight results were stored for this run (--skip-checks, or applied without the pre-flight): the spec's verify queries stand in";
    return [
      { name: 'expected-changes', kind: 'categories', result: 'skipped', count: 0, sample: [], message: why },
      { name: 'categories', kind: 'categories', result: 'skipped', count: 0, sample: [], message: why },
    ];
  }
  const before = new Map(stored.map((r) => [r.code, r]));
  // only the checks that declare their rows are the rows to change count, never every informational one
  const changing = new Set(
    spec.checks.flatMap((c) =>
      c.kind === 'classify' ? c.categories.filter((x) => x.changes).map((x) => x.code) : c.kind === 'sql' && c.changes ? [c.code] : [],
    ),
  );
  const toChange = stored.filter((r) => changing.has(r.code));
  const expectedChange: VerifyCheck =
    toChange.length === 0
      ? {
          name: 'expected-changes',
          kind: 'categories',
          result: 'skipped',
          count: 0,
          sample: [],
          message: 'no pre-flight check declares the rows to change (changes: true on a sql check or a classify category)',
        }
      : await guarded(
          'expected-changes',
          'categories',
          `rows the run decided to change against the pre-flight's rows to change (${toChange.map((r) => r.code).join(', ')}), in the same snapshot`,
          async () => {
            let total = 0;
            // a row a catch-up round decided again was decided in the pre-flight's snapshot all the same
            for (const { d } of decisions) total += d.firstRows ?? Number((await db.query<{ n: number }>(decisionCountSql(d.relation, 0))).rows[0]!.n);
            const expected = toChange.reduce((s, r) => s + r.count, 0);
            const same = expected === total;
            return {
              count: same ? 0 : Math.abs(expected - total),
              sample: same ? [] : [{ categories: toChange.map((r) => r.code), expected, changed: total }],
            };
          },
        );
  if (!recount)
    return [
      expectedChange,
      { name: 'categories', kind: 'categories', result: 'skipped', count: 0, sample: [], message: 'no check runner was given to count the categories again' },
    ];
  const categories = await guarded('categories', 'categories', 'pre-flight categories of rows that stay as they are, counted again', async () => {
    // unique-after and not-null predict the write itself: the constraints checks stand for them afterwards
    const counted = (code: string, severity: string) => severity !== 'info' && !changing.has(code) && before.has(code);
    const again = spec.checks.filter(
      (c) =>
        (c.kind === 'classify' && c.categories.some((x) => counted(x.code, x.severity))) ||
        ((c.kind === 'sql' || c.kind === 'orphans') && counted(c.code, c.severity)),
    );
    const after = await recount(db, spec, again);
    const diff = after
      .filter((f) => counted(f.code, f.severity) && before.get(f.code)!.count !== f.count)
      .map((f) => ({ category: f.code, before: before.get(f.code)!.count, after: f.count }));
    return { count: diff.length, sample: diff };
  });
  return [expectedChange, categories];
}

/** Unique indexes valid, foreign keys and checks validated, spec's NOT NULL columns without NULLs. */
async function constraintChecks(db: Db, spec: Migration, validate: boolean, limit: number): Promise<VerifyCheck[]> {
  const infos = [];
  for (const t of spec.tables) infos.push(await tableInfo(db, t)); // one session: one query at a time
  const oids = infos.map((i) => i.oid);
  const out: VerifyCheck[] = [];
  out.push(
    await guarded('unique-indexes-valid', 'constraints', 'unique indexes of the touched tables that are not valid (indisvalid)', async () => {
      const r = await db.query(INVALID_UNIQUE_SQL, [oids]);
      return { count: r.rows.length, sample: r.rows.slice(0, limit) };
    }),
  );
  const unvalidated = await guarded('constraints-validated', 'constraints', 'foreign keys and checks on the touched tables that are NOT VALID', async () => {
    const r = await db.query<{ name: string; table: string; type: string }>(UNVALIDATED_SQL, [oids]);
    const left: unknown[] = [];
    for (const c of r.rows) {
      if (!validate) {
        left.push(c);
        continue;
      }
      try {
        // regclass::text is already a quoted, qualified name
        await db.query(validateConstraintSql(c.table, c.name));
      } catch (err) {
        left.push({ ...c, validateError: err instanceof BelayError ? err.message : String(err) });
      }
    }
    return { count: left.length, sample: left.slice(0, limit) };
  });
  // a NOT VALID constraint is not proof of a violation: without --validate-constraints it is reported, not failed
  if (!validate && unvalidated.result === 'fail') unvalidated.result = 'warn';
  out.push(unvalidated);
  for (const check of spec.checks) {
    if (check.kind !== 'not-null') continue;
    const info = infos[spec.tables.indexOf(check.table)] ?? (await tableInfo(db, check.table));
    const key = info.primaryKey.length === 1 ? info.primaryKey[0] : undefined;
    out.push(
      await guarded(`not-null:${check.table}.${check.column}`, 'constraints', `NULLs in ${check.table}.${check.column}, which must be NOT NULL`, async () => {
        const r = await db.query<{ n: number; sample: unknown[] | null }>(nullsSql(info.sqlName, check.column, key, limit));
        return { count: r.rows[0]!.n, sample: r.rows[0]!.sample ?? [] };
      }),
    );
  }
  return out;
}

/** The migration's own verify queries (each returns offending rows). Also run by the monitor. */
export async function specChecks(db: Db, spec: Migration, limit: number): Promise<VerifyCheck[]> {
  const out: VerifyCheck[] = [];
  for (const v of spec.verify) {
    out.push(
      await guarded(v.name, 'spec', v.message ?? v.name, async () => {
        const r = await db.query<{ n: number; sample: unknown[] | null }>(countedSql(v.sql, limit));
        return { count: r.rows[0]!.n, sample: r.rows[0]!.sample ?? [] };
      }),
    );
  }
  return out;
}

/**
 * Each batched step's in-batch verification, re-run over all the rows the run wrote, against today's data
 * (for the flagship: every assigned owner is still its row's single valid link).
 */
async function stepChecks(db: Db, runId: number, decisions: StepDecision[], limit: number): Promise<VerifyCheck[]> {
  const out: VerifyCheck[] = [];
  for (const { stepNo, step, d } of decisions) {
    if (!step.verify) continue;
    const sql = step.verify;
    out.push(
      await guarded(`${step.name}.verify`, 'spec', `rows written by step "${step.name}" that fail its verification today`, async () => {
        // `written`: the rows as the step wrote them (its values, today's other columns), as in its batches
        const columns = (await tableInfo(db, d.tableName)).columns.map((c) => c.name);
        const range = (await db.query<{ lo: string | null; hi: string | null }>(decisionRangeSql(d.relation))).rows[0]!;
        const r = await db.query<{ n: number; sample: unknown[] | null }>(
          writtenCountedSql(sql, writtenAsWrittenSql(d, runId, stepNo, columns), limit, d.keyType),
          [range.lo, range.hi],
        );
        return { count: r.rows[0]!.n, sample: r.rows[0]!.sample ?? [] };
      }),
    );
  }
  return out;
}

/** Checksums of the columns the run does not write, per key bucket, against the baseline. */
async function untouchedCheck(db: Db, baseline: Baseline | undefined, limit: number): Promise<VerifyCheck> {
  const message = 'key ranges in which a column the run does not write changed (rows present at baseline time)';
  if (!baseline) {
    return {
      name: 'untouched-columns',
      kind: 'untouched',
      result: 'skipped',
      count: 0,
      sample: [],
      message: 'no baseline checksum was taken before the first write',
    };
  }
  return guarded('untouched-columns', 'untouched', message, async () => {
    const diffs: unknown[] = [];
    for (const b of baseline.untouched) {
      const info = await tableInfo(db, b.table);
      const now = await bucketSums(db, info.sqlName, b);
      for (const id of new Set([...Object.keys(b.buckets), ...Object.keys(now)])) {
        const [n0, s0] = b.buckets[id] ?? [0, '0'];
        const [n1, s1] = now[id] ?? [0, '0'];
        if (n0 === n1 && s0 === s1) continue;
        const range = b.width && b.lo ? bucketRange(b.lo, b.width, b.hi!, id) : undefined;
        diffs.push({ table: b.table, key: b.key, range, rowsBefore: n0, rowsAfter: n1 });
      }
    }
    return { count: diffs.length, sample: diffs.slice(0, limit) };
  });
}

function bucketRange(lo: string, width: string, hi: string, bucket: string): [string, string] {
  const from = BigInt(lo) + BigInt(bucket) * BigInt(width);
  const to = from + BigInt(width) - 1n;
  return [String(from), String(to < BigInt(hi) ? to : BigInt(hi))];
}

/** Runs one check; offending rows make it fail, an exception makes it an error (never thrown). */
export async function guarded(name: string, kind: CheckKind, message: string, fn: () => Promise<{ count: number; sample: unknown[] }>): Promise<VerifyCheck> {
  try {
    const { count, sample } = await fn();
    return { name, kind, result: count > 0 ? 'fail' : 'pass', count, sample, message };
  } catch (err) {
    const error = err instanceof BelayError ? err.toJSON() : { message: err instanceof Error ? err.message : String(err) };
    return { name, kind, result: 'error', count: 0, sample: [], message, error };
  }
}

/** Throws VerificationError (exit 7) when the round failed. */
export function assertVerified(r: VerifyResult): VerifyResult {
  if (r.ok) return r;
  const failed = r.checks.filter((c) => c.result === 'fail' || c.result === 'error');
  throw new VerificationError(
    `verification of run ${r.runId} failed: ${failed.map((c) => `${c.name} (${c.result === 'error' ? 'error' : c.count})`).join(', ')}`,
    {
      runId: r.runId,
      roundId: r.roundId,
      failed: failed.map((c) => ({ name: c.name, result: c.result, count: c.count, sample: c.sample.slice(0, 5), error: c.error })),
      fix: `Read the offending rows (belay verify ${r.runId} --json), fix them or roll the run back (belay rollback ${r.runId}).`,
    },
  );
}

export interface BaselineOptions {
  buckets?: number;
}

/** The baseline stage: checksums of the columns the run does not write, before the first write (kept on resume). */
export function baselineStage(opts: BaselineOptions = {}): Stage {
  return {
    name: 'baseline',
    async before(ctx) {
      if (ctx.resumed && (await storedBaseline(ctx.db, ctx.runId))) return;
      await captureBaseline(ctx.db, ctx.runId, ctx.migration.spec, { buckets: opts.buckets });
    },
  };
}

/** The verify stage: after the last step, every post-run check; a failure ends the run failed (exit 7). */
export function verificationStage(opts: Omit<VerifyOptions, 'source' | 'record'> = {}): Stage {
  return {
    name: 'verify',
    async after(ctx) {
      const r = await verifyRun(ctx.db, ctx.runId, { ...opts, source: 'apply' });
      for (const c of r.checks.filter((x) => x.result === 'fail' || x.result === 'error')) {
        ctx.emit({ type: 'verification-failed', runId: ctx.runId, step: 'post-run', name: c.name, count: c.count, sample: c.sample });
      }
      assertVerified(r);
    },
  };
}
