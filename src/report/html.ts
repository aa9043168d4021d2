// The HTML report: one self-contained file (inline CSS, inline SVG, no script, no external URL)
// with a chart of batch duration and rows/s over the run, and the same sections as the Markdown.
import { CONSTRAINT_TYPES, fmtBytes, fmtInt, fmtMs, REPORT_SECTIONS } from './markdown.ts';
import type { BatchTiming, RunReport } from './report.ts';
import type { DiffRow } from './schema-snapshot.ts';

export function esc(v: unknown): string {
  const s = v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v);
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const CSS = `
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#fff; --soft:#f6f8fa; --bar:#4c8bf5; --rate:#e8590c; --ok:#1a7f37; --bad:#cf222e; --warn:#9a6700; }
* { box-sizing: border-box; }
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 36px; }
h3 { font-size: 16px; margin: 20px 0 8px; }
.sub { color: var(--muted); margin: 0 0 16px; }
table { border-collapse: collapse; width: 100%; margin: 8px 0 12px; font-size: 13px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: var(--soft); padding: 10px; overflow-x: auto; border-radius: 6px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; background: var(--muted); }
.status-completed { background: var(--ok); } .status-failed, .status-rolling_back { background: var(--bad); } .status-paused, .status-rolled_back { background: var(--warn); }
.sev-error { color: var(--bad); font-weight: 600; } .sev-warn { color: var(--warn); font-weight: 600; } .sev-info { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; } .card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
tr.added td { background: #dafbe1; } tr.removed td { background: #ffebe9; text-decoration: line-through; } tr.changed td { background: #fff8c5; }
.note { color: var(--muted); font-style: italic; }
details { margin: 6px 0 10px; } summary { cursor: pointer; }
figure { margin: 8px 0 16px; } figcaption { color: var(--muted); font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
`;

