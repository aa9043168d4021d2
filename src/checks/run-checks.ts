// Pre-flight checks: each returns offending rows; the result has a stable code, severity, count and samples.
// Everything runs in one READ ONLY snapshot that is always rolled back (on a server, shared by up to --jobs sessions).
import { type Db, openDb } from '../db/connection.ts';
import { EXPORT_SNAPSHOT_SQL, ident, importSnapshotSql, qualified } from '../db/sql.ts';
import { BelayError, DbError, EXIT } from '../errors.ts';
import type { Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { resolveStep } from '../spec/resolve.ts';
import { type DecisionTarget, makeDecision } from '../state/decision.ts';
import { pointAt } from '../spec/sql-parse.ts';
import { FINDING_PREFIX, findingSql, READ_ONLY_BEGIN_SQL, SNAPSHOT_BEGIN_SQL } from './check-sql.ts';
import { classifySql, type ClassifyCheck } from './classify.ts';
import { type DerivedOrigin, derivedUniqueChecks } from './derived-unique.ts';
import { CHECK_ERROR_CODES, type CheckKindName, type CheckTarget, declaredFindings, type EmbeddedSql, kindOf, type PreparedCheck } from './registry.ts';

export const DEFAULT_SAMPLE = 20;

export interface CheckFinding {
  /** The check's stable code (from the spec). */
  code: string;
  kind: CheckKindName;
  /** error blocks apply when count > 0; warn and info are reported. */
  severity: 'error' | 'warn' | 'info';
  message: string;
  /** Every offending row, counted over the whole table. */
  count: number;
  /** At most `sample` offending rows, in the check's order. */
  sample: Record<string, unknown>[];
  fix?: string;
  durationMs: number;
  /** Set when belay derived the check from the catalog (nothing declared it): the step and the index. */
  derived?: DerivedOrigin;
}

export interface CheckReport {
  migrationId: string;
  findings: CheckFinding[];
  /** True when no finding of severity error has rows. */
  ok: boolean;
  /** Codes of error findings with rows (what blocks apply). */
  blocking: string[];
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
  /** Also predict what the catalog enforces on the written columns (unique indexes), undeclared (default true). */
  derive?: boolean;
  /** The steps' decisions, made by the caller in this snapshot (apply's pre-flight): the predictions read them. */
  decisions?: ReadonlyMap<number, DecisionTarget>;
  /** Make the decisions first, as temporary tables of the checks' snapshot (belay check, the dry run). */
  decide?: boolean;
}

/**
 * Each check is one query on one core; the flagship's two heavy ones (classification, unique-after)
 * take seconds each at 1M rows, so two sessions about halve the wall time on a server with a core to spare.
 */
export const DEFAULT_CHECK_JOBS = 2;

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

/**
 * Runs every check of the migration read-only and returns the findings. A check whose SQL fails
 * throws BELAY_CHECK_SQL (exit 3) naming the check and the error's line and column; a missing
 * table, column or index throws SpecError. The database is never changed.
 */
export async function runChecks(db: Db, loaded: LoadedMigration, opts: RunChecksOptions = {}): Promise<CheckReport> {
  const limit = opts.sample ?? DEFAULT_SAMPLE;
  const started = performance.now();
  const decisions = new Map(opts.decisions ?? []);
  // belay check and the dry run decide each step in the checks' own snapshot (temporary tables), as apply
  // decides it before its pre-flight: the predictions read what the batches would write
  const decide = opts.decide && !opts.decisions ? (d: Db) => temporaryDecisions(d, loaded, decisions) : undefined;
  const { end, own } = await beginReadOnly(db, decide);
  const m: CheckTarget = { ...loaded, decisions };
  let findings: CheckFinding[];
  try {
    // what the catalog enforces, read in the checks' snapshot; declared checks come first in the findings
    const derived = opts.derive === false ? [] : await derivedUniqueChecks(db, m);
    const checks = [...m.spec.checks, ...derived.map((d) => d.check)];
    const jobs = Math.min(opts.jobs ?? DEFAULT_CHECK_JOBS, checks.length);
    const helpers = own && jobs > 1 ? await snapshotSessions(db, jobs - 1) : [];
    try {
      const readsDecision = (c: Check) => decide !== undefined && (c.kind === 'unique-after' || (c.kind === 'not-null' && !!c.step));
      const results = await spread([db, ...helpers], checks, (session, check) => runOne(session, m, check, limit), readsDecision);
      const declared = m.spec.checks.length;
      findings = results.flatMap((fs, i) => (i < declared ? fs : fs.map((f) => ({ ...f, derived: derived[i - declared]!.origin }))));
    } finally {
      // closing a helper ends its read-only transaction
      await Promise.all(helpers.map((h) => h.close().catch(() => undefined)));
    }
  } finally {
    await end();
  }
  const blocking = findings.filter((f) => f.severity === 'error' && f.count > 0).map((f) => f.code);
  return { migrationId: loaded.spec.id, findings, ok: blocking.length === 0, blocking, durationMs: performance.now() - started };
}

/** Decides every batched step that no other step precedes, as temporary tables (rolled back with the checks). */
async function temporaryDecisions(db: Db, m: LoadedMigration, into: Map<number, DecisionTarget>): Promise<void> {
  for (const [i, step] of m.spec.steps.entries()) {
    if (i > 0) break;
    if (step.kind !== 'batched') continue;
    into.set(i, await makeDecision(db, step, i, await resolveStep(db, step, i), { runId: null }));
  }
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
  return [{
    code: d!.code, kind: check.kind, severity: d!.severity, message: d!.meaning,
    count: Number(row.n), sample: row.sample ?? [], fix: d!.fix, durationMs: performance.now() - t0,
  }];
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
    throw new BelayError(CHECK_ERROR_CODES.sqlFailed,
      `check ${check.code} (classify) returned ${unknown.map((u) => `${u.n} row(s) of category "${u.category}"`).join(', ')}, which it does not declare (declared: ${check.categories.map((c) => `"${c.value}"`).join(', ')})`, {
        details: { check: check.code, kind: check.kind, undeclared: unknown.map((u) => u.category) },
        fix: `Declare every value the "${check.column}" column can take in categories, or return NULL for rows that are not to be reported. Nothing was changed.`,
      });
  }
  const ms = performance.now() - t0;
  return declaredFindings(check).map((d, i) => {
    const r = byValue.get(check.categories[i]!.value);
    // the query's time is shared: the first category carries it, so the per-check times add up
    return { code: d.code, kind: check.kind, severity: d.severity, message: d.meaning, count: r ? Number(r.n) : 0, sample: r?.sample ?? [], fix: d.fix, durationMs: i === 0 ? ms : 0 };
  });
}

