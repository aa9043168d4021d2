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
    `SELECT step_no, kind, rows_done::float8 AS rows_done, rows_changed::float8 AS rows_changed, status FROM belay.steps WHERE run_id = $1 ORDER BY step_no`,
    [runId],
  );
  const batches = await db.query<{ step_no: number; batch_no: number; lo: string; hi: string; round: number; rows_in_range: number; rows_changed: number }>(
    `SELECT step_no, batch_no, lo, hi, round, rows_in_range, rows_changed FROM belay.batches WHERE run_id = $1 ORDER BY step_no, batch_no`,
    [runId],
  );
  let changedAll = 0;
  const seen = new Set<string>();
  for (const s of steps.rows.filter((x) => x.kind === 'batched')) {
    const bs = batches.rows.filter((b) => b.step_no === s.step_no);
    const dec = (
      await db.query<{ relation: string; key_type: string; key_column: string; table_name: string; columns: string[] }>(
        `SELECT relation, key_type, key_column, table_name, columns FROM belay.decisions WHERE run_id = $1 AND step_no = $2`,
        [runId, s.step_no],
      )
    ).rows[0];
    if (!dec) {
      if (bs.length > 0) out.push(`step ${s.step_no}: ${bs.length} batches but no decision`);
      continue;
    }
    // the rows each batch wrote, as the decision records them: its range of decided rows that were not skipped
    const rows = (
      await db.query<{ batch_no: number; k: string; d: Record<string, unknown> }>(
        `SELECT b.batch_no, d.k::text AS k, to_jsonb(d) AS d FROM belay.batches b JOIN ${dec.relation} d
          ON d.round = b.round AND d.skipped IS NULL AND d.k BETWEEN b.lo::${dec.key_type} AND b.hi::${dec.key_type}
        WHERE b.run_id = $1 AND b.step_no = $2 ORDER BY b.batch_no, d.k`,
        [runId, s.step_no],
      )
    ).rows;
    let inRange = 0;
    let changed = 0;
    bs.forEach((b, i) => {
      if (b.batch_no !== i + 1) out.push(`step ${s.step_no}: batch numbers not contiguous at ${b.batch_no} (expected ${i + 1})`);
      // keys are integers here; a text comparison would misorder them
      if (Number(b.lo) > Number(b.hi)) out.push(`step ${s.step_no} batch ${b.batch_no}: lo ${b.lo} > hi ${b.hi}`);
      const prev = bs[i - 1];
      if (prev && prev.round === b.round && Number(b.lo) <= Number(prev.hi))
        out.push(`step ${s.step_no}: batch ${b.batch_no} [${b.lo}, ${b.hi}] overlaps batch ${prev.batch_no} [${prev.lo}, ${prev.hi}]`);
      inRange += b.rows_in_range;
      changed += b.rows_changed;
      const written = rows.filter((r) => r.batch_no === b.batch_no).length;
      if (written !== b.rows_changed)
        out.push(`step ${s.step_no} batch ${b.batch_no}: ${b.rows_changed} rows changed but the decision holds ${written} written rows`);
    });
    if (inRange !== s.rows_done) out.push(`step ${s.step_no}: batches visited ${inRange} rows, step says ${s.rows_done}`);
    if (changed !== s.rows_changed) out.push(`step ${s.step_no}: batches changed ${changed} rows, step says ${s.rows_changed}`);
    changedAll += changed;
    const now = opts.afterMatchesTable ? await readImages(db, dec.table_name, dec.key_column, dec.columns) : undefined;
    for (const r of rows) {
      if (seen.has(`${dec.table_name}:${r.k}`)) out.push(`key ${r.k} of ${dec.table_name} written by two batches`);
      seen.add(`${dec.table_name}:${r.k}`);
      const image = (p: 'o' | 'n') => JSON.stringify(Object.fromEntries(dec.columns.map((c, i) => [c, r.d[`${p}${i}`] ?? null])));
      const want = opts.base?.get(r.k);
      if (want !== undefined && normJson(want) !== normJson(image('o')))
        out.push(`batch ${r.batch_no}: before-image of key ${r.k} is ${image('o')}, the row was ${want}`);
      if (now && normJson(now.get(r.k) ?? 'null') !== normJson(image('n')))
        out.push(`batch ${r.batch_no}: written value of key ${r.k} is ${image('n')}, the table holds ${now.get(r.k)}`);
    }
  }
  if (opts.changedRows !== undefined && changedAll !== opts.changedRows)
    out.push(`run changed ${changedAll} rows, an uninterrupted run changed ${opts.changedRows}`);
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
  const runs = await db.query<{ id: number; status: string }>(`SELECT id::int AS id, status FROM belay.runs WHERE migration_id = $1 ORDER BY id`, [
    migrationId,
  ]);
  const ev = await db.query<{ type: string }>(`SELECT type FROM belay.events WHERE run_id IN (SELECT id FROM belay.runs WHERE migration_id = $1) ORDER BY id`, [
    migrationId,
  ]);
  return { runs: runs.rows, events: ev.rows.map((e) => e.type) };
}