export function renderReportHtml(r: RunReport): string {
  const sec = (n: number, id: string) => `<h2 id="${id}">${n + 1}. ${esc(REPORT_SECTIONS[n])}</h2>`;
  const changed = r.steps.reduce((n, s) => n + s.rowsChanged, 0);
  const b = r.timings.batches;
  const batchMs = b.reduce((n, x) => n + x.durationMs, 0);
  const parts: string[] = [];
  parts.push(`<h1>${esc(r.run.migrationId)} <small>run ${r.run.id}</small></h1>`);
  parts.push(
    `<p class="sub"><span class="badge status-${esc(r.run.status)}">${esc(r.run.status)}</span> on ${esc(r.database)} · started ${esc(r.run.startedAt)} · report made ${esc(r.generatedAt)}</p>`,
  );

  parts.push(sec(0, 'summary'));
  parts.push(
    `<div class="cards">${[
      ['rows changed', fmtInt(changed)],
      ['duration', fmtMs(r.run.durationMs)],
      ['batches', fmtInt(b.length)],
      ['rows/s (batch time)', fmtInt(batchMs > 0 ? (b.reduce((n, x) => n + x.rowsInRange, 0) * 1000) / batchMs : null)],
      ['issue categories with rows', fmtInt(r.issues.findings.filter((f) => f.count > 0 && f.severity !== 'info').length)],
    ]
      .map(([k, v]) => `<div class="card"><b>${esc(v)}</b><span>${esc(k)}</span></div>`)
      .join('')}</div>`,
  );
  parts.push(
    kv([
      ['Migration file', r.run.file ?? ''],
      ['Checksum', r.run.checksum],
      [
        'Parameters',
        Object.entries(r.run.params)
          .map(([k, v]) => `${k}=${v}`)
          .join(', ') || 'none',
      ],
      ['Mode', r.run.mode],
      ['Finished', r.run.finishedAt ?? 'not finished'],
    ]),
  );
  if (r.error) parts.push(`<p class="sev-error">Stopped by <code>${esc(r.error.code)}</code>: ${esc(r.error.message)}</p>`);

  parts.push(sec(1, 'changes'), `<p>${esc(r.purpose)}</p>`);
  parts.push(
    table(
      ['#', 'step', 'kind', 'table', 'writes', 'status', 'rows scanned', 'rows changed', 'reversible'],
      r.steps.map((s) => [
        s.stepNo + 1,
        s.name,
        s.kind,
        s.table ?? '',
        (s.writes ?? []).join(', '),
        s.status,
        s.rowsTotal === null ? '' : fmtInt(s.rowsDone),
        fmtInt(s.rowsChanged),
        s.reversible ? 'yes' : 'NO',
      ]),
      [6, 7],
      'steps',
    ),
  );

  parts.push(sec(2, 'counts'));
  parts.push(
    table(
      ['table', 'before', 'after', 'difference'],
      r.counts.map((c) => [c.table, fmtInt(c.before), fmtInt(c.after), c.delta === null ? '' : `${c.delta > 0 ? '+' : ''}${fmtInt(c.delta)}`]),
      [1, 2, 3],
      'counts',
    ),
  );

  parts.push(sec(3, 'issues'), `<p class="note">${esc(r.issues.note)}</p>`);
  parts.push(
    table(
      ['code', 'severity', 'rows', 'meaning', 'what to do'],
      r.issues.findings.map((f) => [
        raw(`<code>${esc(f.code)}</code>`),
        raw(`<span class="sev-${esc(f.severity)}">${esc(f.severity)}</span>`),
        fmtInt(f.count),
        f.message,
        f.fix ?? '',
      ]),
      [2],
      'issues',
    ),
  );
  for (const f of r.issues.findings.filter((x) => x.count > 0 && x.sample.length)) {
    parts.push(
      `<details><summary><code>${esc(f.code)}</code>: sample of ${f.sample.length} of ${fmtInt(f.count)} row(s)</summary>${sampleTable(f.sample)}</details>`,
    );
  }
  const conflicts = r.undo.filter((u) => u.conflicts > 0);
  if (conflicts.length)
    parts.push(
      '<h3>Rollback conflicts</h3>',
      table(
        ['step', 'rows left alone'],
        conflicts.map((u) => [u.step, fmtInt(u.conflicts)]),
        [1],
      ),
    );

  parts.push(sec(4, 'verification'), `<p class="note">${esc(r.verification.note)}</p>`);
  if (r.verification.results.length) parts.push(generic(r.verification.results, ['name', 'kind', 'result', 'count', 'threshold', 'message']));

  parts.push(sec(5, 'backups'), `<p class="note">${esc(r.backups.note)}</p>`);
  if (r.backups.rows.length)
    parts.push(
      generic(r.backups.rows, [
        'id',
        'source_table',
        'table',
        'copy_schema',
        'copy_table',
        'row_count',
        'rows',
        'checksum',
        'size_bytes',
        'file',
        'file_sha256',
        'status',
        'created_at',
      ]),
    );
  if (r.undo.length) {
    parts.push(
      '<h3>Undo log</h3>',
      table(
        ['step', 'table', 'batches', 'rows', 'rolled back batches', 'restored', 'conflicts'],
        r.undo.map((u) => [u.stepNo + 1, u.step, u.batches, fmtInt(u.rows), u.rolledBack, fmtInt(u.restored), fmtInt(u.conflicts)]),
        [2, 3, 4, 5, 6],
      ),
    );
  }

  parts.push(sec(6, 'timings'));
  parts.push(
    `<figure id="batch-chart">${chart(b)}<figcaption>Bars: duration of each batch (left axis). Line: rows per second of batch time (right axis). Hover a bar for its key range.</figcaption></figure>`,
  );
  parts.push(
    '<h3>Stages</h3>',
    table(
      ['stage', 'started', 'duration', 'detail'],
      r.timings.stages.map((s) => [s.stage, s.startedAt ?? '', fmtMs(s.durationMs), s.detail]),
      [2],
    ),
  );
  parts.push(
    `<h3>Batches</h3>`,
    table(
      ['step', 'batch', 'keys', 'rows', 'changed', 'duration', 'rows/s', 'attempts'],
      b.map((x) => [
        x.stepNo + 1,
        x.batchNo,
        `${x.lo} – ${x.hi}`,
        fmtInt(x.rowsInRange),
        fmtInt(x.rowsChanged),
        fmtMs(x.durationMs),
        fmtInt(x.rowsPerSec),
        x.attempts,
      ]),
      [3, 4, 5, 6, 7],
      'batches',
    ),
  );
  parts.push(
    '<h3>Event log</h3>',
    table(
      ['elapsed', 'event', 'data'],
      r.timings.events.map((e) => [fmtMs(e.elapsedMs), e.type, short(e.data)]),
      [0],
    ),
  );

  parts.push(sec(7, 'aborts'));
  parts.push(
    r.aborts.length
      ? table(
          ['source', 'at', 'what', 'detail'],
          r.aborts.map((a) => [a.source, a.at ?? '', a.what, short(a.detail)]),
        )
      : '<p>None fired.</p>',
  );

  parts.push(sec(8, 'schema'), `<p class="note">${esc(r.schema.note)}</p>`);
  for (const t of r.schema.tables) {
    parts.push(`<h3>${esc(t.table)} <small class="note">${t.diff.differences ? `${t.diff.differences} difference(s)` : 'unchanged'}</small></h3>`);
    if (!t.after.exists && !t.before?.exists) {
      parts.push('<p class="note">The table does not exist.</p>');
      continue;
    }
    parts.push(
      diffTable(['column', 'type', 'not null', 'default'], t.diff.columns, (c) => [c.name, c.type, c.notNull ? 'yes' : '', c.default ?? ''], 'columns'),
    );
    parts.push(diffTable(['index', 'definition'], t.diff.indexes, (c) => [c.name, c.definition], 'indexes'));
    parts.push(
      diffTable(['constraint', 'type', 'definition'], t.diff.constraints, (c) => [c.name, CONSTRAINT_TYPES[c.type] ?? c.type, c.definition], 'constraints'),
    );
  }

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>belay report: ${esc(r.run.migrationId)} run ${r.run.id}</title>
<style>${CSS}</style>
</head>
<body><main>
${parts.join('\n')}
</main></body>
</html>
`;
}

/** A cell that is already HTML. */
interface Raw {
  html: string;
}
const raw = (html: string): Raw => ({ html });
const isRaw = (v: unknown): v is Raw => !!v && typeof v === 'object' && 'html' in (v as object);

function table(headers: string[], rows: unknown[][], numeric: number[] = [], id?: string): string {
  if (!rows.length) return '<p class="note">none</p>';
  const td = (v: unknown, i: number) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${isRaw(v) ? v.html : esc(v)}</td>`;
  return `<table${id ? ` data-table="${id}"` : ''}><thead><tr>${headers.map((h, i) => `<th${numeric.includes(i) ? ' class="num"' : ''}>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n')}</tbody></table>`;
}

