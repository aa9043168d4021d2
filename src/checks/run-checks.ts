// Pre-flight checks: each returns offending rows; the result has a stable code, severity, count and samples.
// Everything runs in one READ ONLY snapshot that is always rolled back (on a server, shared by up to --jobs sessions).
import { type CatalogFacts, catalogFacts } from '../db/catalog-facts.ts';
import { type Db, openDb } from '../db/connection.ts';
import { exportSnapshot } from '../db/snapshot.ts';
import { ident, importSnapshotSql, qualified } from '../db/sql.ts';
import { BelayError, DbError } from '../errors.ts';
import type { BatchedStep, Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { resolveStep, type StepTarget } from '../spec/resolve.ts';
import { type DecisionTarget, makeDecision } from '../state/decision.ts';
import { pointAt } from '../spec/sql-parse.ts';
import { type StepFacts, stepFacts } from '../spec/step-facts.ts';
import {
  exclusionAfterSql,
  FINDING_PREFIX,
  findingSql,
  keyRangeSql,
  PROJECTION_PREFIX,
  READ_ONLY_BEGIN_SQL,
  READ_WRITE_BEGIN_SQL,
  rowRulesSql,
} from './check-sql.ts';
import { classifySql, type ClassifyCheck } from './classify.ts';
import { type DerivedKind, exclusionRules, rowRules } from './derived-constraints.ts';
import { type DerivedOrigin, derivedUniqueChecks } from './derived-unique.ts';
import { type PriorStep, priorSqlSteps, runPriorSteps } from './prior-steps.ts';
import { assertNoSqlProblems, type SqlProblem, stepSqlProblems, verificationProblems } from './projection-check.ts';
import { CHECK_ERROR_CODES, type CheckKindName, type CheckTarget, declaredFindings, type EmbeddedSql, kindOf, type PreparedCheck } from './registry.ts';
import { wholeTable } from './unique-after.ts';

export const DEFAULT_SAMPLE = 20;

/** What a finding is about: a declared check's kind, a prediction derived from the catalog, or a catalog fact. */
export type FindingKind = CheckKindName | DerivedKind | 'catalog';

export interface CheckFinding {
  /** The check's stable code (from the spec, or derived: UNIQUE:<index>@<step>, FOREIGN_KEY:…, TRIGGER:…). */
  code: string;
  kind: FindingKind;
  /** error blocks apply when count > 0 (a catalog fact of severity error always blocks); warn and info are reported. */
  severity: 'error' | 'warn' | 'info';
  message: string;
  /** Every offending row, counted over the whole table (0 for a catalog fact: it is about the schema, not rows). */
  count: number;
  /** At most `sample` offending rows, in the check's order. */
  sample: Record<string, unknown>[];
  fix?: string;
  durationMs: number;
  /** Set when belay derived the check from the catalog (nothing declared it): the step and the catalog object. */
  derived?: DerivedOrigin;
  /** A catalog fact's data (kind 'catalog'): the trigger, foreign key or key it is about, as plain data. */
  fact?: Record<string, unknown>;
  /** The check declares that its rows are the rows the migration changes (changes: true): expected-changes sums these. */
  changes?: boolean;
}

export interface CheckReport {
  migrationId: string;
  findings: CheckFinding[];
  /** True when no finding of severity error has rows. */
  ok: boolean;
  /** Codes of error findings with rows (what blocks apply). */
  blocking: string[];
  /** What the catalog says about each batched step's writes (the notes behind the catalog findings, and the tables changed indirectly). */
  catalog: StepFacts[];
  /** Plain-SQL steps the checks ran inside their rolled-back transaction, to see what they create (names). */
  previewedSteps: string[];
  durationMs: number;
}

export interface RunChecksOptions {
  /** Sample rows kept per finding (default 20). */
  sample?: number;
  /**
   * Sessions the checks are spread over (default 2, server only): the others import the first one's
   * snapshot, so every check still sees the same data. 1 = one session. Inside a caller's transaction
   * the checks always run in that one session.
   */
  jobs?: number;
  /**
   * Also predict what the catalog enforces on the written columns, report what it does, and plan every
   * projection first (default true). false: the declared checks alone, as verification recounts them
   * after a run (when a later plain-SQL step may have changed what a projection reads).
   */
  derive?: boolean;
  /** The steps' decisions, made by the caller in this snapshot (apply's pre-flight): the predictions read them. */
  decisions?: ReadonlyMap<number, DecisionTarget>;
  /** Make the decisions first, as temporary tables of the checks' snapshot (belay check, the dry run). */
  decide?: boolean;
}

import { DEFAULT_CHECK_JOBS } from './defaults.ts';

export { DEFAULT_CHECK_JOBS };

/** The SQL that returns a check's offending rows, for kinds that need no catalog look-up (runbook). */
export function checkSql(check: Check): string {
  switch (check.kind) {
    case 'sql':
    case 'classify':
      return check.sql;
    case 'orphans':
      return `SELECT c.* FROM ${qualified(check.table)} c
 WHERE c.${ident(check.column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${qualified(check.references.table)} p WHERE p.${ident(check.references.column)} = c.${ident(check.column)})`;
    default:
      throw new Error(`check kind ${check.kind} is computed from the catalog and the step's projection`);
  }
}

/** One query of the pre-flight and the findings it yields. */
interface CheckUnit {
  /** Heavier first (see WEIGHT). */
  weight: number;
  /** It reads a step's decision (what the step writes). */
  readsDecision?: boolean;
  run(db: Db, limit: number): Promise<CheckFinding[]>;
}

/**
 * Runs every check of the migration read-only and returns the findings. Before any check: plain-SQL
 * steps that create what later steps use run (rolled back), every batched step's key is resolved
 * (BELAY_KEY, exit 3), and every projection and verification is planned (BELAY_CHECK_SQL, exit 3,
 * naming the step, the field and the position). A check whose SQL fails throws BELAY_CHECK_SQL naming
 * the check and the error's line and column; a missing table, column or index throws SpecError. The
 * database is never changed.
 */
export async function runChecks(db: Db, loaded: LoadedMigration, opts: RunChecksOptions = {}): Promise<CheckReport> {
  const limit = opts.sample ?? DEFAULT_SAMPLE;
  const started = performance.now();
  const prior = await priorSqlSteps(db, loaded.spec);
  const decisions = new Map(opts.decisions ?? []);
  // belay check and the dry run decide each step in the checks' own snapshot (temporary tables), as apply
  // decides it before its pre-flight: the predictions read what the batches would write
  const decide = opts.decide && !opts.decisions ? (d: Db) => temporaryDecisions(d, loaded, decisions) : undefined;
  const { end, own } = await beginChecks(db, loaded, prior, decide);
  const m: CheckTarget = { ...loaded, decisions };
  let findings: CheckFinding[];
  let catalog: StepFacts[] = [];
  try {
    const derive = opts.derive !== false;
    const cache = new Map<string, Promise<CatalogFacts>>();
    const read = (s: BatchedStep) => {
      const k = `${s.table}\0${s.writes.join('\0')}`;
      if (!cache.has(k)) cache.set(k, catalogFacts(db, s.table, s.writes));
      return cache.get(k)!;
    };
    const steps = derive ? await preparedSteps(db, m, prior.length < m.spec.steps.filter((s) => s.kind === 'sql').length) : [];
    const units: CheckUnit[] = m.spec.checks.map((c) => ({
      weight: WEIGHT[c.kind],
      readsDecision: c.kind === 'unique-after' || (c.kind === 'not-null' && !!c.step),
      run: (s, n) => runOne(s, m, c, n),
    }));
    let notes: CheckFinding[] = [];
    if (derive) {
      // what the catalog enforces, read in the checks' snapshot; declared checks come first in the findings
      for (const d of await derivedUniqueChecks(db, m)) {
        units.push({
          weight: WEIGHT['unique-after'],
          readsDecision: true,
          run: async (s, n) => (await runOne(s, m, d.check, n)).map((f) => ({ ...f, derived: d.origin })),
        });
      }
      for (const p of steps) units.push(...derivedUnits(m, p, await read(p.step)));
      catalog = await stepFacts(db, m.spec, read);
      notes = catalogFindings(
        catalog,
        prior.map((x) => x.step.name),
      );
    }
    const jobs = Math.min(opts.jobs ?? DEFAULT_CHECK_JOBS, units.length);
    // a session importing the snapshot would not see what the previewed steps created
    const helpers = own && jobs > 1 && prior.length === 0 ? await snapshotSessions(db, jobs - 1) : [];
    try {
      // the temporary decisions are this session's: the checks that read them run here
      findings = [
        ...(
          await spread(
            [db, ...helpers],
            units,
            (session, u) => u.run(session, limit),
            (u) => decide !== undefined && !!u.readsDecision,
          )
        ).flat(),
        ...notes,
      ];
    } finally {
      // closing a helper ends its read-only transaction
      await Promise.all(helpers.map((h) => h.close().catch(() => undefined)));
    }
  } finally {
    await end();
  }
  const blocking = findings.filter((f) => f.severity === 'error' && (f.count > 0 || f.kind === 'catalog')).map((f) => f.code);
  return {
    migrationId: m.spec.id,
    findings,
    ok: blocking.length === 0,
    blocking,
    catalog,
    previewedSteps: prior.map((x) => x.step.name),
    durationMs: performance.now() - started,
  };
}

/** Decides every batched step as a temporary table of the checks' snapshot (after the previewed plain-SQL steps). */
async function temporaryDecisions(db: Db, m: LoadedMigration, into: Map<number, DecisionTarget>): Promise<void> {
  for (const [i, step] of m.spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const target = await resolveStep(db, step, i);
    // a rule that does not plan is the spec's mistake (BELAY_CHECK_SQL), as apply reports it, not a failed decision
    const r = (await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(target.table, target))).rows[0]!;
    assertNoSqlProblems(await stepSqlProblems(db, step, i, target, [r.lo, r.hi]));
    into.set(i, await makeDecision(db, step, i, target, { runId: null }));
  }
}

