// A step's names resolved against the catalog: the quoted table, its key and the key's type, the
// columns it writes. Every stage that touches a step's rows starts from this.
import { column, tableInfo, type TableInfo } from '../db/catalog.ts';
import { readIndexes } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import { BelayError } from '../errors.ts';
import { type KeyShape, keyLabel } from '../db/key-sql.ts';
import type { BatchedStep, Migration } from './define.ts';

export interface StepTarget extends KeyShape {
  /** Quoted, qualified table name. */
  table: string;
  /** The table name as given in the spec (recorded in the undo log). */
  tableName: string;
  writes: readonly string[];
}

/**
 * Resolves a batched step: its key is the spec's `key`, else the table's primary key, composite included
 * (batched by row-value keyset). A key must tell rows apart: a declared `key:` needs a unique index over
 * exactly that column, and NOT NULL; a table with neither a primary key nor such a column is refused
 * (BELAY_KEY, exit 3), with the columns that would do.
 */
export async function resolveStep(db: Db, step: BatchedStep, stepNo: number): Promise<StepTarget> {
  const info = await tableInfo(db, step.table);
  let key = step.key;
  if (!key) {
    if (info.primaryKey.length === 0) {
      const candidates = await singleColumnKeys(db, info);
      throw keyError(
        step,
        stepNo,
        `table ${info.sqlName} has no primary key`,
        candidates.length
          ? `Name one of its unique NOT NULL columns with key: in step "${step.name}" (${candidates.map((c) => `"${c}"`).join(', ')}), or add a primary key.`
          : `Add a primary key to ${info.sqlName} (or a unique index over a NOT NULL column and name it with key: in step "${step.name}"): without one, batches cannot tell its rows apart.`,
      );
    }
    if (info.primaryKey.length > 1) return compositeTarget(db, info, step, stepNo);
    key = info.primaryKey[0]!;
  }
  const keyCol = column(info, key, `steps.${stepNo}.key`);
  if (step.key && !(info.primaryKey.length === 1 && info.primaryKey[0] === key)) {
    const candidates = await singleColumnKeys(db, info);
    if (!candidates.includes(key)) {
      const why = keyCol.notNull ? 'no unique index covers exactly this column' : 'it is not NOT NULL';
      throw keyError(
        step,
        stepNo,
        `key "${key}" of step "${step.name}" does not tell the rows of ${info.sqlName} apart: ${why}`,
        `Name a column with a unique index of its own and NOT NULL (${candidates.length ? candidates.map((c) => `"${c}"`).join(', ') : 'the table has none'}), ` +
          `or create one (CREATE UNIQUE INDEX … ON ${info.sqlName} ("${key}"); ALTER TABLE … ALTER COLUMN "${key}" SET NOT NULL).`,
      );
    }
  }
  for (const w of step.writes) column(info, w, `steps.${stepNo}.writes`);
  return { table: info.sqlName, tableName: step.table, key, keyColumns: [key], keyType: keyCol.type, writes: step.writes };
}

/**
 * A composite primary key: its value before a decision exists is the text of the row (a, b), the form the
 * decision's key type prints too; after it, the decision's row type (decisionTarget). A rule per key range
 * ($1/$2) would need the range as a row; a set-based rule (decide) is asked for instead.
 */
async function compositeTarget(db: Db, info: TableInfo, step: BatchedStep, stepNo: number): Promise<StepTarget> {
  const cols = info.primaryKey;
  if (!step.decide && !step.wholeTableProjection) {
    const candidates = await singleColumnKeys(db, info);
    throw keyError(
      step,
      stepNo,
      `table ${info.sqlName} has a composite primary key (${cols.map((c) => `"${c}"`).join(', ')}), and step "${step.name}" has a projection per key range ($1/$2), which walks one key column`,
      `Write the rule as decide: (one SELECT over the whole table returning ${cols.map((c) => `"${c}"`).join(', ')} and the written columns): batches then walk the composite key${candidates.length ? `; or name one of its unique NOT NULL columns with key: in step "${step.name}" (${candidates.map((c) => `"${c}"`).join(', ')})` : ''}.`,
    );
  }
  for (const w of step.writes) {
    if (cols.includes(w))
      throw keyError(
        step,
        stepNo,
        `step "${step.name}" writes "${w}", a column of the primary key of ${info.sqlName}`,
        'Write the key in a plain SQL step: batches find their rows by it.',
      );
    column(info, w, `steps.${stepNo}.writes`);
  }
  return { table: info.sqlName, tableName: step.table, key: keyLabel(cols), keyColumns: [...cols], keyType: 'text', writes: step.writes };
}

/** Columns that are keys on their own: NOT NULL and covered by a valid, non-partial unique index over exactly them. */
async function singleColumnKeys(db: Db, info: TableInfo): Promise<string[]> {
  const notNull = new Set(info.columns.filter((c) => c.notNull).map((c) => c.name));
  const out = new Set<string>();
  for (const ix of await readIndexes(db, info.oid)) {
    const only = ix.terms.length === 1 ? ix.terms[0]!.column : null;
    if (ix.unique && ix.valid && ix.ready && ix.predicate === null && only !== null && notNull.has(only)) out.add(only);
  }
  return [...out].sort();
}

function keyError(step: BatchedStep, stepNo: number, message: string, fix: string): BelayError {
  return new BelayError('BELAY_KEY', message, {
    details: { step: step.name, table: step.table, field: `steps.${stepNo}.key` },
    fix: `${fix} Nothing was changed.`,
  });
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
    // a composite key has no single column to bucket the untouched columns' checksums by
    const key = step.key ?? (info.primaryKey.length === 1 ? info.primaryKey[0]! : '');
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
