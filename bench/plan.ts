// The plan's expected time next to the measured apply time, and the longest batch at the default target.
// Targets: the measured time inside the predicted range and within ±25 % of its midpoint; the longest
// batch under 250 ms at the default 200 ms target.
import { openDb } from '../src/db/connection.ts';
import { loadMigration } from '../src/spec/load.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';
import { applyPlanned } from '../src/plan/apply-planned.ts';
import { plan } from '../src/plan/plan.ts';
import { copyOf, flagshipTemplate } from './template.ts';

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
    const t1 = performance.now();
    const r = await applyPlanned(db, m, { onEvent: (e) => { if (e.type === 'batch-committed') durations.push(e.durationMs); } }, { plan: p });
    const actualS = (performance.now() - t1) / 1000;
    const [lowS, midS, highS] = [p.estimate.lowMs / 1000, p.estimate.midMs / 1000, p.estimate.highMs / 1000];
    const sorted = [...durations].sort((a, b) => a - b);
    const off = midS > 0 ? (actualS - midS) / midS : Infinity;
    return {
      rows, planSeconds, batchSize: p.batchSize, mode: p.mode, expected: { lowS, midS, highS }, actualS,
      insideRange: actualS >= lowS && actualS <= highS, offMidpoint: off, withinQuarter: Math.abs(off) <= 0.25,
      batches: durations.length, longestBatchMs: sorted.at(-1) ?? 0, p95BatchMs: sorted[Math.floor(sorted.length * 0.95)] ?? 0, status: r.status,
    };
  } finally {
    await db.close();
  }
}

/** npm run bench: at 100,000 rows and at --rows (default 1,000,000), each on a fresh copy of the flagship. */
export async function report(rows: number): Promise<string> {
  const sizes = [...new Set([100_000, rows])];
  const lines = ['| rows | plan (s) | batch size | expected (s) | actual (s) | inside range | vs midpoint | longest batch (ms) | p95 batch (ms) |', '| ---: | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |'];
  for (const n of sizes) {
    const tpl = await flagshipTemplate(n);
    const c = await copyOf(tpl, 'plan');
    try {
      const f = await benchPlan(c.url, n);
      lines.push(`| ${n.toLocaleString('en-US')} | ${f.planSeconds.toFixed(1)} | ${f.batchSize} | ${f.expected.lowS.toFixed(1)} – ${f.expected.highS.toFixed(1)} (mid ${f.expected.midS.toFixed(1)}) | ${f.actualS.toFixed(1)} | ${f.insideRange ? 'yes' : 'NO'} | ${(f.offMidpoint * 100).toFixed(0)} % ${f.withinQuarter ? '' : '(outside ±25 %)'} | ${f.longestBatchMs.toFixed(0)} ${f.longestBatchMs < 250 ? '' : '(≥ 250)'} | ${f.p95BatchMs.toFixed(0)} |`);
    } finally {
      await c.drop();
    }
  }
  return lines.join('\n');
}