/** A batched step, its resolved target and the whole key range the predictions pass as $1/$2. */
interface PreparedStep {
  step: BatchedStep;
  stepNo: number;
  target: StepTarget;
  range: [string | null, string | null];
}

/** Resolves every batched step's key and plans its SQL and the post-run verifications; throws on the first kind of mistake. */
async function preparedSteps(db: Db, m: LoadedMigration, sqlStepsPending: boolean): Promise<PreparedStep[]> {
  const out: PreparedStep[] = [];
  for (const [stepNo, step] of m.spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const target = await resolveStep(db, step, stepNo);
    const r = (await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(target.table, target))).rows[0]!;
    out.push({ step, stepNo, target, range: [r.lo, r.hi] });
  }
  const problems: SqlProblem[] = [];
  for (const p of out) problems.push(...(await stepSqlProblems(db, p.step, p.stepNo, p.target, p.range)));
  problems.push(...(await verificationProblems(db, m.spec, sqlStepsPending)));
  assertNoSqlProblems(problems);
  return out;
}

/** The row rules of a step (one query for all of them) and its exclusion constraints (one query each). */
function derivedUnits(m: CheckTarget, p: PreparedStep, facts: CatalogFacts): CheckUnit[] {
  const { step, stepNo, target, range } = p;
  const projection = wholeTable(step, stepNo, m);
  const embedded = [{ ...projection, offset: PROJECTION_PREFIX.length }];
  const units: CheckUnit[] = [];
  const { shape, rules } = rowRules(step, facts, target, m.spec.checks);
  if (rules.length) {
    units.push({
      weight: WEIGHT['not-null'],
      readsDecision: true,
      async run(db, limit) {
        const t0 = performance.now();
        let rows: Array<{ rule: number; n: number; sample: Record<string, unknown>[] }>;
        try {
          rows = (
            await db.query<(typeof rows)[number]>(
              rowRulesSql(
                shape,
                projection.text,
                rules.map((r) => r.rule),
                limit,
              ),
              range,
            )
          ).rows;
        } catch (err) {
          throw checkSqlError({ code: rules[0]!.code, kind: rules[0]!.kind }, embedded, err, 0);
        }
        const ms = performance.now() - t0;
        return rules.map((r, i) => {
          const hit = rows.find((x) => Number(x.rule) === i);
          return {
            code: r.code,
            kind: r.kind,
            severity: 'error',
            message: r.message,
            count: hit ? Number(hit.n) : 0,
            sample: hit?.sample ?? [],
            fix: r.fix,
            durationMs: i === 0 ? ms : 0,
            derived: r.origin,
          };
        });
      },
    });
  }
  for (const x of exclusionRules(step, facts, target)) {
    units.push({
      weight: WEIGHT['unique-after'],
      readsDecision: true,
      async run(db, limit) {
        const t0 = performance.now();
        let row: { n: number; sample: Record<string, unknown>[] | null };
        try {
          row = (await db.query<typeof row>(findingSql(exclusionAfterSql(x.shape, projection.text), limit), range)).rows[0]!;
        } catch (err) {
          throw checkSqlError({ code: x.code, kind: 'exclusion' }, [{ ...projection, offset: PROJECTION_PREFIX.length }], err);
        }
        return [
          {
            code: x.code,
            kind: 'exclusion',
            severity: 'error',
            message: x.message,
            count: Number(row.n),
            sample: row.sample ?? [],
            fix: x.fix,
            durationMs: performance.now() - t0,
            derived: x.origin,
          },
        ];
      },
    });
  }
  return units;
}

