// The flagship migration's fixture, built once per suite run and shared by the scenarios: a generated
// template database, the same after an uninterrupted apply, and the reference figures of both.
import { compareTables, readImages, type RowImages, tableChecksums } from './audit.ts';
import { FLAGSHIP, runBelay } from './belay-cli.ts';
import { cloneDb, createTemplate, dbUrl, dropDb, withDb } from './server.ts';

export const MIGRATION_ID = 'event-type-owner';

export interface Fixture {
  rows: number;
  batch: number;
  /** Template: generated data, belay never ran. */
  base: string;
  /** Template: base after one uninterrupted apply (run 1, completed). */
  applied: string;
  baseSums: Record<string, string>;
  /** Checksums after the uninterrupted apply. */
  refSums: Record<string, string>;
  refChanged: number;
  /** Batches the uninterrupted apply committed: only decided rows are walked, so fewer than rows ÷ batch size. */
  refBatches: number;
  /** "EventType".id -> {"userId"} before the run. */
  baseImages: RowImages;
  /** Wall time of the uninterrupted CLI runs, process start to exit. */
  applyMs: number;
  rollbackMs: number;
  /** When the uninterrupted apply announced its run (process start to the run-started event). */
  startupMs: number;
}

export function applyArgs(url: string, batch: number, extra: string[] = []): string[] {
  return ['apply', FLAGSHIP, '--db', url, '--batch-size', String(batch), '--log-every', '1000000', ...extra];
}

const cache = new Map<string, Promise<Fixture>>();
const created: string[] = [];

export function flagshipFixture(rows: number, batch: number, seed: number): Promise<Fixture> {
  const k = `${rows}/${batch}/${seed}`;
  if (!cache.has(k)) cache.set(k, build(rows, batch, seed));
  return cache.get(k)!;
}

async function build(rows: number, batch: number, seed: number): Promise<Fixture> {
  const base = await createTemplate('base', rows, seed);
  created.push(base);
  const baseSums = await withDb(base, tableChecksums);
  const baseImages = await withDb(base, (db) => readImages(db, 'EventType', 'id', ['userId']));
  const applied = await cloneDb(base, 'tpl_applied');
  created.push(applied);
  let startupMs = 0;
  const t0 = performance.now();
  const ref = await runBelay(['--json', ...applyArgs(dbUrl(applied), batch)], {
    onLine: (l) => {
      if (!startupMs && l.includes('"run-started"')) startupMs = performance.now() - t0;
    },
  });
  if (ref.code !== 0) throw new Error(`uninterrupted apply failed (exit ${ref.code}): ${ref.stderr}`);
  const refSums = await withDb(applied, tableChecksums);
  const [refChanged, refBatches] = await withDb(applied, async (db) => {
    const r = (
      await db.query<{ n: number; b: number }>(
        `SELECT (SELECT sum(rows_changed)::int FROM belay.steps WHERE run_id = 1) AS n, (SELECT count(*)::int FROM belay.batches WHERE run_id = 1) AS b`,
      )
    ).rows[0]!;
    return [Number(r.n), Number(r.b)];
  });
  const rb = await cloneDb(applied, 'rbref');
  try {
    const refRb = await runBelay(['rollback', '1', '--db', dbUrl(rb)]);
    if (refRb.code !== 0) throw new Error(`uninterrupted rollback failed (exit ${refRb.code}): ${refRb.stderr}`);
    const problems = compareTables(baseSums, await withDb(rb, tableChecksums), 'uninterrupted rollback');
    if (problems.length) throw new Error(problems.join('; '));
    return { rows, batch, base, applied, baseSums, refSums, refChanged, refBatches, baseImages, applyMs: ref.ms, rollbackMs: refRb.ms, startupMs };
  } finally {
    await dropDb(rb);
  }
}

/** Drops the fixture's templates (end of the suite). */
export async function dropFixtures(): Promise<void> {
  for (const d of created.splice(0)) await dropDb(d);
  cache.clear();
}

/** The suite's database size and batch size: small in the short (CI) version. */
export function sizes(short: boolean): { rows: number; batch: number } {
  return short ? { rows: 1_000, batch: 50 } : { rows: 5_000, batch: 100 };
}
