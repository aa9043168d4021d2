// The batch chart of the HTML report: inline SVG, batch duration as bars and rows/s as a line.
import { fmtInt, fmtMs, htmlText } from './markdown.ts';
import type { BatchTiming } from './report.ts';

/** Round numbers for an axis: 0 … max in about `n` steps of 1, 2 or 5 × 10^k. */
function ticks(max: number, n = 4): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = 0; v <= max + step * 0.999; v += step) out.push(v);
  return out;
}

function compact(v: number): string {
  return v >= 1e6 ? `${+(v / 1e6).toFixed(1)}M` : v >= 1e3 ? `${+(v / 1e3).toFixed(1)}k` : `${+v.toFixed(1)}`;
}

/** Inline SVG: batch duration as bars (left axis, ms) and rows/s as a line (right axis), in batch order. */
export function chart(batches: readonly BatchTiming[]): string {
  const W = 1000;
  const H = 300;
  const m = { l: 60, r: 64, t: 28, b: 40 };
  const w = W - m.l - m.r;
  const h = H - m.t - m.b;
  if (!batches.length) {
    return `<svg role="img" aria-label="no batches" viewBox="0 0 ${W} 60" width="100%"><text x="${W / 2}" y="34" text-anchor="middle">No batches were committed in this run.</text></svg>`;
  }
  const msTicks = ticks(Math.max(...batches.map((b) => b.durationMs)));
  const rateTicks = ticks(Math.max(...batches.map((b) => b.rowsPerSec)));
  const msMax = msTicks[msTicks.length - 1]!;
  const rateMax = rateTicks[rateTicks.length - 1]!;
  const n = batches.length;
  const slot = w / n;
  const bw = Math.max(1, slot * 0.72);
  const x = (i: number) => m.l + i * slot + slot / 2;
  const yMs = (v: number) => m.t + h - (v / msMax) * h;
  const yRate = (v: number) => m.t + h - (v / rateMax) * h;
  const grid = msTicks
    .map(
      (t) =>
        `<line x1="${m.l}" x2="${m.l + w}" y1="${yMs(t).toFixed(1)}" y2="${yMs(t).toFixed(1)}" stroke="#d1d9e0" stroke-width="${t === 0 ? 1 : 0.5}"/>` +
        `<text x="${m.l - 6}" y="${(yMs(t) + 4).toFixed(1)}" text-anchor="end">${compact(t)}</text>`,
    )
    .join('');
  const right = rateTicks.map((t) => `<text x="${m.l + w + 6}" y="${(yRate(t) + 4).toFixed(1)}" style="fill:var(--rate)">${compact(t)}</text>`).join('');
  const bars = batches
    .map(
      (b, i) =>
        `<rect class="bar" x="${(x(i) - bw / 2).toFixed(1)}" y="${yMs(b.durationMs).toFixed(1)}" width="${bw.toFixed(1)}" height="${Math.max(0.5, h - (yMs(b.durationMs) - m.t)).toFixed(1)}" fill="var(--bar)" opacity="0.85">` +
        `<title>step ${b.stepNo + 1} batch ${b.batchNo}: keys ${htmlText(b.lo)}–${htmlText(b.hi)}, ${fmtInt(b.rowsInRange)} rows, ${fmtInt(b.rowsChanged)} changed, ${fmtMs(b.durationMs)}, ${fmtInt(b.rowsPerSec)} rows/s</title></rect>`,
    )
    .join('');
  const line = batches.map((b, i) => `${i ? 'L' : 'M'}${x(i).toFixed(1)},${yRate(b.rowsPerSec).toFixed(1)}`).join(' ');
  const dots =
    n <= 200 ? batches.map((b, i) => `<circle cx="${x(i).toFixed(1)}" cy="${yRate(b.rowsPerSec).toFixed(1)}" r="2.5" fill="var(--rate)"/>`).join('') : '';
  const every = Math.max(1, Math.ceil(n / 20));
  const xLabels = batches
    .map((_, i) => (i % every === 0 || i === n - 1 ? `<text x="${x(i).toFixed(1)}" y="${m.t + h + 16}" text-anchor="middle">${i + 1}</text>` : ''))
    .join('');
  return `<svg role="img" aria-label="batch duration and rows per second" viewBox="0 0 ${W} ${H}" width="100%">
<text x="${m.l}" y="16" style="fill:var(--bar);font-weight:600">■ batch duration (ms)</text>
<text x="${m.l + w}" y="16" text-anchor="end" style="fill:var(--rate);font-weight:600">● rows/s</text>
${grid}${right}${bars}
<path class="rate" d="${line}" fill="none" stroke="var(--rate)" stroke-width="2"/>${dots}
${xLabels}<text x="${m.l + w / 2}" y="${H - 4}" text-anchor="middle">batch (in commit order)</text>
</svg>`;
}
