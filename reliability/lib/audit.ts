// What must hold after a trial, measured on the database: table checksums, the catalog, and belay's
// own records (batches, undo log, run status). Each audit returns a list of problems; empty = held.
import { checksumTable } from '../../src/db/checksum.ts';
import type { Db } from '../../src/db/connection.ts';
import { BACKUP_SCHEMA } from '../../src/backup/backup-sql.ts';
import { ident, literal, qualified } from '../../src/db/sql.ts';

export interface Fingerprint {
  /** Every user table (outside belay and the system schemas) -> row count and order-independent checksum. */
  tables: Record<string, string>;
  /** Every relation, schema, function and type outside the system schemas and belay. */
  catalog: string[];
  /** Whether schema belay exists. */
  belayState: boolean;
}

// belay's own schemas (state, in-database backups) are audited separately
const SYSTEM = `('pg_catalog', 'information_schema', 'pg_toast', 'belay', ${literal(BACKUP_SCHEMA)})`;

export async function fingerprint(db: Db): Promise<Fingerprint> {
  const t = await db.query<{ s: string; n: string }>(
    `SELECT n.nspname AS s, c.relname AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ${SYSTEM} AND n.nspname NOT LIKE 'pg_temp%' ORDER BY 1, 2`,
  );
  const tables: Record<string, string> = {};
  for (const { s, n } of t.rows) {
    const c = await checksumTable(db, qualified([s, n]));
    tables[`${s}.${n}`] = `${c.rows}:${c.checksum}`;
  }
  const cat = await db.query<{ x: string }>(
    `SELECT 'rel ' || n.nspname || '.' || c.relname || ' ' || c.relkind::text AS x FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname NOT IN ${SYSTEM} AND n.nspname NOT LIKE 'pg_%'
     UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname NOT IN ${SYSTEM} AND nspname NOT LIKE 'pg_%'
     UNION ALL SELECT 'proc ' || n.nspname || '.' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN ${SYSTEM}
     ORDER BY 1`,
  );
  const b = await db.query<{ ok: boolean }>(`SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'belay') AS ok`);
  return { tables, catalog: cat.rows.map((r) => r.x), belayState: !!b.rows[0]?.ok };
}

/** Differences between two fingerprints, as readable problems (belay's schema is compared separately). */
export function compareFingerprints(before: Fingerprint, after: Fingerprint, what = 'database'): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(before.tables), ...Object.keys(after.tables)])) {
    if (before.tables[k] !== after.tables[k]) out.push(`${what}: table ${k} changed (${before.tables[k] ?? 'absent'} -> ${after.tables[k] ?? 'absent'})`);
  }
  const a = new Set(after.catalog);
  const b = new Set(before.catalog);
  const added = [...a].filter((x) => !b.has(x));
  const removed = [...b].filter((x) => !a.has(x));
  if (added.length) out.push(`${what}: objects created outside schema belay: ${added.slice(0, 5).join(', ')}`);
  if (removed.length) out.push(`${what}: objects removed: ${removed.slice(0, 5).join(', ')}`);
  return out;
}

/** Only the user tables' checksums. */
export async function tableChecksums(db: Db): Promise<Record<string, string>> {
  return (await fingerprint(db)).tables;
}

export function compareTables(expected: Record<string, string>, actual: Record<string, string>, what: string): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
    if (expected[k] !== actual[k]) out.push(`${what}: table ${k} is ${actual[k] ?? 'absent'}, expected ${expected[k] ?? 'absent'}`);
  }
  return out;
}

/** Key -> JSON of the written columns, for the before-image check. */
export type RowImages = Map<string, string>;

export async function readImages(db: Db, table: string, key: string, columns: readonly string[]): Promise<RowImages> {
  const cols = columns.map((c) => `'${c.replace(/'/g, "''")}', t.${ident(c)}`).join(', ');
  const r = await db.query<{ k: string; v: string }>(`SELECT t.${ident(key)}::text AS k, jsonb_build_object(${cols})::text AS v FROM ${qualified(table)} t`);
  return new Map(r.rows.map((x) => [x.k, x.v]));
}

interface UndoRow {
  step_no: number;
  batch_no: number;
  table_name: string;
  key_column: string;
  columns: string[];
  row_count: number;
  before: Record<string, unknown>[];
  after: Record<string, unknown>[];
  rolled_back_at: string | null;
}

export interface RunAuditOptions {
  /** Images of the written columns before the run (from the template): every before-image must equal them. */
  base?: RowImages;
  /** The after-images must equal the table now (false while other writers may have changed rows since). */
  afterMatchesTable?: boolean;
  /** Expected total of changed rows (from an uninterrupted run). */
  changedRows?: number;
}

/**
 * No batch applied twice: batch numbers contiguous, key ranges strictly increasing and disjoint,
 * every key visited once (rows_in_range sums to rows_done), rows_changed agrees with the step and
 * with the undo log, and no key appears in two undo records.
 */
