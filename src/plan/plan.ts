// belay plan: measure before running. Table sizes, the statement plan of a sample batch, calibration
// batches (rolled back), the batch size for a target duration and the expected time as a range. The
// result is plain data: printed, saved as a versioned JSON file, checked again before `apply plan.json`.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { tableInfo } from '../db/catalog.ts';
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { BelayError, StateError } from '../errors.ts';
import { planFileSchema } from './plan-schema.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { ensureState } from '../state/schema.ts';
import { calibrate, type CalibrationSample, type Trial, chooseBatchSize, PROBE_SIZE, estimateStepMs, type Rates, ratesOf, widen } from './calibrate.ts';
import { CONSTRAINT_DEFS_SQL, exactCountSql, INDEX_DEFS_SQL, TABLE_SIZE_SQL } from './plan-sql.ts';
import { findSeqScans, type SeqScanFinding } from './explain.ts';
import { type StepFacts, stepFacts } from '../spec/step-facts.ts';
import { DEFAULT_TARGET_BATCH_MS, INITIAL_HEADROOM, MAX_BATCH_SIZE } from '../spec/define.ts';

export const PLAN_VERSION = 1;
/** A sequential scan over a table with at least this many rows is reported. */
export const DEFAULT_LARGE_TABLE_ROWS = 10_000;

export interface TablePlan {
  name: string;
  /** sha256 of columns (name, type, not null, default), indexes and constraints, temp indexes excluded. */
  fingerprint: string;
  /** pg_class.reltuples; null when the table was never analysed. */
  rowsEstimate: number | null;
  /** count(*), with --exact or when there is no estimate. */
  rowsExact: number | null;
  /** The figure the plan uses and `apply` compares: exact when measured, else the estimate. */
  rows: number;
  rowsMethod: 'estimate' | 'exact';
  tableBytes: number;
  indexBytes: number;
}

export interface StepPlan {
  name: string;
  kind: 'batched' | 'sql';
  table?: string;
  rows: number;
  samples: CalibrationSample[];
  /** Rows/s: slowest, median and fastest calibration batch (null: not calibrated). */
  rates: Rates | null;
  estimateMs: { low: number; mid: number; high: number };
  seqScans: SeqScanFinding[];
  note?: string;
}

export interface Plan {
  /** The plan file format version; `apply` recognises a plan file by this field. */
  belayPlan: number;
  createdAt: string;
  migration: { id: string; checksum: string; file: string; params: Record<string, string> };
  database: { kind: 'postgres' | 'pglite'; label: string };
  targetBatchMs: number;
  mode: 'single' | 'batched';
  batchSize: number;
  tables: TablePlan[];
  steps: StepPlan[];
  /** The expected execution time of the whole apply. */
  estimate: { lowMs: number; midMs: number; highMs: number; source: 'calibration' | 'dry-run' };
  /** One COMMIT, measured (added per batch). */
  commitMs: number;
  /** The throttle checks apply runs before each batch, measured (added per batch; 0 on PGlite). */
  throttleMs: number;
  /** Temporary indexes proposed for sequential scans over large tables that no index serves (add them to spec.tempIndexes). */
  proposedIndexes: Array<{ name: string; table: string; columns: string }>;
  /**
   * What the catalog says about each batched step's writes: triggers it fires, foreign-key actions,
   * cascades without an index, composite keys (notes with stable codes, as belay check reports them),
   * and the tables it changes indirectly. Absent in plans made by a dry run.
   */
  catalog?: StepFacts[];
}

export interface PlanOptions {
  /** count(*) every table instead of trusting pg_class estimates. */
  exact?: boolean;
  targetBatchMs?: number;
  samples?: number;
  largeTableRows?: number;
}