/** The catalog's notes as findings (count 0: they are about the schema), and the plain-SQL steps the checks ran. */
function catalogFindings(catalog: readonly StepFacts[], previewed: readonly string[]): CheckFinding[] {
  const out: CheckFinding[] = previewed.map((name) => ({
    code: `SQL_STEP_PREVIEW:${name}`,
    kind: 'catalog',
    severity: 'info',
    count: 0,
    sample: [],
    durationMs: 0,
    message: `belay check ran plain-SQL step "${name}" inside its own transaction, rolled back, to see the columns and tables it creates for the steps after it; its locks were held until the checks ended`,
    fix: 'Nothing to do; on a busy database run the check when a short lock on the tables it alters does not matter.',
    fact: { kind: 'sql-step-preview', step: name },
  }));
  for (const s of catalog) {
    for (const n of s.notes) {
      out.push({
        code: n.code,
        kind: 'catalog',
        severity: n.severity,
        message: n.message,
        count: 0,
        sample: [],
        fix: n.fix,
        durationMs: 0,
        fact: { kind: n.kind, step: s.step, table: s.table, ...n.data },
      });
    }
  }
  return out;
}

async function runOne(db: Db, m: CheckTarget, check: Check, limit: number): Promise<CheckFinding[]> {
  const kind = kindOf(check);
  const t0 = performance.now();
  const prepared = await kind.prepare(db, check, m);
  if (check.kind === 'classify') return classified(db, check, prepared, limit, t0);
  let row: { n: number; sample: Record<string, unknown>[] | null };
  try {
    row = (await db.query<typeof row>(findingSql(prepared.sql, limit), prepared.params)).rows[0]!;
  } catch (err) {
    throw checkSqlError(check, prepared.embedded, err);
  }
  const [d] = declaredFindings(check);
  return [
    {
      code: d!.code,
      kind: check.kind,
      severity: d!.severity,
      message: d!.meaning,
      count: Number(row.n),
      sample: row.sample ?? [],
      fix: d!.fix,
      durationMs: performance.now() - t0,
      ...(d!.changes ? { changes: true } : {}),
    },
  ];
}

