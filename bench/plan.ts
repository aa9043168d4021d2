// The plan's expected time next to the measured apply time, and the longest batch at the default target.
// Targets: the measured time inside the predicted range and within ±25 % of its midpoint; the longest
// batch under 250 ms at the default 200 ms target. A batch's duration here is how long it held its row
// locks: BEGIN to COMMIT returned, and for an attempt cancelled at the ceiling, BEGIN to ROLLBACK returned.
import { openDb } from '../src/db/connection.ts';
import { loadMigration } from '../src/spec/load.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';
import { apply } from '../src/execute/apply.ts';
import { plan } from '../src/run/pipeline.ts';
import { steerStage } from '../src/steer/throttle.ts';
import { copyOf, flagshipTemplate, median } from './template.ts';

export interface PlanFigures {
  rows: number;
  planSeconds: number;
  batchSize: number;
  mode: string;
  expected: { lowS: number; midS: number; highS: number };
  actualS: number;
  insideRange: boolean;
  /** (actual − midpoint) / midpoint. */
  offMidpoint: number;
  withinQuarter: boolean;
  batches: number;
  longestBatchMs: number;
  p95BatchMs: number;
  meanBatchMs: number;
  /** Batches that took 250 ms or more (the target for the longest at the default 200 ms). */
  over250: number;
  /** Attempts cancelled at the ceiling (rolled back and split), and the longest of them (ms). */
  cancelled: number;
  longestCancelledMs: number;
  status: string;
}

/** Plans the flagship on `url` (a database holding its data), then applies the plan and compares. */
export async function benchPlan(url: string, rows: number): Promise<PlanFigures> {
  const db = await openDb(url);
  try {
    const m = await loadMigration(FLAGSHIP_DIR);
    const t0 = performance.now();
    const p = await plan(db, m);
    const planSeconds = (performance.now() - t0) / 1000;
    const durations: number[] = [];
    const cancelled: number[] = [];
    const t1 = performance.now();
    // the batches as the plan sized them, steered as apply steers them (the plan estimates the batches)
    const r = await apply(db, m, {
      batchSize: p.batchSize,
      mode: p.mode,
      stages: [steerStage({ targetMs: p.targetBatchMs })],
      onEvent: (e) => {
        if (e.type === 'batch-committed') durations.push(e.heldMs);
        if (e.type === 'batch-over-ceiling') cancelled.push(e.elapsedMs);
      },
    });
    const actualS = (performance.now() - t1) / 1000;
    const [lowS, midS, highS] = [p.estimate.lowMs / 1000, p.estimate.midMs / 1000, p.estimate.highMs / 1000];
    const sorted = [...durations].sort((a, b) => a - b);
    const off = midS > 0 ? (actualS - midS) / midS : Infinity;
    return {
      rows,
      planSeconds,
      batchSize: p.batchSize,
      mode: p.mode,
      expected: { lowS, midS, highS },
      actualS,
      insideRange: actualS >= lowS && actualS <= highS,
      offMidpoint: off,
      withinQuarter: Math.abs(off) <= 0.25,
      batches: durations.length,
      longestBatchMs: sorted.at(-1) ?? 0,
      p95BatchMs: sorted[Math.floor(sorted.length * 0.95)] ?? 0,
      meanBatchMs: durations.length > 0 ? durations.reduce((a, b) => a + b, 0) / durations.length : 0,
      over250: durations.filter((d) => d >= 250).length,
      cancelled: cancelled.length,
      longestCancelledMs: Math.max(0, ...cancelled),
      status: r.status,
    };
  } finally {
    await db.close();
  }
}

/**
 * npm run bench: at 100,000 rows and at --rows (default 1,000,000), `runs` times each, each on a fresh copy
 * of the flagship. One line per run (the machine is shared: the spread matters as much as the median).
 */
export async function report(rows: number, runs = 1): Promise<string> {
  const sizes = [...new Set([100_000, rows])];
  const lines = [
    '| rows | run | plan (s) | first batch | expected (s) | actual (s) | inside range | vs midpoint | batches | longest (ms) | p95 (ms) | mean (ms) | ≥ 250 ms | cancelled at the ceiling (longest ms) |',
    '| ---: | ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  const medians: string[] = [];
  for (const n of sizes) {
    const tpl = await flagshipTemplate(n);
    const all: PlanFigures[] = [];
    for (let run = 1; run <= runs; run++) {
      const c = await copyOf(tpl, 'plan');
      try {
        const f = await benchPlan(c.url, n);
        all.push(f);
        lines.push(
          `| ${n.toLocaleString('en-US')} | ${run} | ${f.planSeconds.toFixed(1)} | ${f.batchSize} | ${f.expected.lowS.toFixed(1)} – ${f.expected.highS.toFixed(1)} (mid ${f.expected.midS.toFixed(1)}) | ${f.actualS.toFixed(1)} | ${f.insideRange ? 'yes' : 'NO'} | ${pct(f.offMidpoint)} ${f.withinQuarter ? '' : '(outside ±25 %)'} | ${f.batches} | ${f.longestBatchMs.toFixed(0)} ${f.longestBatchMs < 250 ? '' : '(≥ 250)'} | ${f.p95BatchMs.toFixed(0)} | ${f.meanBatchMs.toFixed(0)} | ${f.over250} | ${f.cancelled}${f.cancelled > 0 ? ` (${f.longestCancelledMs.toFixed(0)})` : ''} |`,
        );
      } finally {
        await c.drop();
      }
    }
    if (runs > 1) {
      medians.push(
        `${n.toLocaleString('en-US')} rows, median of ${runs}: vs midpoint ${pct(median(all.map((f) => f.offMidpoint)))} (range ${pct(Math.min(...all.map((f) => f.offMidpoint)))} … ${pct(Math.max(...all.map((f) => f.offMidpoint)))}), longest ${median(all.map((f) => f.longestBatchMs)).toFixed(0)} ms (worst ${Math.max(...all.map((f) => f.longestBatchMs)).toFixed(0)}), p95 ${median(all.map((f) => f.p95BatchMs)).toFixed(0)} ms, mean ${median(all.map((f) => f.meanBatchMs)).toFixed(0)} ms`,
      );
    }
  }
  return [...lines, '', ...medians].join('\n');
}

const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)} %`;