export async function tablePlan(db: Db, name: string, exact: boolean, exclude: readonly string[] = []): Promise<TablePlan> {
  const info = await tableInfo(db, name);
  const size = (await db.query<{ estimate: number; tableBytes: number; indexBytes: number }>(TABLE_SIZE_SQL, [info.sqlName])).rows[0]!;
  const estimate = Number(size.estimate) >= 0 ? Number(size.estimate) : null;
  const rowsExact =
    exact || estimate === null || (estimate === 0 && db.kind === 'pglite')
      ? Number((await db.query<{ n: number }>(exactCountSql(info.sqlName))).rows[0]!.n)
      : null;
  return {
    name,
    fingerprint: await fingerprint(db, name, exclude),
    rowsEstimate: estimate,
    rowsExact,
    rows: rowsExact ?? estimate ?? 0,
    rowsMethod: rowsExact === null ? 'estimate' : 'exact',
    tableBytes: Number(size.tableBytes),
    indexBytes: Number(size.indexBytes),
  };
}

/** A table's definition as a hash: columns, indexes (except the migration's own temporary ones), constraints. */
export async function fingerprint(db: Db, name: string, excludeIndexes: readonly string[] = []): Promise<string> {
  const info = await tableInfo(db, name);
  const idx = (await db.query<{ name: string; def: string }>(INDEX_DEFS_SQL, [info.oid])).rows.filter((i) => !excludeIndexes.includes(i.name));
  const con = (await db.query<{ name: string; def: string }>(CONSTRAINT_DEFS_SQL, [info.oid])).rows;
  const def = {
    columns: info.columns.map((c) => [c.name, c.type, c.notNull, c.default]),
    indexes: idx.map((i) => i.def),
    constraints: con.map((c) => [c.name, c.def]),
  };
  return createHash('sha256').update(JSON.stringify(def)).digest('hex');
}

/** What planning measures through other stages (the pipeline lends them): a rolled-back batch, and per-batch costs. */
export interface PlanMeasures {
  /** Opens the trial of step `stepNo`: its batches run as apply would, each rolled back. */
  trial(stepNo: number): Promise<{ batch: Trial; keyAt(offset: number): Promise<string | null>; close(): Promise<void>; rows?: number; ruleExplain?: unknown }>;
  /** One COMMIT that writes. */
  commitMs: number;
  /** The throttle checks before each batch (0 on PGlite). */
  throttleMs: number;
}

