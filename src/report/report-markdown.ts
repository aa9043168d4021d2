// The report as Markdown: one screen of summary (what changed, what blocked, how to undo), then each
// section with its detail folded in <details>, which GitHub and most viewers open on a click.
import { BATCH_COLUMNS, batchCells, glance, type Line, slowestBatches } from './glance.ts';
import { CONSTRAINT_TYPES, code, details, fence, fmtBytes, fmtInt, fmtMs, mdTable, plainData, REPORT_SECTIONS } from './markdown.ts';
import { migrationPath, projectRoot, relativePaths } from './project-path.ts';
import type { BatchTiming, RunReport } from './report.ts';
import type { DiffRow, TableDiff } from './schema-snapshot.ts';
import { batchTextChart } from './text-chart.ts';

const mark: Record<string, string> = { added: '➕ added', removed: '➖ removed', changed: '✏️ changed', same: '' };

/**
 * Past this many batches REPORT.md lists none of them one by one (the HTML report and the JSON still do):
 * a run of a million rows has thousands, and a Markdown file pasted into a pull request or a ticket must
 * stay within what those accept (GitHub: 65,536 characters).
 */
export const DEFAULT_LISTED_BATCHES = 250;

export interface MarkdownReportOptions {
  /** Batches listed one by one (folded) at most; default DEFAULT_LISTED_BATCHES. */
  listBatches?: number;
}