/** What the server said, where in the user's SQL (line, column, caret), and which check. */
export function checkSqlError(check: Check, embedded: readonly EmbeddedSql[], err: unknown): BelayError {
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
    const at = s.position - 1 - FINDING_PREFIX.length;
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
 * Opens the read-only snapshot and returns the function that ends it; own: the transaction is the
 * checks' own (not a caller's). Inside a caller's transaction, a savepoint is made read-only for the
 * checks and rolled back after them.
 */
async function beginReadOnly(db: Db, decide?: (db: Db) => Promise<void>): Promise<{ end: () => Promise<void>; own: boolean }> {
  try {
    // fails with 25P01 outside a transaction block, without any effect
    await db.query('SAVEPOINT belay_checks');
  } catch (err) {
    if (!(err instanceof DbError) || err.server.sqlstate !== '25P01') throw err;
    if (!decide) {
      await db.query(READ_ONLY_BEGIN_SQL);
      return { own: true, end: async () => void (await db.query('ROLLBACK')) };
    }
    // the decisions are temporary tables of this snapshot; after them nothing may write
    await db.query(SNAPSHOT_BEGIN_SQL);
    try {
      await decide(db);
      await db.query('SET LOCAL transaction_read_only = on');
    } catch (e) {
      await db.query('ROLLBACK').catch(() => undefined);
      throw e;
    }
    return { own: true, end: async () => void (await db.query('ROLLBACK')) };
  }
  await db.query('SET LOCAL transaction_read_only = on');
  return {
    own: false,
    end: async () => {
      await db.query('ROLLBACK TO SAVEPOINT belay_checks');
      await db.query('RELEASE SAVEPOINT belay_checks');
    },
  };
}

/**
 * Up to n more sessions (server only) in db's snapshot: db's own REPEATABLE READ transaction exports it,
 * each session imports it read-only. A session the server refuses (connection limit, privileges) is
 * left out: the checks then share fewer sessions.
 */
async function snapshotSessions(db: Db, n: number): Promise<Db[]> {
  if (db.kind !== 'postgres' || n < 1) return [];
  const id = (await db.query<{ id: string }>(EXPORT_SNAPSHOT_SQL)).rows[0]!.id;
  const opened = await Promise.all(Array.from({ length: n }, async () => {
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
  }));
  return opened.filter((s): s is Db => s !== undefined);
}

/** Queries on a projection over the whole table first: the longest checks start first. */
const WEIGHT: Readonly<Record<CheckKindName, number>> = { 'unique-after': 3, 'not-null': 3, classify: 2, sql: 1, orphans: 0 };

/**
 * Runs every check on the first free session and returns the results in the checks' order. After a
 * failure only checks declared before it still run (on the other sessions: the failure aborted its
 * session's transaction), so the error thrown is, as far as sessions remain, the one of the first
 * failing check in declared order, as if they ran one after another.
 */
async function spread<T>(sessions: readonly Db[], checks: readonly Check[], run: (db: Db, check: Check) => Promise<T>, firstOnly: (c: Check) => boolean = () => false): Promise<T[]> {
  const results: T[] = new Array(checks.length);
  const order = checks.map((c, i) => ({ c, i })).sort((a, b) => WEIGHT[b.c.kind] - WEIGHT[a.c.kind] || a.i - b.i);
  let failedAt = Infinity;
  let error: unknown;
  const taken = new Set<number>();
  await Promise.all(sessions.map(async (session, s) => {
    for (;;) {
      // checks that read what only the first session has (its temporary decisions) run there
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
  }));
  if (failedAt !== Infinity) throw error;
  return results;
}
