// Mistakes in a batched step's SQL found before anything runs: every rule (decide or projection)
// and in-batch verification is planned against the catalog (EXPLAIN, never executed), its output
// columns are compared with the key and `writes`, and each written column's assignment is planned as the
// batches will run it (types, generated columns). Every mistake is reported with its step, its spec field,
// the line and column in the user's own text and what to do; never in terms of belay's own SQL.
import { parse } from 'libpg-query';
import type { Db } from '../db/connection.ts';
import { BelayError, DbError } from '../errors.ts';
import type { BatchedStep, Migration } from '../spec/define.ts';
import { resolveStep, ruleOf, type StepTarget } from '../spec/resolve.ts';
import { pointAt } from '../spec/sql-parse.ts';
import {
  EXPLAIN_PREFIX,
  EXPLAIN_QUERY_PREFIX,
  keyRangeSql,
  explainProjectionSql,
  explainQuerySql,
  explainVerifyPrefix,
  explainVerifySql,
  explainWriteSql,
  projectionColumnsSql,
  projectionTypeSql,
} from './check-sql.ts';
import { CHECK_ERROR_CODES } from './registry.ts';

export interface SqlProblem {
  /** The step, or null for a post-run verification. */
  step: string | null;
  /** The spec field: steps.0.projection (assign-owner). */
  field: string;
  message: string;
  /** Line, column and a caret under the place in the user's text, when known. */
  at?: string;
  fix: string;
  sqlstate?: string;
}

/** A savepoint around each statement: a failed plan must not end the checks' transaction. */
async function tryPlan(db: Db, sql: string, params: unknown[]): Promise<DbError | undefined> {
  await db.query('SAVEPOINT belay_plan');
  try {
    await db.query(sql, params);
    await db.query('RELEASE SAVEPOINT belay_plan');
    return undefined;
  } catch (err) {
    await db.query('ROLLBACK TO SAVEPOINT belay_plan');
    await db.query('RELEASE SAVEPOINT belay_plan');
    if (err instanceof DbError) return err;
    throw err;
  }
}

/** Problems of one batched step's SQL; range: the whole key range as text (a batch's $1/$2). */
export async function stepSqlProblems(db: Db, step: BatchedStep, stepNo: number, t: StepTarget, range: [string | null, string | null]): Promise<SqlProblem[]> {
  const out: SqlProblem[] = [];
  const params = [...range];
  // a set-based rule ignores the range; rangeUsed() lets both forms plan with the same two parameters
  const rule = ruleOf(step, stepNo);
  const f = { field: rule.field, text: rule.sql };
  const planned = await tryPlan(db, explainProjectionSql(f.text, t.keyType), params);
  if (planned) out.push(serverProblem(step.name, f.field, f.text, planned, EXPLAIN_PREFIX.length));
  else out.push(...(await outputProblems(db, step, f, t, params)));
  if (step.verify) {
    const planned = await tryPlan(db, explainVerifySql(t.table, step.verify, t.keyType), params);
    if (planned) out.push(serverProblem(step.name, `steps.${stepNo}.verify (${step.name})`, step.verify, planned, explainVerifyPrefix(t.table).length));
  }
  return out;
}

/**
 * Problems of the post-run verifications. They run after every step: an object a plain-SQL step has
 * not created yet (none ran in this transaction) is not a mistake.
 */
export async function verificationProblems(db: Db, spec: Migration, sqlStepsPending: boolean): Promise<SqlProblem[]> {
  const out: SqlProblem[] = [];
  for (const [i, v] of spec.verify.entries()) {
    const planned = await tryPlan(db, explainQuerySql(v.sql), []);
    if (!planned) continue;
    if (sqlStepsPending && ['42P01', '42703', '42883', '3F000'].includes(planned.server.sqlstate ?? '')) continue;
    out.push(serverProblem(null, `verify.${i}.sql (${v.name})`, v.sql, planned, EXPLAIN_QUERY_PREFIX.length));
  }
  return out;
}

/**
 * Plans the SQL of every batched step that no plain-SQL step precedes, as its batches write it, before a
 * run record exists: throws BELAY_KEY or BELAY_CHECK_SQL (exit 3) listing every problem, or returns. (A
 * step after a plain-SQL step may use what that step creates: belay check and the run plan it then.)
 */