export function renderReportMarkdown(r: RunReport, opts: MarkdownReportOptions = {}): string {
  const root = projectRoot(r.run.file);
  const out: string[] = [];
  const h2 = (n: number) => out.push('', `## ${n + 1}. ${REPORT_SECTIONS[n]}`, '');
  out.push(`# Report: ${r.run.migrationId}, run ${r.run.id}`);

  h2(0);
  const g = glance(r);
  out.push(line(g.headline), '');
  out.push(
    mdTable(
      ['', ''],
      [
        ['Migration file', r.run.file ? code(migrationPath(r.run.file)) : ''],
        ['Checksum', code(r.run.checksum)],
        [
          'Parameters',
          Object.entries(r.run.params)
            .map(([k, v]) => `${k}=${v}`)
            .join(', ') || 'none',
        ],
        ['Run', `${r.run.mode}, started ${r.run.startedAt}, ${r.run.finishedAt ? `finished ${r.run.finishedAt}` : 'not finished'}`],
        ['Report made', r.generatedAt],
      ],
    ),
  );
  out.push('', '**What changed**', '', ...g.changed.map(bullet));
  out.push('', '**What blocked or was left out**', '', ...g.blocked.map(bullet));
  out.push('', '**How to undo**', '', ...g.undo.map(bullet));

  h2(1);
  out.push(r.purpose, '');
  out.push(
    mdTable(
      ['#', 'step', 'kind', 'table', 'writes', 'status', 'rows scanned', 'rows changed', 'reversible'],
      r.steps.map((s) => [
        s.stepNo + 1,
        s.name,
        s.kind,
        s.table ? code(s.table) : '',
        (s.writes ?? []).map((w) => code(w)).join(', '),
        s.status,
        s.rowsTotal === null ? '' : fmtInt(s.rowsDone),
        fmtInt(s.rowsChanged),
        s.reversible ? 'yes' : '**no**',
      ]),
    ),
  );
  for (const s of r.steps.filter((x) => x.sql)) out.push('', ...details(`Step ${s.stepNo + 1} ${s.name}: its SQL`, [fence(s.sql!, 'sql')]));

  h2(2);
  out.push(
    mdTable(
      ['table', 'before', 'after', 'difference'],
      r.counts.map((c) => [
        code(c.table),
        fmtInt(c.before),
        fmtInt(c.after),
        c.delta === null ? '' : c.delta === 0 ? '0' : `**${c.delta > 0 ? '+' : ''}${fmtInt(c.delta)}**`,
      ]),
    ),
  );

  h2(3);
  out.push(`_${r.issues.note}_`, '');
  out.push(
    mdTable(
      ['code', 'severity', 'rows', 'meaning', 'what to do'],
      r.issues.findings.map((f) => [code(f.code), f.severity, fmtInt(f.count), f.message, f.fix ?? '']),
    ),
  );
  const sampled = r.issues.findings.filter((x) => x.count > 0 && x.sample.length);
  if (sampled.length)
    out.push(
      '',
      ...details(
        `Sample rows of ${sampled.length} finding(s)`,
        sampled.flatMap((f) => [
          `### ${f.code}: ${fmtInt(f.count)} row(s)`,
          '',
          `${f.message}. Sample (${f.sample.length} of ${fmtInt(f.count)}):`,
          '',
          sampleTable(f.sample),
          '',
        ]),
      ),
    );
  const conflicts = r.undo.filter((u) => u.conflicts > 0);
  if (conflicts.length)
    out.push(
      '',
      '### Rollback conflicts',
      '',
      mdTable(
        ['step', 'rows left alone'],
        conflicts.map((u) => [u.step, fmtInt(u.conflicts)]),
      ),
    );

  h2(4);
  out.push(`_${r.verification.note}_`);
  if (r.verification.rounds.length) {
    out.push(
      '',
      mdTable(
        ['round', 'source', 'at', 'result', 'checks', 'failed'],
        r.verification.rounds.map((x) => [x.round, x.source, x.at, x.ok ? 'pass' : '**fail**', x.checks, x.failed.map((n) => code(n)).join(', ')]),
      ),
      '',
      ...details(`Every check of every round (${r.verification.results.length}), by round`, [
        mdTable(
          ['round', 'check', 'kind', 'result', 'rows', 'threshold', 'meaning'],
          r.verification.results.map((x) => [
            roundLabel(x),
            x.name,
            x.kind,
            x.result === 'pass' ? 'pass' : `**${String(x.result)}**`,
            x.count,
            x.threshold ?? '',
            x.message,
          ]),
        ),
      ]),
    );
  }

  h2(5);
  out.push(`_${r.backups.note}_`, '');
  if (r.backups.rows.length)
    out.push(
      mdTable(
        ['table', 'copy', 'rows', 'size', 'checksum', 'file', 'status'],
        relativePaths(r.backups.rows, root).map((x) => [
          code(String(x.source_table ?? x.table ?? '')),
          x.copy_table ? code(`${String(x.copy_schema ?? 'belay_backup')}.${String(x.copy_table)}`) : '',
          fmtInt(Number(x.row_count ?? x.rows)),
          x.size_bytes === null || x.size_bytes === undefined ? '' : fmtBytes(Number(x.size_bytes)),
          code(String(x.checksum ?? '')),
          x.file ? code(String(x.file)) : 'none',
          x.status,
        ]),
      ),
    );
  if (r.undo.length) {
    out.push('', 'Undo log (before-images kept in schema `belay`):', '');
    out.push(
      mdTable(
        ['step', 'name', 'batches', 'rows', 'rolled back batches', 'restored', 'conflicts'],
        r.undo.map((u) => [u.stepNo + 1, u.step, u.batches, fmtInt(u.rows), u.rolledBack, fmtInt(u.restored), fmtInt(u.conflicts)]),
      ),
    );
  }

  h2(6);
  out.push(
    mdTable(
      ['stage', 'started', 'duration', 'detail'],
      r.timings.stages.map((s) => [s.stage, s.startedAt ?? '', fmtMs(s.durationMs), s.detail]),
    ),
  );
  const b = r.timings.batches;
  out.push('', '### Batches', '');
  if (b.length) {
    const ms = b.map((x) => x.durationMs).sort((x, y) => x - y);
    const rows = b.reduce((n, x) => n + x.rowsInRange, 0);
    const time = ms.reduce((n, x) => n + x, 0);
    const cut = r.timings.events.filter((e) => e.type === 'batch-over-ceiling').length;
    out.push(
      `${b.length} batches, ${fmtInt(rows)} rows in ${fmtMs(time)} of batch time (${fmtInt((rows * 1000) / (time || 1))} rows/s); ` +
        `batch time median ${fmtMs(ms[Math.floor(ms.length / 2)])}, slowest ${fmtMs(ms[ms.length - 1])}` +
        `${cut ? `; ${cut} attempt(s) ran past the target duration, were rolled back and split (batch-over-ceiling in the event log)` : ''}.`,
      '',
      fence(batchTextChart(b.map((x) => x.durationMs)).join('\n'), 'text'),
      '',
      `The ${Math.min(10, b.length)} slowest:`,
      '',
      batchTable(slowestBatches(b)),
      '',
      ...(b.length <= (opts.listBatches ?? DEFAULT_LISTED_BATCHES)
        ? details(`Every batch (${b.length}), in commit order`, [batchTable(b)])
        : [
            `Every batch (${b.length}) is listed in the HTML report (${code(`belay report ${r.run.id} --format html`)}) and in ${code(`belay report ${r.run.id} --format json`)}.`,
          ]),
    );
  } else out.push('No batches were committed in this run.');
  const events = r.timings.events;
  out.push(
    '',
    ...details(`Event log (${events.length} events)`, [
      mdTable(
        ['elapsed', 'event', 'data'],
        events.map((e) => [fmtMs(e.elapsedMs), e.type, plainData(relativePaths(e.data, root))]),
      ),
    ]),
  );

  h2(7);
  out.push(
    r.aborts.length
      ? mdTable(
          ['source', 'at', 'what', 'detail'],
          r.aborts.map((a) => [a.source, a.at ?? '', a.what, plainData(relativePaths(a.detail, root))]),
        )
      : 'None fired.',
  );

  h2(8);
  out.push(`_${r.schema.note}_`);
  const same = r.schema.tables.filter((t) => t.diff.differences === 0);
  if (same.length)
    out.push(
      '',
      `Unchanged: ${same.map((t) => code(t.table)).join(', ')}${r.schema.source === 'snapshot' ? ' (columns, indexes and constraints as before the run)' : ''}.`,
    );
  for (const t of r.schema.tables.filter((x) => x.diff.differences > 0)) {
    out.push('', `### ${t.table} — ${t.diff.differences} difference(s)`, '');
    if (t.diff.change !== 'same') out.push(`The table was ${t.diff.change}.`, '');
    out.push(
      ...schemaTables(t.diff, (d) => d.change !== 'same'),
      '',
      ...details(
        `The whole of ${t.table} after the run`,
        schemaTables(t.diff, () => true),
      ),
    );
  }
  return `${out.join('\n')}\n`;
}

