// What a predictor sees: the statement (or one ALTER TABLE sub-command of it), the model of the database
// before it, a way to run a read-only probe without aborting the snapshot, and a finding builder.
import type { Db, Row } from '../db/connection.ts';
import { DbError, serverFields } from '../errors.ts';
import { ident } from '../db/sql.ts';
import type { Fragments } from './fragments.ts';
import type { Model, TableState } from './model.ts';
import { countWhereSql, RELEASE_SQL, ROLLBACK_TO_SQL, sampleWhereSql, SAVEPOINT_SQL } from './prisma-sql.ts';
import { FINDINGS, type FindingCode } from './predictors/registry.ts';
import type { Finding, Statement } from './types.ts';

/** One unit of prediction: a statement, or one sub-command of an ALTER TABLE. */
export interface Action {
  stmt: Statement;
  /** Node type: the statement's kind, or the ALTER TABLE sub-command's subtype (AT_AddColumn, …). */
  kind: string;
  node: Record<string, unknown>;
  /** The table it works on, resolved in the model before it runs (undefined when it names none). */
  table?: TableState;
  /** The name the statement gives its table in expressions (its alias, else its name). */
  alias?: string;
}

export interface PredictContext {
  db: Db;
  model: Model;
  migration: string;
  frag: Fragments;
  /** Rows to keep per finding. */
  sample: number;
  /** pg_input_is_valid exists (PostgreSQL 16 and later, PGlite). */
  inputIsValid: boolean;
  probe<R = Row>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Counts the modelled rows satisfying `where`, and samples them (the `show` expressions) when there are some. */
  offending(rows: string, alias: string, show: readonly string[], where: string): Promise<{ count: number; sample: Row[] }>;
  finding(code: FindingCode, fields: Partial<Finding> & { message: string }): Finding;
}

/** `timed` hears how long each probe that succeeded took (the lock estimates calibrate on them). */
export function makeContext(
  db: Db,
  model: Model,
  migration: string,
  frag: Fragments,
  sample: number,
  inputIsValid: boolean,
  timed: (ms: number) => void = () => undefined,
): PredictContext {
  const stmt = frag.stmt;
  const ctx: PredictContext = {
    db,
    model,
    migration,
    frag,
    sample,
    inputIsValid,
    async offending(rows, alias, show, where) {
      const n = Number((await ctx.probe<{ n: number }>(countWhereSql(rows, alias, where)))[0]!.n);
      return { count: n, sample: n > 0 ? await ctx.probe(sampleWhereSql(rows, alias, show, where), [sample]) : [] };
    },
    async probe<R>(sql: string, params: readonly unknown[] = []): Promise<R[]> {
      await db.query(SAVEPOINT_SQL);
      try {
        const t0 = performance.now();
        const r = await db.query<R>(sql, params);
        timed(performance.now() - t0);
        await db.query(RELEASE_SQL);
        return r.rows;
      } catch (err) {
        await db.query(ROLLBACK_TO_SQL);
        throw err;
      }
    },
    finding(code, fields) {
      return statementFinding(code, migration, stmt, fields);
    },
  };
  return ctx;
}

export function statementFinding(code: FindingCode, migration: string | null, stmt: Statement | null, fields: Partial<Finding> & { message: string }): Finding {
  const kind = FINDINGS[code];
  return {
    code,
    severity: kind.severity,
    migration,
    statement: stmt?.index ?? null,
    line: stmt?.line ?? null,
    column: stmt?.column ?? null,
    sql: stmt ? firstLine(stmt.text) : null,
    count: null,
    sample: [],
    fix: kind.fix,
    ...('sqlstate' in kind ? { sqlstate: kind.sqlstate } : {}),
    ...fields,
  };
}

function firstLine(sql: string): string {
  const l = sql.split('\n')[0]!;
  return l.length > 160 ? `${l.slice(0, 157)}…` : l;
}

/** A data exception or integrity violation: the rows make the statement fail (not the SQL itself). */
export function isDataError(err: unknown): boolean {
  const s = err instanceof DbError ? err.server.sqlstate : serverFields(err).sqlstate;
  return !!s && /^(22|23)/.test(s);
}

/** Columns that identify a sample row: the primary key, else the first three columns. */
export function identity(t: TableState, alias: string): string[] {
  const names = t.columns.map((c) => c.name);
  const pk = t.primaryKey.filter((c) => names.includes(c));
  return (pk.length ? pk : names.slice(0, 3)).map((c) => `${ident(alias)}.${ident(c)}`);
}

/** Splits rows of duplicatesSql into the total and the sample (without the helper columns). */
export function counted(rows: Row[]): { count: number; sample: Row[]; groups?: number } {
  const count = rows.length ? Number(rows[0]!.__n) : 0;
  const groups = rows.length && rows[0]!.__groups !== undefined ? Number(rows[0]!.__groups) : undefined;
  const sample = rows.map((r) => {
    const { __n: _n, __groups: _g, ...rest } = r;
    return rest;
  });
  return { count, sample, groups };
}