export async function plan(db: Db, m: LoadedMigration, opts: PlanOptions, measures: PlanMeasures): Promise<Plan> {
  await ensureState(db);
  const { spec } = m;
  const targetBatchMs = opts.targetBatchMs ?? DEFAULT_TARGET_BATCH_MS;
  const tempNames = spec.tempIndexes.map((i) => i.name);
  const tables: TablePlan[] = [];
  for (const t of spec.tables) tables.push(await tablePlan(db, t, !!opts.exact, tempNames));
  const rowsOf = (t: string) => tables.find((x) => x.name === t)?.rows ?? 0;
  const { commitMs, throttleMs } = measures;
  const calSize = spec.options.batchSize;
  const existing = new Set<string>();
  for (const x of spec.tempIndexes)
    if ((await db.query<{ r: string | null }>('SELECT to_regclass($1)::text AS r', [qualified(x.name)])).rows[0]?.r) existing.add(x.name);
  const steps: StepPlan[] = [];
  for (const [i, step] of spec.steps.entries()) {
    if (step.kind === 'sql') {
      steps.push({
        name: step.name,
        kind: 'sql',
        rows: 0,
        samples: [],
        rates: null,
        estimateMs: { low: 0, mid: 0, high: 0 },
        seqScans: [],
        note: 'plain SQL: not calibrated',
      });
      continue;
    }
    const opened = await measures.trial(i);
    // the batches walk the decision: the rows it holds, not the table's
    const rows = opened.rows ?? rowsOf(step.table);
    // probe with small batches at the start until the size the target asks for settles (per-batch costs
    // are not linear in the size), then measure walks of that size at spread key positions
    let size = Math.min(step.batchSize ?? calSize, PROBE_SIZE);
    const trial = opened.batch;
    let probe = await calibrate(trial, { size, rows, keyAt: opened.keyAt, samples: 1, walk: 2 });
    for (let round = 0; round < 3; round++) {
      const want = chooseBatchSize(ratesOf(probe.samples), firstBatchMs(targetBatchMs), size);
      if (want >= size / 1.3 && want <= size * 1.3) break;
      size = want;
      probe = await calibrate(trial, { size, rows, keyAt: opened.keyAt, samples: 1, walk: 2 });
    }
    const cal = await calibrate(trial, { size, rows, keyAt: opened.keyAt, samples: opts.samples });
    await opened.close();
    const rates = ratesOf(cal.samples);
    // the batches' statement, and the making of the decision (a range rule evaluated chunk by chunk)
    const large = opts.largeTableRows ?? DEFAULT_LARGE_TABLE_ROWS;
    const seqScans = [
      ...(cal.explain ? await findSeqScans(db, cal.explain, step.name, large, spec.tempIndexes) : []),
      ...(opened.ruleExplain ? await findSeqScans(db, opened.ruleExplain, step.name, large, spec.tempIndexes) : []),
    ];
    // apply creates the temporary indexes before the first batch; planning does not write, so it measures without them
    const missing = spec.tempIndexes.filter((x) => !existing.has(x.name)).map((x) => x.name);
    const note = missing.length
      ? `calibrated without the temporary indexes ${missing.join(', ')} (apply creates them first): the estimate may be high`
      : undefined;
    steps.push({
      name: step.name,
      kind: 'batched',
      table: step.table,
      rows,
      samples: cal.samples,
      rates,
      estimateMs: { low: 0, mid: 0, high: 0 },
      seqScans,
      ...(note ? { note } : {}),
    });
  }
  return { ...finishPlan(db, m, { tables, steps, targetBatchMs, commitMs, throttleMs, source: 'calibration' }), catalog: await stepFacts(db, spec) };
}

/**
 * What the first batch is sized for: apply treats the target as a ceiling and aims below it
 * (batch-sizer.ts), starting with INITIAL_HEADROOM; the plan's size and estimate aim the same way.
 */
export function firstBatchMs(targetBatchMs: number): number {
  return targetBatchMs / INITIAL_HEADROOM;
}

/** Chooses batch size and mode and adds up the estimates (shared by plan and dry-run -o). */
export function finishPlan(
  db: Db,
  m: LoadedMigration,
  p: { tables: TablePlan[]; steps: StepPlan[]; targetBatchMs: number; commitMs: number; throttleMs: number; source: 'calibration' | 'dry-run' },
): Plan {
  const { spec } = m;
  const batched = p.steps.filter((s) => s.kind === 'batched');
  // one size to start the run with (apply adapts it per batch); the slowest step decides, so no batch runs long
  const sizes = batched.map((s) =>
    chooseBatchSize(s.rates, firstBatchMs(p.targetBatchMs), (spec.steps.find((x) => x.name === s.name) as BatchedStep).batchSize ?? spec.options.batchSize),
  );
  const batchSize = Math.min(MAX_BATCH_SIZE, sizes.length > 0 ? Math.min(...sizes) : spec.options.batchSize);
  const totalRows = batched.reduce((n, s) => n + s.rows, 0);
  // a migration that fits in one batch of the target duration gains nothing from batches
  const mode: Plan['mode'] = spec.options.mode === 'single' || totalRows <= batchSize ? 'single' : 'batched';
  let low = 0;
  let mid = 0;
  let high = 0;
  for (const s of batched) {
    s.estimateMs = estimateStepMs(s.rows, mode === 'single' ? Math.max(s.rows, 1) : batchSize, s.rates, p.commitMs + (mode === 'single' ? 0 : p.throttleMs));
    low += s.estimateMs.low;
    mid += s.estimateMs.mid;
    high += s.estimateMs.high;
  }
  // apply counts every table before and after the run: about one sequential read each
  const overhead = p.tables.reduce((n, t) => n + t.rows, 0) * 2 * 0.0001;
  const e = widen({ low: low + overhead, mid: mid + overhead, high: high + overhead });
  const proposed = new Map<string, { name: string; table: string; columns: string }>();
  for (const s of p.steps) for (const f of s.seqScans) if (f.proposedIndex) proposed.set(f.proposedIndex.name, f.proposedIndex);
  return {
    belayPlan: PLAN_VERSION,
    createdAt: new Date().toISOString(),
    migration: { id: spec.id, checksum: m.checksum, file: m.file, params: { ...m.params } },
    database: { kind: db.kind, label: db.label },
    targetBatchMs: p.targetBatchMs,
    mode,
    batchSize,
    tables: p.tables,
    steps: p.steps,
    estimate: { lowMs: e.low, midMs: e.mid, highMs: e.high, source: p.source },
    commitMs: p.commitMs,
    throttleMs: p.throttleMs,
    proposedIndexes: [...proposed.values()],
  };
}