function line(l: Line): string {
  return l.map((s) => (typeof s === 'string' ? s : 'code' in s ? code(s.code) : `**${s.strong}**`)).join('');
}

function bullet(l: Line): string {
  return `- ${line(l)}`;
}

function roundLabel(x: Record<string, unknown>): string {
  return x.round === null || x.round === undefined ? '' : `${x.round} (${String(x.source)})`;
}

function batchTable(b: readonly BatchTiming[]): string {
  return mdTable(BATCH_COLUMNS, b.map(batchCells));
}

/** Columns, indexes and constraints of a table's diff, the rows `keep` selects. */
function schemaTables(d: TableDiff, keep: (x: DiffRow<unknown>) => boolean): string[] {
  const out: string[] = [];
  const cols = d.columns.filter(keep);
  const idx = d.indexes.filter(keep);
  const cons = d.constraints.filter(keep);
  if (cols.length)
    out.push(
      '**Columns**',
      '',
      mdTable(
        ['column', 'type', 'not null', 'default', 'change'],
        cols.map((c) => {
          const x = c.after ?? c.before!;
          return [code(c.name), x.type, x.notNull ? 'yes' : '', x.default ?? '', changeText(c)];
        }),
      ),
      '',
    );
  if (idx.length)
    out.push(
      '**Indexes**',
      '',
      mdTable(
        ['index', 'definition', 'change'],
        idx.map((c) => [code(c.name), (c.after ?? c.before!).definition, changeText(c)]),
      ),
      '',
    );
  if (cons.length)
    out.push(
      '**Constraints**',
      '',
      mdTable(
        ['constraint', 'type', 'definition', 'change'],
        cons.map((c) => {
          const x = c.after ?? c.before!;
          return [code(c.name), CONSTRAINT_TYPES[x.type] ?? x.type, x.definition, changeText(c)];
        }),
      ),
      '',
    );
  if (out[out.length - 1] === '') out.pop();
  return out;
}

export function changeText<T>(d: DiffRow<T>): string {
  return d.change === 'same' ? '' : `${mark[d.change]}${d.what.length ? `: ${d.what.join('; ')}` : ''}`;
}

/** Sample rows as a table with the union of their keys. */
export function sampleTable(rows: readonly unknown[]): string {
  const objs = rows.map((r) => (r && typeof r === 'object' && !Array.isArray(r) ? (r as Record<string, unknown>) : { value: r }));
  const cols = [...new Set(objs.flatMap((o) => Object.keys(o)))];
  return mdTable(
    cols,
    objs.map((o) => cols.map((c) => o[c])),
  );
}