/** One query, one finding per declared category (in declared order); an undeclared category is an error in the check. */
async function classified(db: Db, check: ClassifyCheck, prepared: PreparedCheck, limit: number, t0: number): Promise<CheckFinding[]> {
  let rows: Array<{ category: string; n: number; sample: Record<string, unknown>[] | null }>;
  try {
    rows = (await db.query<(typeof rows)[number]>(classifySql(prepared.sql, check.column, limit), prepared.params)).rows;
  } catch (err) {
    throw checkSqlError(check, prepared.embedded, err);
  }
  const byValue = new Map(rows.map((r) => [r.category, r]));
  const unknown = rows.filter((r) => !check.categories.some((c) => c.value === r.category));
  if (unknown.length > 0) {
    throw new BelayError(
      CHECK_ERROR_CODES.sqlFailed,
      `check ${check.code} (classify) returned ${unknown.map((u) => `${u.n} row(s) of category "${u.category}"`).join(', ')}, which it does not declare (declared: ${check.categories.map((c) => `"${c.value}"`).join(', ')})`,
      {
        details: { check: check.code, kind: check.kind, undeclared: unknown.map((u) => u.category) },
        fix: `Declare every value the "${check.column}" column can take in categories, or return NULL for rows that are not to be reported. Nothing was changed.`,
      },
    );
  }
  const ms = performance.now() - t0;
  return declaredFindings(check).map((d, i) => {
    const r = byValue.get(check.categories[i]!.value);
    // the query's time is shared: the first category carries it, so the per-check times add up
    return {
      code: d.code,
      kind: check.kind,
      severity: d.severity,
      message: d.meaning,
      count: r ? Number(r.n) : 0,
      sample: r?.sample ?? [],
      fix: d.fix,
      durationMs: i === 0 ? ms : 0,
      ...(d.changes ? { changes: true } : {}),
    };
  });
}