function kv(rows: Array<[string, string]>): string {
  return `<table><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`).join('')}</tbody></table>`;
}

function diffTable<T>(headers: string[], rows: DiffRow<T>[], cells: (x: T) => unknown[], id: string): string {
  if (!rows.length) return `<p class="note">no ${id}</p>`;
  const label: Record<string, string> = { added: '+ added', removed: '− removed', changed: '~ changed', same: '' };
  return `<table data-table="${id}"><thead><tr>${[...headers, 'change'].map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>
${rows.map((d) => `<tr class="${d.change}">${[...cells((d.after ?? d.before)!), `${label[d.change]}${d.what.length ? `: ${d.what.join('; ')}` : ''}`].map((v) => `<td>${esc(v)}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`;
}

function short(v: unknown, max = 200): string {
  if (v === null || v === undefined) return '';
  const s = JSON.stringify(v);
  return s === '{}' ? '' : s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function sampleTable(rows: readonly unknown[]): string {
  const objs = rows.map((r) => (r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : { value: r }));
  const cols = [...new Set(objs.flatMap((o) => Object.keys(o)))];
  return table(
    cols,
    objs.map((o) => cols.map((c) => o[c])),
  );
}

function generic(rows: ReadonlyArray<Record<string, unknown>>, preferred: readonly string[]): string {
  const present = preferred.filter((c) => rows.some((r) => c in r));
  const cols = present.length ? present : Object.keys(rows[0] ?? {}).slice(0, 8);
  return table(
    cols,
    rows.map((r) =>
      cols.map((c) =>
        /bytes$/.test(c) && r[c] !== null && Number.isFinite(Number(r[c]))
          ? fmtBytes(Number(r[c]))
          : typeof r[c] === 'object' && r[c] !== null
            ? short(r[c])
            : r[c],
      ),
    ),
  );
}

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
        `<title>step ${b.stepNo + 1} batch ${b.batchNo}: keys ${esc(b.lo)}–${esc(b.hi)}, ${fmtInt(b.rowsInRange)} rows, ${fmtInt(b.rowsChanged)} changed, ${fmtMs(b.durationMs)}, ${fmtInt(b.rowsPerSec)} rows/s</title></rect>`,
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
