// A step's names resolved against the catalog: the quoted table, its key and the key's type, the
// columns it writes. Every stage that touches a step's rows starts from this.
import { column, tableInfo } from '../db/catalog.ts';
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import type { BatchedStep, Migration } from './define.ts';

export interface StepTarget {
  /** Quoted, qualified table name. */
  table: string;
  /** The table name as given in the spec (recorded in the undo log). */
  tableName: string;
  key: string;
  keyType: string;
  writes: readonly string[];
}

/** Resolves a batched step: its key is the spec's `key`, else the table's single-column primary key. */
export async function resolveStep(db: Db, step: BatchedStep, stepNo: number): Promise<StepTarget> {
  const info = await tableInfo(db, step.table);
  let key = step.key;
  if (!key) {
    if (info.primaryKey.length !== 1) {
      throw new StateError('BELAY_NO_KEY', `table ${info.sqlName} has ${info.primaryKey.length === 0 ? 'no primary key' : 'a composite primary key'}`, {
        fix: `Name a unique, non-null key column with key: in step "${step.name}".`,
      });
    }
    key = info.primaryKey[0]!;
  }
  const keyCol = column(info, key, `steps.${stepNo}.key`);
  for (const w of step.writes) column(info, w, `steps.${stepNo}.writes`);
  return { table: info.sqlName, tableName: step.table, key, keyType: keyCol.type, writes: step.writes };
}

export interface WrittenTable {
  table: string;
  tableName: string;
  key: string;
  writes: string[];
}

/** The tables batched steps write, with their key and written columns (several steps on one table merge). */
export async function writtenTables(db: Db, spec: Migration): Promise<WrittenTable[]> {
  const out = new Map<string, WrittenTable>();
  for (const step of spec.steps) {
    if (step.kind !== 'batched') continue;
    const info = await tableInfo(db, step.table);
    const key = step.key ?? info.primaryKey[0] ?? '';
    const w = out.get(step.table) ?? { table: info.sqlName, tableName: step.table, key, writes: [] };
    for (const c of step.writes) if (!w.writes.includes(c)) w.writes.push(c);
    out.set(step.table, w);
  }
  return [...out.values()];
}

/** Row counts of every table the migration touches. */
export async function tableCounts(db: Db, spec: Migration): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const t of spec.tables) {
    const info = await tableInfo(db, t);
    const r = await db.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${info.sqlName}`);
    out[t] = Number(r.rows[0]!.n);
  }
  return out;
}

/** A batched step's rule: set-based over the whole table, or per key range ($1/$2). */
export interface StepRule {
  kind: 'whole-table' | 'range';
  sql: string;
  /** The spec field it comes from, for messages: steps.0.decide (assign-owner). */
  field: string;
}

export function ruleOf(step: BatchedStep, stepNo: number): StepRule {
  const whole = step.decide ?? step.wholeTableProjection;
  if (whole) return { kind: 'whole-table', sql: whole, field: `steps.${stepNo}.${step.decide ? 'decide' : 'wholeTableProjection'} (${step.name})` };
  return { kind: 'range', sql: step.projection!, field: `steps.${stepNo}.projection (${step.name})` };
}
