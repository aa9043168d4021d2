// Schema documentation of the touched tables: a snapshot (columns, indexes, constraints), a diff of two
// snapshots, and an apply hook that stores the snapshot at the start and the end of a run.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { SNAPSHOT_COLUMNS_SQL, SNAPSHOT_CONSTRAINTS_SQL, SNAPSHOT_INDEXES_SQL, TABLE_OID_SQL } from './report-sql.ts';
import { type ColumnDoc, type ConstraintDoc, type IndexDoc, mergeSummary, type SchemaSnapshot, summaryHas, type TableSchema } from '../state/summary.ts';

export type { ColumnDoc, ConstraintDoc, IndexDoc, SchemaSnapshot, TableSchema };
import type { Stage } from '../contract.ts';

export async function snapshotTable(db: Db, table: string): Promise<TableSchema> {
  const r = await db.query<{ oid: number | null }>(TABLE_OID_SQL, [qualified(table)]);
  const oid = r.rows[0]?.oid;
  if (!oid) return { table, exists: false, columns: [], indexes: [], constraints: [] };
  const [c, i, k] = [
    await db.query<ColumnDoc>(SNAPSHOT_COLUMNS_SQL, [oid]),
    await db.query<IndexDoc>(SNAPSHOT_INDEXES_SQL, [oid]),
    await db.query<ConstraintDoc>(SNAPSHOT_CONSTRAINTS_SQL, [oid]),
  ];
  return { table, exists: true, columns: c.rows, indexes: i.rows, constraints: k.rows };
}

export async function snapshotSchema(db: Db, tables: readonly string[]): Promise<SchemaSnapshot> {
  const out: Record<string, TableSchema> = {};
  for (const t of tables) out[t] = await snapshotTable(db, t);
  return { takenAt: new Date().toISOString(), tables: out };
}

export type Change = 'added' | 'removed' | 'changed' | 'same';

/** One row of a diff: the item after (or before, when removed) and what changed. */
export interface DiffRow<T> {
  name: string;
  change: Change;
  before?: T;
  after?: T;
  /** For 'changed': which fields differ, e.g. "type: integer → bigint". */
  what: string[];
}
export interface TableDiff {
  table: string;
  /** 'added'/'removed' when the whole table appeared or disappeared. */
  change: Change;
  columns: DiffRow<ColumnDoc>[];
  indexes: DiffRow<IndexDoc>[];
  constraints: DiffRow<ConstraintDoc>[];
  /** Number of rows with change other than 'same'. */
  differences: number;
}

function diffList<T extends { name: string }>(before: readonly T[], after: readonly T[], fields: ReadonlyArray<keyof T>): DiffRow<T>[] {
  const rows: DiffRow<T>[] = [];
  const b = new Map(before.map((x) => [x.name, x]));
  const a = new Map(after.map((x) => [x.name, x]));
  for (const x of after) {
    const old = b.get(x.name);
    if (!old) {
      rows.push({ name: x.name, change: 'added', after: x, what: [] });
      continue;
    }
    const what = fields.filter((f) => old[f] !== x[f]).map((f) => `${String(f)}: ${show(old[f])} → ${show(x[f])}`);
    rows.push({ name: x.name, change: what.length ? 'changed' : 'same', before: old, after: x, what });
  }
  for (const x of before) if (!a.has(x.name)) rows.push({ name: x.name, change: 'removed', before: x, what: [] });
  return rows;
}

function show(v: unknown): string {
  return v === null || v === undefined ? 'none' : String(v);
}

/** Compares one table's shape before and after; a missing `before` counts every item as the same. */
export function diffTable(before: TableSchema | undefined, after: TableSchema): TableDiff {
  const base = before ?? after;
  const columns = diffList(base.columns, after.columns, ['type', 'notNull', 'default']);
  const indexes = diffList(base.indexes, after.indexes, ['definition']);
  const constraints = diffList(base.constraints, after.constraints, ['type', 'definition']);
  const change: Change = base.exists === after.exists ? 'same' : after.exists ? 'added' : 'removed';
  const differences = [...columns, ...indexes, ...constraints].filter((r) => r.change !== 'same').length + (change === 'same' ? 0 : 1);
  return { table: after.table, change, columns, indexes, constraints, differences };
}

/**
 * Stores a snapshot of the migration's tables in runs.summary.schemaBefore before the first write
 * (kept as first taken when a run resumes) and in summary.schemaAfter after the last step.
 */
export function schemaSnapshotStage(): Stage {
  return {
    name: 'schema-snapshot',
    async before(ctx) {
      if (await summaryHas(ctx.db, ctx.runId, 'schemaBefore')) return;
      await mergeSummary(ctx.db, ctx.runId, { schemaBefore: await snapshotSchema(ctx.db, ctx.migration.spec.tables) });
    },
    async after(ctx) {
      await mergeSummary(ctx.db, ctx.runId, { schemaAfter: await snapshotSchema(ctx.db, ctx.migration.spec.tables) });
    },
  };
}