// --- the plan file ---------------------------------------------------------------------------------

/** Writes the plan as JSON; the migration path is stored relative to the plan file (a repo can move). */
export function writePlanFile(file: string, p: Plan): void {
  const rel = path.relative(path.dirname(path.resolve(file)), p.migration.file);
  writeFileSync(file, `${JSON.stringify({ ...p, migration: { ...p.migration, file: rel } }, null, 2)}\n`);
}

/** True when the file is a belay plan (a .json file with a belayPlan field). */
export function isPlanFile(file: string): boolean {
  if (!file.toLowerCase().endsWith('.json')) return false;
  try {
    const v = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    return typeof v.belayPlan === 'number';
  } catch {
    return false;
  }
}

/**
 * Reads a plan file and validates every field (plan-schema.ts), its numbers as the command line's are:
 * a hand-edited plan is refused (BELAY_PLAN_FILE, exit 2) before anything connects. The migration path
 * comes back absolute.
 */
export function readPlanFile(file: string): Plan {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new BelayError('BELAY_PLAN_FILE', `cannot read plan file ${file}: ${(err as Error).message}`, {
      fix: 'Write it again with belay plan <migration> -o plan.json.',
    });
  }
  if (!raw || typeof raw !== 'object' || raw.belayPlan !== PLAN_VERSION) {
    throw new BelayError('BELAY_PLAN_FILE', `plan file ${file} has version ${String(raw?.belayPlan)}; this belay reads version ${PLAN_VERSION}`, {
      fix: 'Make the plan again with this version of belay.',
    });
  }
  const v = validatePlan(raw, `plan file ${file}`);
  return { ...v, migration: { ...v.migration, file: path.resolve(path.dirname(path.resolve(file)), v.migration.file) } };
}

/** A plan (read from a file, or given to safeApply) checked field by field; BELAY_PLAN_FILE (exit 2) names each problem. */
export function validatePlan(raw: unknown, what: string): Plan {
  const r = planFileSchema.safeParse(raw);
  if (!r.success) {
    const at = (p: PropertyKey[]) => p.map(String).join('.') || '(root)';
    const value = (p: PropertyKey[]) => {
      const x = p.reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<PropertyKey, unknown>)[k] : undefined), raw);
      return x === undefined ? '' : ` ${JSON.stringify(x).slice(0, 40)}`;
    };
    const lines = r.error.issues.slice(0, 8).map((i) => `  ${at(i.path)}${value(i.path)}: ${i.message}`);
    throw new BelayError('BELAY_PLAN_FILE', `${what} is not valid:\n${lines.join('\n')}`, {
      details: { fields: r.error.issues.map((i) => ({ field: at(i.path), problem: i.message })) },
      fix: 'Make the plan again (belay plan <migration> -o plan.json) instead of editing it; nothing was changed.',
    });
  }
  return r.data as Plan;
}

