// Calibration: a few real batches at different key positions, each rolled back, give rows/s; from that
// the batch size for a target duration and the expected time as a range.
import { MAX_BATCH_SIZE, MIN_BATCH_SIZE } from '../spec/define.ts';

export const DEFAULT_CALIBRATION_SAMPLES = 3;

/** One batch of a step run exactly as apply runs it, then rolled back; null when no key is left after `after`. */
export type Trial = (q: { after: string | null; size: number; explain?: boolean }) => Promise<TrialSample | null>;

export interface TrialSample {
  lo: string;
  hi: string;
  rows: number;
  changed: number;
  ms: number;
  explain?: unknown;
  target: { table: string; key: string };
}
/** The range is at least this wide around its midpoint: load and caches vary between plan and apply. */
export const MIN_SPREAD = 0.2;
/**
 * Calibration batches are rolled back; a run's batches commit and leave things behind that later batches
 * pay for: new index entries and tuple versions that grow the table past the buffer cache, dirty pages
 * written back, checkpoints with their full-page writes, autovacuum starting on the table. Measured on
 * the flagship (2-core machine, 100,000 and 1,000,000 rows, 9 runs across two days), the actual time was
 * a median 17 % over the calibrated one (-3 % to +38 %): the time for the rows is raised by this much.
 */
export const COMMITTED_RUN_ALLOWANCE = 1.15;
/** The first probe batch: small, so that a slow projection does not make planning slow. */
export const PROBE_SIZE = 1_000;

export interface CalibrationSample {
  lo: string;
  hi: string;
  rows: number;
  changed: number;
  ms: number;
  rowsPerSec: number;
}

export interface Rates {
  low: number;
  mid: number;
  high: number;
}

/** Batches per calibration position: a short walk, as apply walks the table; the first is not measured. */
export const DEFAULT_WALK = 3;

/**
 * At `samples` evenly spread key positions of the step's table (start, a third, …) runs a short walk of
 * `walk` consecutive rolled-back batches of `size` rows and returns the timings of all but the first of
 * each walk. The first batch also yields the EXPLAIN. Why walks: a single batch at a position reads cold
 * pages, a repeated one reads only warm ones, and neither is what a run walking the table in order sees
 * (flagship at 1M rows: single cold batches measured 96–141 µs a row from plan to plan, repeated ones
 * 86–93, consecutive ones 103–121, the runs' first minute 103–132).
 */
export async function calibrate(
  trial: Trial,
  opts: { size: number; rows: number; keyAt: (offset: number) => Promise<string | null>; samples?: number; walk?: number },
): Promise<{ samples: CalibrationSample[]; explain?: unknown; first?: TrialSample }> {
  const n = opts.samples ?? DEFAULT_CALIBRATION_SAMPLES;
  const walk = Math.max(2, opts.walk ?? DEFAULT_WALK);
  const out: CalibrationSample[] = [];
  let explain: unknown;
  let first: TrialSample | undefined;
  for (let i = 0; i < n; i++) {
    const offset = Math.floor((opts.rows * i) / n);
    let after: string | null = null;
    if (offset > 0) {
      // rows counts decided rows: the position is one in the decision the batches walk
      after = await opts.keyAt(offset);
      if (after === null) break;
    }
    let measured = 0;
    let opening: TrialSample | undefined;
    for (let j = 0; j < walk; j++) {
      const b = await trial({ after, size: opts.size, explain: i === 0 && j === 0 });
      if (!b) break;
      if (i === 0 && j === 0) {
        first = b;
        explain = b.explain;
      }
      after = b.hi;
      if (j === 0) opening = b;
      else {
        out.push(sampleOf(b));
        measured++;
      }
    }
    // the walk ran off the end of the table: its first batch is all there is to measure
    if (measured === 0 && opening) out.push(sampleOf(opening));
  }
  return { samples: out, explain, first };
}

function sampleOf(b: TrialSample): CalibrationSample {
  return { lo: b.lo, hi: b.hi, rows: b.rows, changed: b.changed, ms: b.ms, rowsPerSec: (b.rows / Math.max(b.ms, 0.01)) * 1000 };
}

/** Slowest, median and fastest rate of the samples (rows/s). */
export function ratesOf(samples: ReadonlyArray<{ rows: number; ms: number }>): Rates | null {
  const r = samples
    .filter((s) => s.rows > 0)
    .map((s) => (s.rows / Math.max(s.ms, 0.01)) * 1000)
    .sort((a, b) => a - b);
  if (r.length === 0) return null;
  return { low: r[0]!, mid: r[Math.floor((r.length - 1) / 2)]!, high: r[r.length - 1]! };
}

/** Rows per batch so that a batch takes about targetMs at the median rate. */
export function chooseBatchSize(rates: Rates | null, targetMs: number, fallback: number): number {
  if (!rates) return fallback;
  const n = Math.round((rates.mid * targetMs) / 1000 / 100) * 100;
  return Math.min(MAX_BATCH_SIZE, Math.max(MIN_BATCH_SIZE, n));
}

/**
 * Expected time of a batched step: rows at the slowest/median/fastest rate (raised by
 * COMMITTED_RUN_ALLOWANCE) plus what each batch costs besides its rows.
 */
export function estimateStepMs(rows: number, batchSize: number, rates: Rates | null, perBatchMs: number): { low: number; mid: number; high: number } {
  if (!rates || rows === 0) return { low: 0, mid: 0, high: 0 };
  const batches = Math.ceil(rows / batchSize) + 1; // the last, empty bounds query
  const at = (rate: number) => (rows / rate) * 1000 * COMMITTED_RUN_ALLOWANCE + batches * perBatchMs;
  return { low: at(rates.high), mid: at(rates.mid), high: at(rates.low) };
}

/** Widens [low, high] to at least ±MIN_SPREAD around mid. */
export function widen(e: { low: number; mid: number; high: number }): { low: number; mid: number; high: number } {
  return { low: Math.min(e.low, e.mid * (1 - MIN_SPREAD)), mid: e.mid, high: Math.max(e.high, e.mid * (1 + MIN_SPREAD)) };
}
