// The HTML report: one self-contained file (inline CSS, inline SVG, no script, no external URL). It opens
// with the same one-screen summary as the Markdown, keeps each section's detail in <details>, and fits a
// 1280 px window: long values (checksums, SQL, keys) wrap inside their cells instead of widening the page.
import { BATCH_COLUMNS, batchCells, glance, type Line, slowestBatches } from './glance.ts';
import { chart } from './html-chart.ts';
import { CONSTRAINT_TYPES, fmtBytes, fmtInt, fmtMs, plainData, REPORT_SECTIONS } from './markdown.ts';
import { migrationPath, projectRoot, relativePaths } from './project-path.ts';
import type { BatchTiming, RunReport } from './report.ts';
import type { DiffRow, TableDiff } from './schema-snapshot.ts';

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
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: var(--soft); font-weight: 600; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: normal; }
code, pre { font: 12px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; overflow-wrap: anywhere; }
pre { background: var(--soft); padding: 10px; border-radius: 6px; white-space: pre-wrap; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-weight: 600; font-size: 12px; color: #fff; background: var(--muted); }
.status-completed { background: var(--ok); } .status-failed, .status-rolling_back { background: var(--bad); } .status-paused, .status-rolled_back { background: var(--warn); }
.sev-error { color: var(--bad); font-weight: 600; } .sev-warn { color: var(--warn); font-weight: 600; } .sev-info { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; } .card b { display: block; font-size: 20px; } .card span { color: var(--muted); font-size: 12px; }
.glance { display: grid; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); gap: 0 24px; }
.glance ul { margin: 4px 0 8px; padding-left: 20px; }
tr.added td { background: #dafbe1; } tr.removed td { background: #ffebe9; text-decoration: line-through; } tr.changed td { background: #fff8c5; }
.note { color: var(--muted); font-style: italic; }
details { margin: 6px 0 10px; } summary { cursor: pointer; color: var(--muted); }
figure { margin: 8px 0 16px; } figcaption { color: var(--muted); font-size: 12px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
`;

export function renderReportHtml(r: RunReport): string {
  const root = projectRoot(r.run.file);
  const sec = (n: number, id: string) => `<h2 id="${id}">${n + 1}. ${esc(REPORT_SECTIONS[n])}</h2>`;
  const changed = r.steps.reduce((n, s) => n + s.rowsChanged, 0);
  const b = r.timings.batches;
  const batchMs = b.reduce((n, x) => n + x.durationMs, 0);
  const g = glance(r);
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
  parts.push(`<p>${line(g.headline)}</p>`);
  parts.push(
    `<div class="glance" id="glance">${(
      [
        ['What changed', g.changed],
        ['What blocked or was left out', g.blocked],
        ['How to undo', g.undo],
      ] as const
    )
      .map(([h, ls]) => `<div><h3>${esc(h)}</h3><ul>${ls.map((l) => `<li>${line(l)}</li>`).join('')}</ul></div>`)
      .join('')}</div>`,
  );
  parts.push(
    kv([
      ['Migration file', r.run.file ? migrationPath(r.run.file) : ''],
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
  for (const s of r.steps.filter((x) => x.sql)) parts.push(fold(`Step ${s.stepNo + 1} ${s.name}: its SQL`, `<pre>${esc(s.sql)}</pre>`));

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
  if (r.verification.rounds.length)
    parts.push(
      table(
        ['round', 'source', 'at', 'result', 'checks', 'failed'],
        r.verification.rounds.map((x) => [x.round, x.source, x.at, x.ok ? 'pass' : raw('<span class="sev-error">fail</span>'), x.checks, x.failed.join(', ')]),
        [0, 4],
        'rounds',
      ),
      fold(
        `Every check of every round (${r.verification.results.length}), by round`,
        table(
          ['round', 'check', 'kind', 'result', 'rows', 'threshold', 'meaning'],
          r.verification.results.map((x) => [
            x.round === null || x.round === undefined ? '' : `${x.round} (${String(x.source)})`,
            x.name,
            x.kind,
            x.result === 'pass' ? 'pass' : raw(`<span class="sev-error">${esc(x.result)}</span>`),
            x.count,
            x.threshold ?? '',
            x.message,
          ]),
          [4, 5],
          'verification',
        ),
      ),
    );

  parts.push(sec(5, 'backups'), `<p class="note">${esc(r.backups.note)}</p>`);
  if (r.backups.rows.length)
    parts.push(
      table(
        ['table', 'copy', 'rows', 'size', 'checksum', 'file', 'status'],
        relativePaths(r.backups.rows, root).map((x) => [
          String(x.source_table ?? x.table ?? ''),
          x.copy_table ? `${String(x.copy_schema ?? 'belay_backup')}.${String(x.copy_table)}` : '',
          fmtInt(Number(x.row_count ?? x.rows)),
          x.size_bytes === null || x.size_bytes === undefined ? '' : fmtBytes(Number(x.size_bytes)),
          raw(`<code>${esc(x.checksum)}</code>`),
          x.file ? raw(`<code>${esc(x.file)}</code>`) : 'none',
          x.status,
        ]),
        [2, 3],
        'backups',
      ),
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
  if (b.length)
    parts.push(
      `<h3>The ${Math.min(10, b.length)} slowest batches</h3>`,
      batchTable(slowestBatches(b), 'slowest-batches'),
      fold(`Every batch (${b.length}), in commit order`, batchTable(b, 'batches')),
    );
  parts.push(
    fold(
      `Event log (${r.timings.events.length} events)`,
      table(
        ['elapsed', 'event', 'data'],
        r.timings.events.map((e) => [fmtMs(e.elapsedMs), e.type, plainData(relativePaths(e.data, root))]),
        [0],
        'events',
      ),
    ),
  );

  parts.push(sec(7, 'aborts'));
  parts.push(
    r.aborts.length
      ? table(
          ['source', 'at', 'what', 'detail'],
          r.aborts.map((a) => [a.source, a.at ?? '', a.what, plainData(relativePaths(a.detail, root))]),
        )
      : '<p>None fired.</p>',
  );

  parts.push(sec(8, 'schema'), `<p class="note">${esc(r.schema.note)}</p>`);
  const same = r.schema.tables.filter((t) => t.diff.differences === 0);
  if (same.length)
    parts.push(
      `<p>Unchanged: ${same.map((t) => `<code>${esc(t.table)}</code>`).join(', ')}${r.schema.source === 'snapshot' ? ' (columns, indexes and constraints as before the run)' : ''}.</p>`,
    );
  for (const t of r.schema.tables.filter((x) => x.diff.differences > 0)) {
    parts.push(`<h3>${esc(t.table)} <small class="note">${t.diff.differences} difference(s)</small></h3>`);
    if (t.diff.change !== 'same') parts.push(`<p>The table was ${esc(t.diff.change)}.</p>`);
    parts.push(
      schemaTables(t.diff, (d) => d.change !== 'same'),
      fold(
        `The whole of ${t.table} after the run`,
        schemaTables(t.diff, () => true, 'all-'),
      ),
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

function line(l: Line): string {
  return l.map((s) => (typeof s === 'string' ? esc(s) : 'code' in s ? `<code>${esc(s.code)}</code>` : `<b>${esc(s.strong)}</b>`)).join('');
}

function fold(summary: string, body: string): string {
  return `<details><summary>${esc(summary)}</summary>${body}</details>`;
}

function table(headers: string[], rows: unknown[][], numeric: number[] = [], id?: string): string {
  if (!rows.length) return '<p class="note">none</p>';
  const td = (v: unknown, i: number) => `<td${numeric.includes(i) ? ' class="num"' : ''}>${isRaw(v) ? v.html : esc(v)}</td>`;
  return `<table${id ? ` data-table="${id}"` : ''}><thead><tr>${headers.map((h, i) => `<th${numeric.includes(i) ? ' class="num"' : ''}>${esc(h)}</th>`).join('')}</tr></thead>
<tbody>${rows.map((r) => `<tr>${r.map(td).join('')}</tr>`).join('\n')}</tbody></table>`;
}

function kv(rows: Array<[string, string]>): string {
  return `<table><tbody>${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`).join('')}</tbody></table>`;
}

function batchTable(b: readonly BatchTiming[], id: string): string {
  return table(BATCH_COLUMNS, b.map(batchCells), [3, 4, 5, 6, 7], id);
}

/** A table's columns, indexes and constraints, the diff rows `keep` selects; `prefix` tells the folded copy apart. */
function schemaTables(d: TableDiff, keep: (x: DiffRow<unknown>) => boolean, prefix = ''): string {
  return [
    diffTable(
      ['column', 'type', 'not null', 'default'],
      d.columns.filter(keep),
      (c) => [c.name, c.type, c.notNull ? 'yes' : '', c.default ?? ''],
      `${prefix}columns`,
    ),
    diffTable(['index', 'definition'], d.indexes.filter(keep), (c) => [c.name, c.definition], `${prefix}indexes`),
    diffTable(
      ['constraint', 'type', 'definition'],
      d.constraints.filter(keep),
      (c) => [c.name, CONSTRAINT_TYPES[c.type] ?? c.type, c.definition],
      `${prefix}constraints`,
    ),
  ]
    .filter(Boolean)
    .join('\n');
}

function diffTable<T>(headers: string[], rows: DiffRow<T>[], cells: (x: T) => unknown[], id: string): string {
  if (!rows.length) return '';
  const label: Record<string, string> = { added: '+ added', removed: '− removed', changed: '~ changed', same: '' };
  return `<table data-table="${id}"><thead><tr>${[...headers, 'change'].map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>
${rows.map((d) => `<tr class="${d.change}">${[...cells((d.after ?? d.before)!), `${label[d.change]}${d.what.length ? `: ${d.what.join('; ')}` : ''}`].map((v) => `<td>${esc(v)}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`;
}

function sampleTable(rows: readonly unknown[]): string {
  const objs = rows.map((r) => (r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : { value: r }));
  const cols = [...new Set(objs.flatMap((o) => Object.keys(o)))];
  return table(
    cols,
    objs.map((o) => cols.map((c) => o[c])),
  );
}
