// Every name a spec gives, resolved against the catalog before a run record exists: a missing table or
// column is a spec error (exit 3) that leaves no run behind, so the corrected spec starts afresh instead
// of being refused as a changed version of a run that never wrote anything.
import { column, type TableInfo, tableInfo } from '../db/catalog.ts';
import type { Db } from '../db/connection.ts';
import { ident } from '../db/sql.ts';
import { serverFields, SpecError } from '../errors.ts';
import type { Migration } from './define.ts';
import { resolveStep, ruleOf } from './resolve.ts';
import { pointAt } from './sql-parse.ts';

/** undefined_table, undefined_column: the only failures of a planned-only statement that are surely the spec's. */
const MISSING_NAME = new Set(['42P01', '42703']);

/** The scratch `written` that in-batch checks, monitor checks and abort triggers may read: the table's row type, empty. */
const writtenSql = (table: string) => `CREATE TEMP TABLE written ON COMMIT DROP AS SELECT * FROM ${table} LIMIT 0`;

interface Planned {
  field: string;
  sql: string;
  /** The table whose rows `written` holds, for SQL that may read it. */
  written?: string;
}

/**
 * Resolves tables, keys, written columns, check columns and indexes, then plans (EXPLAIN, never runs)
 * each SQL text in a transaction that is rolled back. Steps after a plain SQL step, and what runs after
 * the steps, are left to the run: a plain step may create what they name.
 */
export async function resolveNames(db: Db, spec: Migration, file = '<inline>'): Promise<void> {
  const where = (field: string, err: unknown): never => {
    if (err instanceof SpecError)
      throw new SpecError(`${file}: ${field}: ${err.message}`, { file, field, expected: String(err.details.expected ?? ''), fix: err.fix, cause: err });
    throw err;
  };
  const col = (info: TableInfo, name: string, field: string) => {
    try {
      column(info, name, field);
    } catch (e) {
      where(field, e);
    }
  };
  for (const [i, t] of spec.tables.entries()) await tableInfo(db, t).catch((e: unknown) => where(`tables.${i}`, e));
  for (const [i, x] of spec.tempIndexes.entries()) await tableInfo(db, x.table).catch((e: unknown) => where(`tempIndexes.${i}.table`, e));
  for (const [i, c] of spec.checks.entries()) {
    if (c.kind === 'orphans') {
      const from = await tableInfo(db, c.table).catch((e: unknown) => where(`checks.${i}.table`, e));
      col(from, c.column, `checks.${i}.column`);
      const to = await tableInfo(db, c.references.table).catch((e: unknown) => where(`checks.${i}.references.table`, e));
      col(to, c.references.column, `checks.${i}.references.column`);
    } else if (c.kind === 'not-null' && !c.step) {
      // (a not-null check after a step may name a column that a plain step adds)
      const t = await tableInfo(db, c.table).catch((e: unknown) => where(`checks.${i}.table`, e));
      col(t, c.column, `checks.${i}.column`);
    } else if (c.kind === 'unique-after') {
      const r = await db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [ident(c.index)]);
      if (!r.rows[0]?.ok) {
        throw new SpecError(`${file}: checks.${i}.index: index "${c.index}" does not exist`, {
          file,
          field: `checks.${i}.index`,
          expected: "an existing unique index on the step's table",
          fix: 'Check the index name and its case (\\d+ <table> in psql lists them).',
        });
      }
    }
  }
  const planned: Planned[] = [];
  for (const [i, c] of spec.checks.entries()) if (c.kind === 'sql' || c.kind === 'classify') planned.push({ field: `checks.${i}.sql (${c.code})`, sql: c.sql });
  const firstSql = spec.steps.findIndex((s) => s.kind === 'sql');
  const settled = firstSql < 0 ? spec.steps.length : firstSql;
  for (const [i, s] of spec.steps.slice(0, settled).entries()) {
    if (s.kind !== 'batched') continue;
    const t = await resolveStep(db, s, i).catch((e: unknown) => where(`steps.${i} (${s.name})`, e));
    const rule = ruleOf(s, i);
    planned.push({ field: rule.field, sql: rule.sql });
    if (s.verify) planned.push({ field: `steps.${i}.verify (${s.name})`, sql: s.verify, written: t.table });
  }
  if (firstSql < 0) {
    const batched = spec.steps.filter((s) => s.kind === 'batched');
    const only = new Set(batched.map((s) => s.table)).size === 1 ? (await tableInfo(db, batched[0]!.table)).sqlName : undefined;
    for (const [i, v] of spec.verify.entries()) planned.push({ field: `verify.${i}.sql (${v.name})`, sql: v.sql });
    // monitor checks and abort triggers may read `written` only when one table is written
    for (const [i, m] of spec.monitor.entries()) planned.push({ field: `monitor.${i}.sql (${m.name})`, sql: m.sql, written: only });
    for (const [i, a] of spec.abort.entries()) if (a.sql) planned.push({ field: `abort.${i}.sql (${a.when})`, sql: a.sql, written: only });
  }
  await planEach(db, planned, file);
}

/** EXPLAIN of each text inside one rolled-back transaction (the scratch `written` goes with it). */
async function planEach(db: Db, planned: readonly Planned[], file: string): Promise<void> {
  if (planned.length === 0) return;
  await db.query('BEGIN');
  try {
    for (const p of planned) {
      await db.query('SAVEPOINT belay_resolve');
      try {
        if (p.written) await db.query(writtenSql(p.written));
        // parameters ($1, $2 …) planned as NULL: only their names have to resolve, not their values
        const n = Math.max(0, ...[...p.sql.matchAll(/\$(\d+)/g)].map((m) => Number(m[1])));
        await db.query(
          `EXPLAIN ${p.sql}`,
          Array.from({ length: n }, () => null),
        );
      } catch (err) {
        const s = serverFields(err);
        if (s.sqlstate && MISSING_NAME.has(s.sqlstate)) {
          const at = s.position === undefined ? '' : `\n${pointAt(p.sql, s.position - 1 - 'EXPLAIN '.length)}`;
          throw new SpecError(`${file}: ${p.field} names what the database does not have: ${(err as Error).message}${at}`, {
            file,
            field: p.field,
            expected: 'tables and columns that exist',
            cause: err,
            fix: 'Check the name and its case (an unquoted name is folded to lower case; "EventType" needs its quotes).',
          });
        }
        // anything else (a parameter's type, a function's argument) is the run's to report, with its context
      } finally {
        await db.query('ROLLBACK TO SAVEPOINT belay_resolve');
      }
    }
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}