// --- is the plan still true? ---------------------------------------------------------------------------

/**
 * A plan must list exactly the migration's tables and steps: one that lists fewer (edited by hand) would
 * skip the drift check of the tables it left out.
 */
function assertPlanCovers(m: LoadedMigration, p: Plan): void {
  const same = (a: readonly string[], b: readonly string[]) => a.length === b.length && a.every((x) => b.includes(x));
  const problems = [
    ...(same(
      p.tables.map((t) => t.name),
      m.spec.tables,
    )
      ? []
      : [`tables: the plan lists ${JSON.stringify(p.tables.map((t) => t.name))}, the migration touches ${JSON.stringify(m.spec.tables)}`]),
    ...(same(
      p.steps.map((s) => s.name),
      m.spec.steps.map((s) => s.name),
    )
      ? []
      : [`steps: the plan lists ${JSON.stringify(p.steps.map((s) => s.name))}, the migration has ${JSON.stringify(m.spec.steps.map((s) => s.name))}`]),
  ];
  if (problems.length === 0) return;
  throw new BelayError('BELAY_PLAN_FILE', `the plan file does not match the migration:\n  ${problems.join('\n  ')}`, {
    details: { problems },
    fix: 'Make the plan again (belay plan <migration> -o plan.json) instead of editing it; nothing was changed.',
  });
}

export const DEFAULT_MAX_DRIFT = 0.1;

/**
 * Refuses (StateError BELAY_PLAN_STALE, exit 8) when the migration changed since the plan, a touched
 * table's definition changed, or a row count moved by more than maxDrift (a fraction, default 10 %).
 */
export async function assertPlanCurrent(db: Db, m: LoadedMigration, p: Plan, opts: { maxDrift?: number } = {}): Promise<void> {
  const maxDrift = opts.maxDrift ?? DEFAULT_MAX_DRIFT;
  const reasons: string[] = [];
  if (p.migration.id !== m.spec.id) reasons.push(`the plan is for migration "${p.migration.id}", not "${m.spec.id}"`);
  else if (p.migration.checksum !== m.checksum)
    reasons.push(`the migration changed since the plan (checksum ${p.migration.checksum.slice(0, 12)} → ${m.checksum.slice(0, 12)})`);
  // with the same migration, a plan that lists other tables or steps was edited by hand
  if (p.migration.id === m.spec.id && p.migration.checksum === m.checksum) assertPlanCovers(m, p);
  const tempNames = m.spec.tempIndexes.map((i) => i.name);
  for (const t of p.tables) {
    const now = await tablePlan(db, t.name, t.rowsMethod === 'exact', tempNames).catch((err: unknown) => err as Error);
    if (now instanceof Error) {
      reasons.push(`table ${qualified(t.name)}: ${now.message}`);
      continue;
    }
    if (now.fingerprint !== t.fingerprint) reasons.push(`the definition of table ${qualified(t.name)} changed (columns, indexes or constraints)`);
    const drift = t.rows === 0 ? (now.rows === 0 ? 0 : 1) : Math.abs(now.rows - t.rows) / t.rows;
    if (drift > maxDrift)
      reasons.push(
        `table ${qualified(t.name)} has ${now.rows} rows, the plan counted ${t.rows} (${(drift * 100).toFixed(1)} % > ${(maxDrift * 100).toFixed(0)} %)`,
      );
  }
  if (reasons.length > 0) {
    throw new StateError('BELAY_PLAN_STALE', `the plan no longer matches the database:\n  ${reasons.join('\n  ')}`, {
      details: { reasons, plannedAt: p.createdAt },
      fix: 'Make a new plan (belay plan <migration> -o plan.json), or raise --max-drift if the row counts are expected to move.',
    });
  }
}