/**
 * What the server said, where in the user's SQL (line, column, caret), and which check. prefix: the
 * characters before the check's own query in the statement sent (findingSql's by default).
 */
export function checkSqlError(
  check: { code: string; kind: string },
  embedded: readonly EmbeddedSql[],
  err: unknown,
  prefix = FINDING_PREFIX.length,
): BelayError {
  if (!(err instanceof DbError)) return err instanceof BelayError ? err : new BelayError('BELAY_INTERNAL', String(err), { cause: err });
  const s = err.server;
  // the server refusing the session (privileges, resources, connection) is not a fault of the check's SQL
  if (s.sqlstate === '42501' || /^(08|53|57|58)/.test(s.sqlstate ?? '')) {
    return new DbError(err.message, s, { context: `check ${check.code} (${check.kind})`, cause: err });
  }
  let where = '';
  let field: string | undefined;
  if (s.position !== undefined) {
    // the server counts characters from 1 in the statement sent, which starts with FINDING_PREFIX
    const at = s.position - 1 - prefix;
    const part = embedded.find((e) => at >= e.offset && at <= e.offset + e.text.length);
    if (part) {
      field = part.field;
      where = ` in ${part.field}\n${pointAt(part.text, at - part.offset)}`;
    }
  }
  const missing = s.sqlstate === '42P01' ? 'a table it names does not exist' : s.sqlstate === '42703' ? 'a column it names does not exist' : undefined;
  return new BelayError(CHECK_ERROR_CODES.sqlFailed, `check ${check.code} (${check.kind}) failed: ${err.message}${where}`, {
    details: { check: check.code, kind: check.kind, field, ...s },
    fix: missing
      ? `Correct the check or the migration: ${missing} (belay quotes every identifier, so case matters). Nothing was changed.`
      : 'Correct the SQL of the check (or of the projection it uses) and run belay check again. Nothing was changed.',
    cause: err,
  });
}

/**
 * Opens the checks' snapshot and returns the function that ends it; own: the transaction is the checks'
 * own (not a caller's). Inside a caller's transaction, a savepoint is made read-only for the checks and
 * rolled back after them. Plain-SQL steps to preview run first, then the transaction turns read-only.
 */
