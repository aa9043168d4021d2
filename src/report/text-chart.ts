// The batches as a chart in plain text, for Markdown (which has no pictures of its own): the duration of
// every batch in commit order as one line of bars, then how many batches took how long.
import { fmtInt, fmtMs } from './markdown.ts';

const LEVELS = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/** Upper bounds of the duration classes, in ms: 1, 2, 5 × 10^k. */
const BOUNDS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, Infinity];

/**
 * Lines for a ```text block. `width` columns at most: past it, a column stands for several consecutive
 * batches and shows the slowest of them (a slow batch is what the reader looks for).
 */
export function batchTextChart(durations: readonly number[], width = 72): string[] {
  const n = durations.length;
  if (!n) return ['no batches were committed'];
  const per = Math.ceil(n / width);
  const cols: number[] = [];
  for (let i = 0; i < n; i += per) cols.push(Math.max(...durations.slice(i, i + per)));
  const max = Math.max(...durations);
  const line = cols.map((d) => LEVELS[max > 0 ? Math.min(LEVELS.length - 1, Math.floor((d / max) * LEVELS.length)) : 0]).join('');
  const out = [
    `duration of each batch in commit order${per > 1 ? ` (one column = ${per} batches, the slowest of them)` : ''}; █ = ${fmtMs(max)}`,
    line,
    `batch 1${' '.repeat(Math.max(1, cols.length - 7 - String(n).length))}${n}`,
    '',
  ];
  const counts = BOUNDS.map(() => 0);
  for (const d of durations) counts[BOUNDS.findIndex((b) => d < b)]! += 1;
  const first = counts.findIndex((c) => c > 0);
  const last = counts.length - 1 - [...counts].reverse().findIndex((c) => c > 0);
  const most = Math.max(...counts);
  const label = (i: number) => (i === 0 ? `< ${fmtMs(BOUNDS[0])}` : `${fmtMs(BOUNDS[i - 1])} – ${BOUNDS[i] === Infinity ? '' : fmtMs(BOUNDS[i])}`);
  const labels = counts.map((_, i) => label(i));
  const pad = Math.max(...labels.slice(first, last + 1).map((l) => l.length));
  out.push(`${'duration'.padEnd(pad)}  batches`);
  for (let i = first; i <= last; i++) {
    const c = counts[i]!;
    out.push(`${labels[i]!.padEnd(pad)}  ${'█'.repeat(Math.ceil((c / most) * 40))}${c ? ' ' : ''}${fmtInt(c)}`);
  }
  return out;
}