export async function assertStepsPlan(db: Db, spec: Migration): Promise<void> {
  const problems: SqlProblem[] = [];
  // planned only, in a read-only transaction rolled back (each plan under a savepoint of it)
  await db.query('BEGIN TRANSACTION READ ONLY');
  try {
    for (const [stepNo, step] of spec.steps.entries()) {
      if (step.kind === 'sql') break;
      const t = await resolveStep(db, step, stepNo);
      const r = (await db.query<{ lo: string | null; hi: string | null }>(keyRangeSql(t.table, t))).rows[0]!;
      problems.push(...(await stepSqlProblems(db, step, stepNo, t, [r.lo, r.hi])));
    }
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
  assertNoSqlProblems(problems);
}

/** Throws BELAY_CHECK_SQL (exit 3) listing every problem, or returns. */
export function assertNoSqlProblems(problems: readonly SqlProblem[]): void {
  if (problems.length === 0) return;
  const lines = problems.map(
    (p) =>
      `  ${p.field}: ${p.message}${
        p.at
          ? `\n${p.at
              .split('\n')
              .map((l) => `  ${l}`)
              .join('\n')}`
          : ''
      }\n    fix: ${p.fix}`,
  );
  throw new BelayError(
    CHECK_ERROR_CODES.sqlFailed,
    `the migration's SQL has ${problems.length} problem${problems.length === 1 ? '' : 's'} (found by planning it; nothing ran, nothing was changed):\n${lines.join('\n')}`,
    {
      details: { step: problems[0]!.step, field: problems[0]!.field, problems },
      fix: problems[0]!.fix,
    },
  );
}

function serverProblem(step: string | null, field: string, text: string, err: DbError, prefix: number): SqlProblem {
  const s = err.server;
  const pos = s.position === undefined ? undefined : s.position - 1 - prefix;
  const inside = pos !== undefined && pos >= 0 && pos <= text.length;
  const missing = s.sqlstate === '42P01' ? 'a table it names does not exist' : s.sqlstate === '42703' ? 'a column it names does not exist' : undefined;
  return {
    step,
    field,
    sqlstate: s.sqlstate,
    message: `${firstLine(err.message)}${s.hint ? ` (hint: ${s.hint})` : ''}`,
    ...(inside ? { at: pointAt(text, pos) } : {}),
    fix: missing
      ? `Correct the name in ${field}: ${missing} (belay quotes every identifier, so case matters; a column a plain-SQL step adds exists only after it).`
      : `Correct ${field} and run belay check again.`,
  };
}

/** Of a composite key's columns, the first whose join with the table's does not plan (the key itself when single). */
async function keyColumnThatFails(db: Db, t: StepTarget, text: string, params: unknown[]): Promise<string> {
  if (t.keyColumns.length === 1) return t.key;
  for (const c of t.keyColumns) if (await tryPlan(db, explainWriteSql(t.table, { ...t, key: c, keyColumns: [c] }, text, null), params)) return c;
  return t.key;
}

/** Output columns against the key and the written columns; each written column's type against its column. */
async function outputProblems(db: Db, step: BatchedStep, f: { field: string; text: string }, t: StepTarget, params: unknown[]): Promise<SqlProblem[]> {
  const names = (await db.query<{ name: string }>(projectionColumnsSql(f.text, t.keyType), params)).rows.map((r) => r.name);
  const targets = await targetList(f.text);
  const at = (i: number) => (targets && targets[i] !== undefined ? { at: pointAt(f.text, targets[i]!) } : {});
  const wanted = [...t.keyColumns, ...step.writes.filter((w) => !t.keyColumns.includes(w))];
  const out: SqlProblem[] = [];
  const extra = names.map((n, i) => ({ n, i })).filter((x) => !wanted.includes(x.n));
  for (const w of wanted) {
    const found = names.map((n, i) => ({ n, i })).filter((x) => x.n === w);
    if (found.length > 1) {
      out.push({ step: step.name, field: f.field, message: `returns column "${w}" ${found.length} times`, ...at(found[1]!.i), fix: `Return "${w}" once.` });
    }
    if (found.length > 0) continue;
    const near = extra.find((x) => similar(x.n, w));
    const isKey = t.keyColumns.includes(w);
    out.push({
      step: step.name,
      field: f.field,
      message:
        `returns no column named "${w}"${isKey ? `, the key of step "${step.name}"` : `, which the step writes (writes: ${step.writes.map((c) => `"${c}"`).join(', ')})`}` +
        `${near ? `; it returns "${near.n}"` : ''} (its columns: ${names.map((n) => `"${n}"`).join(', ') || 'none'})`,
      ...(near ? at(near.i) : at(0)),
      fix: near
        ? `Name the column exactly as the table does: … AS "${w}" (a name without double quotes is folded to lower case).`
        : `Add "${w}" to the SELECT list (${isKey ? 'every row needs its key' : `… AS "${w}"`}), or ${isKey ? `name the key with key: in step "${step.name}"` : 'remove it from writes'}.`,
    });
  }
  if (out.length) return out;
  // the key must compare with the table's key, each written value must be assignable to its column
  for (const c of [null, ...step.writes.filter((w) => !t.keyColumns.includes(w))]) {
    const err = await tryPlan(db, explainWriteSql(t.table, t, f.text, c), params);
    if (!err) continue;
    // a composite key: the first of its columns that does not compare on its own
    const col = c ?? (await keyColumnThatFails(db, t, f.text, params));
    const type = (await db.query<{ type: string }>(projectionTypeSql(f.text, t.keyType, col), params)).rows[0]?.type ?? 'unknown';
    const column = await columnType(db, t.table, col);
    const known = ['42804', '42883', '428C9', '0A000', '42P10'].includes(err.server.sqlstate ?? '');
    out.push({
      step: step.name,
      field: f.field,
      sqlstate: err.server.sqlstate,
      message:
        c === null
          ? `returns its key "${col}" as ${type}, which does not compare with ${t.table}."${col}" (${column})${known ? `: ${firstLine(err.message)}` : ''}`
          : `returns "${col}" as ${type}, which cannot be written into ${t.table}."${col}" (${column})${known ? `: ${firstLine(err.message)}` : ` (SQLSTATE ${err.server.sqlstate})`}`,
      ...at(names.indexOf(col)),
      fix:
        err.server.sqlstate === '428C9'
          ? `"${col}" is a generated column: the table computes it; remove it from writes and from the projection.`
          : `Cast it in the projection (… ::${column} AS "${col}") or compute it in the column's type.`,
    });
  }
  return out;
}

async function columnType(db: Db, table: string, column: string): Promise<string> {
  const r = await db.query<{ type: string }>(
    'SELECT format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attname = $2 AND NOT a.attisdropped',
    [table, column],
  );
  return r.rows[0]?.type ?? 'unknown';
}

/** Character offsets of the top-level SELECT's targets (undefined when a * hides which column is which). */
async function targetList(text: string): Promise<number[] | undefined> {
  type Node = Record<string, unknown>;
  let stmt: Node;
  try {
    stmt = ((await parse(text)) as { stmts: Array<{ stmt: { SelectStmt: Node } }> }).stmts[0]!.stmt.SelectStmt;
  } catch {
    return undefined;
  }
  while (stmt.larg) stmt = stmt.larg as Node;
  const targets = ((stmt.targetList as Node[] | undefined) ?? []).map((x) => x.ResTarget as Node);
  if (targets.some((x) => JSON.stringify(x.val ?? {}).includes('A_Star'))) return undefined;
  const bytes = Buffer.from(text, 'utf8');
  // libpg-query counts bytes, pointAt characters
  return targets.map((x) => bytes.subarray(0, Number(x.location ?? 0)).toString('utf8').length);
}

function similar(a: string, b: string): boolean {
  if (a.toLowerCase() === b.toLowerCase()) return true;
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (Math.abs(x.length - y.length) > 2) return false;
  const d = Array.from({ length: x.length + 1 }, (_, i) => [i, ...Array<number>(y.length).fill(0)]);
  for (let j = 1; j <= y.length; j++) d[0]![j] = j;
  for (let i = 1; i <= x.length; i++) {
    for (let j = 1; j <= y.length; j++) d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
  }
  return d[x.length]![y.length]! <= 2;
}

function firstLine(s: string): string {
  return s.split('\n')[0]!;
}
