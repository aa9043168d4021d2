// Columns and tables a plain-SQL step creates for a later batched step (the NOT NULL recipe: ADD COLUMN,
// backfill in batches, SET NOT NULL). The checks cannot see what does not exist yet, so when a name the
// batched steps or the checks use is missing, the plain-SQL steps before the last step that needs it run
// inside the checks' own transaction first, which is then made read-only and always rolled back.
import { tableInfo } from '../db/catalog.ts';
import { readIndexes } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { BelayError, DbError } from '../errors.ts';
import type { Migration, SqlStep } from '../spec/define.ts';
import { pointAt } from '../spec/sql-parse.ts';
import { CHECK_ERROR_CODES } from './registry.ts';

export interface PriorStep {
  stepNo: number;
  step: SqlStep;
}

/** What a name refers to and the step before which it must exist. */
interface Needed {
  before: number;
  exists: () => Promise<boolean>;
}

/** The plain-SQL steps to run before the checks (in order), or none when every name exists now. */
export async function priorSqlSteps(db: Db, spec: Migration): Promise<PriorStep[]> {
  const batched = spec.steps.map((s, i) => ({ s, i })).filter((x) => x.s.kind === 'batched');
  if (batched.length === 0 || !spec.steps.some((s, i) => s.kind === 'sql' && i < batched[batched.length - 1]!.i)) return [];
  const last = batched[batched.length - 1]!.i;
  const stepNo = (name: string | undefined) => (name === undefined ? last : spec.steps.findIndex((s) => s.name === name));
  const needed: Needed[] = [];
  for (const { s, i } of batched) {
    if (s.kind !== 'batched') continue;
    needed.push({ before: i, exists: () => hasColumns(db, s.table, [...(s.key ? [s.key] : []), ...s.writes]) });
  }
  for (const c of spec.checks) {
    if (c.kind === 'not-null') needed.push({ before: stepNo(c.step), exists: () => hasColumns(db, c.table, [c.column]) });
    if (c.kind === 'orphans') {
      needed.push({
        before: last,
        exists: async () => (await hasColumns(db, c.table, [c.column])) && hasColumns(db, c.references.table, [c.references.column]),
      });
    }
    if (c.kind === 'unique-after') {
      const step = spec.steps.find((s) => s.name === c.step);
      if (step?.kind === 'batched') needed.push({ before: stepNo(c.step), exists: () => hasIndex(db, step.table, c.index) });
    }
  }
  let until = -1;
  for (const n of needed) if (n.before > until && !(await n.exists())) until = n.before;
  return spec.steps.flatMap((s, i) => (s.kind === 'sql' && i < until ? [{ stepNo: i, step: s }] : []));
}

async function hasColumns(db: Db, table: string, columns: readonly string[]): Promise<boolean> {
  const r = await db.query<{ oid: number | null }>('SELECT to_regclass($1)::oid::int AS oid', [qualified(table)]);
  if (!r.rows[0]?.oid) return false;
  const info = await tableInfo(db, table);
  return columns.every((c) => info.columns.some((x) => x.name === c));
}

async function hasIndex(db: Db, table: string, index: string): Promise<boolean> {
  if (!(await hasColumns(db, table, []))) return false;
  return (await readIndexes(db, (await tableInfo(db, table)).oid)).some((x) => x.name === index);
}

/**
 * Runs the steps in the open transaction (their locks are held until it ends: lock_timeout bounds the
 * wait for them). A step that fails is reported as a mistake in the migration (BELAY_CHECK_SQL, exit 3).
 */
export async function runPriorSteps(db: Db, spec: Migration, steps: readonly PriorStep[]): Promise<void> {
  if (steps.length === 0) return;
  await db.query(`SELECT set_config('lock_timeout', $1, true)`, [`${spec.options.lockTimeoutMs}ms`]);
  for (const { stepNo, step } of steps) {
    try {
      await db.exec(step.up);
    } catch (err) {
      if (!(err instanceof DbError)) throw err;
      const s = err.server;
      const field = `steps.${stepNo}.up (${step.name})`;
      const where = s.position === undefined ? '' : `\n${pointAt(step.up, s.position - 1)}`;
      const blocked = s.sqlstate === '25001';
      throw new BelayError(
        CHECK_ERROR_CODES.sqlFailed,
        `belay check runs plain-SQL step "${step.name}" (rolled back) to see what it creates for the steps after it, and it failed: ${err.message} in ${field}${where}`,
        {
          details: { step: step.name, field, ...s },
          fix: blocked
            ? `Step "${step.name}" cannot run inside a transaction (CONCURRENTLY): run it by hand before belay check, or split what the later steps need into a step of its own.`
            : s.sqlstate === '55P03'
              ? `Another session holds a lock step "${step.name}" needs: run belay check again when it is released. Nothing was changed.`
              : `Correct step "${step.name}" and run belay check again. Nothing was changed.`,
          cause: err,
        },
      );
    }
  }
}