export async function auditBatches(db: Db, runId: number, opts: RunAuditOptions = {}): Promise<string[]> {
  const out: string[] = [];
  const steps = await db.query<{ step_no: number; kind: string; rows_done: number; rows_changed: number; status: string }>(
    `SELECT step_no, kind, rows_done::float8 AS rows_done, rows_changed::float8 AS rows_changed, status FROM belay.steps WHERE run_id = $1 ORDER BY step_no`, [runId]);
  const batches = await db.query<{ step_no: number; batch_no: number; lo: string; hi: string; rows_in_range: number; rows_changed: number }>(
    `SELECT step_no, batch_no, lo, hi, rows_in_range, rows_changed FROM belay.batches WHERE run_id = $1 ORDER BY step_no, batch_no`, [runId]);
  const undo = await db.query<UndoRow>(`SELECT step_no, batch_no, table_name, key_column, columns, row_count, before, after, rolled_back_at::text FROM belay.undo WHERE run_id = $1 ORDER BY step_no, batch_no`, [runId]);
  let changedAll = 0;
  for (const s of steps.rows.filter((x) => x.kind === 'batched')) {
    const bs = batches.rows.filter((b) => b.step_no === s.step_no);
    let inRange = 0;
    let changed = 0;
    bs.forEach((b, i) => {
      if (b.batch_no !== i + 1) out.push(`step ${s.step_no}: batch numbers not contiguous at ${b.batch_no} (expected ${i + 1})`);
      // keys are integers here; a text comparison would misorder them
      if (Number(b.lo) > Number(b.hi)) out.push(`step ${s.step_no} batch ${b.batch_no}: lo ${b.lo} > hi ${b.hi}`);
      if (i > 0 && Number(b.lo) <= Number(bs[i - 1]!.hi)) out.push(`step ${s.step_no}: batch ${b.batch_no} [${b.lo}, ${b.hi}] overlaps batch ${bs[i - 1]!.batch_no} [${bs[i - 1]!.lo}, ${bs[i - 1]!.hi}]`);
      inRange += b.rows_in_range;
      changed += b.rows_changed;
      const u = undo.rows.find((x) => x.step_no === b.step_no && x.batch_no === b.batch_no);
      if (!u) out.push(`step ${s.step_no} batch ${b.batch_no}: no undo record`);
      else if (u.row_count !== b.rows_changed || u.after.length !== b.rows_changed) out.push(`step ${s.step_no} batch ${b.batch_no}: ${b.rows_changed} rows changed but the undo record holds ${u.row_count}/${u.after.length}`);
    });
    if (inRange !== s.rows_done) out.push(`step ${s.step_no}: batches visited ${inRange} rows, step says ${s.rows_done}`);
    if (changed !== s.rows_changed) out.push(`step ${s.step_no}: batches changed ${changed} rows, step says ${s.rows_changed}`);
    changedAll += changed;
  }
  const orphanUndo = undo.rows.filter((u) => !batches.rows.some((b) => b.step_no === u.step_no && b.batch_no === u.batch_no));
  if (orphanUndo.length) out.push(`${orphanUndo.length} undo record(s) without a committed batch`);
  if (opts.changedRows !== undefined && changedAll !== opts.changedRows) out.push(`run changed ${changedAll} rows, an uninterrupted run changed ${opts.changedRows}`);
  const seen = new Set<string>();
  for (const u of undo.rows) {
    for (const [i, after] of u.after.entries()) {
      const k = String(after[u.key_column]);
      if (seen.has(k)) out.push(`key ${k} of ${u.table_name} written by two batches`);
      seen.add(k);
      const before = u.before[i];
      if (!before || String(before[u.key_column]) !== k) out.push(`undo batch ${u.batch_no}: before- and after-images out of step at key ${k}`);
      if (opts.base && before) {
        const want = opts.base.get(k);
        const got = JSON.stringify(Object.fromEntries(u.columns.map((c) => [c, before[c] ?? null])));
        if (want !== undefined && normJson(want) !== normJson(got)) out.push(`undo batch ${u.batch_no}: before-image of key ${k} is ${got}, the row was ${want}`);
      }
    }
    if (opts.afterMatchesTable && u.after.length > 0) {
      const now = await readImages(db, u.table_name, u.key_column, u.columns);
      for (const after of u.after) {
        const k = String(after[u.key_column]);
        const got = JSON.stringify(Object.fromEntries(u.columns.map((c) => [c, after[c] ?? null])));
        if (normJson(now.get(k) ?? 'null') !== normJson(got)) out.push(`undo batch ${u.batch_no}: after-image of key ${k} is ${got}, the table holds ${now.get(k)}`);
      }
    }
  }
  return out.slice(0, 20);
}

function normJson(s: string): string {
  const v = JSON.parse(s) as unknown;
  if (v && typeof v === 'object') return JSON.stringify(Object.fromEntries(Object.entries(v).sort(([a], [b]) => a.localeCompare(b))));
  return JSON.stringify(v);
}

export interface RunState {
  runs: Array<{ id: number; status: string }>;
  events: string[];
}

export async function runState(db: Db, migrationId: string): Promise<RunState> {
  const exists = await db.query<{ ok: boolean }>(`SELECT to_regclass('belay.runs') IS NOT NULL AS ok`);
  if (!exists.rows[0]?.ok) return { runs: [], events: [] };
  const runs = await db.query<{ id: number; status: string }>(`SELECT id::int AS id, status FROM belay.runs WHERE migration_id = $1 ORDER BY id`, [migrationId]);
  const ev = await db.query<{ type: string }>(`SELECT type FROM belay.events WHERE run_id IN (SELECT id FROM belay.runs WHERE migration_id = $1) ORDER BY id`, [migrationId]);
  return { runs: runs.rows, events: ev.rows.map((e) => e.type) };
}