async function beginChecks(
  db: Db,
  m: LoadedMigration,
  prior: readonly PriorStep[],
  decide?: (db: Db) => Promise<void>,
): Promise<{ end: () => Promise<void>; own: boolean }> {
  let own = false;
  try {
    // fails with 25P01 outside a transaction block, without any effect
    await db.query('SAVEPOINT belay_checks');
  } catch (err) {
    if (!(err instanceof DbError) || err.server.sqlstate !== '25P01') throw err;
    own = true;
  }
  const end = own
    ? async () => void (await db.query('ROLLBACK'))
    : async () => {
        await db.query('ROLLBACK TO SAVEPOINT belay_checks');
        await db.query('RELEASE SAVEPOINT belay_checks');
      };
  const writable = prior.length > 0 || (own && decide !== undefined);
  if (own) await db.query(writable ? READ_WRITE_BEGIN_SQL : READ_ONLY_BEGIN_SQL);
  try {
    await runPriorSteps(db, m.spec, prior);
    if (own) await decide?.(db);
    // from here on the server refuses any write a check might attempt (turning read-only is allowed at any time)
    if (writable || !own) await db.query('SET LOCAL transaction_read_only = on');
  } catch (err) {
    await end().catch(() => undefined);
    throw err;
  }
  return { own, end };
}

/**
 * Up to n more sessions (server only) in db's snapshot: db's own REPEATABLE READ transaction exports it,
 * each session imports it read-only. A session the server refuses (connection limit, privileges) is
 * left out: the checks then share fewer sessions.
 */
async function snapshotSessions(db: Db, n: number): Promise<Db[]> {
  if (db.kind !== 'postgres' || n < 1) return [];
  const id = await exportSnapshot(db);
  if (id === undefined) return [];
  const opened = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = await openDb(db.url, { applicationName: 'belay check' }).catch(() => undefined);
      if (!s) return undefined;
      try {
        await s.query(READ_ONLY_BEGIN_SQL);
        await s.query(importSnapshotSql(id));
        return s;
      } catch {
        await s.close().catch(() => undefined);
        return undefined;
      }
    }),
  );
  return opened.filter((s): s is Db => s !== undefined);
}

/** Queries on a projection over the whole table first: the longest checks start first. */
const WEIGHT: Readonly<Record<CheckKindName, number>> = { 'unique-after': 3, 'not-null': 3, classify: 2, sql: 1, orphans: 0 };
// a stable sort keeps units of one weight in the order they were made: declared, then derived

/**
 * Runs every unit on the first free session and returns the results in the units' order. After a
 * failure only units before it still run (on the other sessions: the failure aborted its session's
 * transaction), so the error thrown is, as far as sessions remain, the one of the first failing unit in
 * order (declared checks first), as if they ran one after another.
 */
async function spread<U extends { weight: number }, T>(
  sessions: readonly Db[],
  units: readonly U[],
  run: (db: Db, unit: U) => Promise<T>,
  firstOnly: (u: U) => boolean = () => false,
): Promise<T[]> {
  const results: T[] = new Array(units.length);
  const order = units.map((c, i) => ({ c, i })).sort((a, b) => b.c.weight - a.c.weight || a.i - b.i);
  let failedAt = Infinity;
  let error: unknown;
  const taken = new Set<number>();
  await Promise.all(
    sessions.map(async (session, s) => {
      for (;;) {
        // units that read what only the first session has (its temporary decisions) run there
        const item = order.find((x) => !taken.has(x.i) && x.i < failedAt && (s === 0 || !firstOnly(x.c)));
        if (!item) return;
        taken.add(item.i);
        try {
          results[item.i] = await run(session, item.c);
        } catch (err) {
          if (item.i < failedAt) {
            failedAt = item.i;
            error = err;
          }
          // the failed statement aborted this session's transaction
          return;
        }
      }
    }),
  );
  if (failedAt !== Infinity) throw error;
  return results;
}
