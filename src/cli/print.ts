// Human-readable renderings of results, shared by commands.
import type { CheckReport } from '../checks/run-checks.ts';
import type { RollbackResult } from '../rollback/rollback.ts';
import { out } from './context.ts';
import { paint, statusColour } from './style.ts';
import type { RunResult } from '../contract.ts';

/** Columns whose words are coloured by what they say (completed green, failed red, paused yellow …) on a terminal. */
const STATUS_COLUMNS = new Set(['status', 'severity', 'result']);

const isNumber = (v: unknown): v is number | bigint => (typeof v === 'number' && Number.isFinite(v)) || typeof v === 'bigint';

/**
 * A text table: numbers right-aligned and grouped in thousands (1,234,567), `ids` right-aligned as they are
 * (run 12345, not 12,345), text left-aligned; on a terminal the status words in colour.
 */
export function table(rows: Array<Record<string, unknown>>, cols: string[], opts: { ids?: string[]; stream?: { isTTY?: boolean } } = {}): string {
  const p = paint(opts.stream ?? process.stdout);
  const ids = new Set(opts.ids ?? []);
  // a column of numbers (and blanks or "-") is a number column
  const numeric = cols.map(
    (c) => rows.some((r) => isNumber(r[c])) && rows.every((r) => isNumber(r[c]) || r[c] === null || r[c] === undefined || r[c] === '-' || r[c] === ''),
  );
  const cell = (c: string, v: unknown) =>
    v === null || v === undefined
      ? ''
      : isNumber(v)
        ? ids.has(c)
          ? String(v)
          : v.toLocaleString('en-US')
        : typeof v === 'object'
          ? JSON.stringify(v)
          : String(v);
  const body = rows.map((r) => cols.map((c) => cell(c, r[c])));
  const widths = cols.map((c, i) => Math.max(c.length, ...body.map((b) => b[i]!.length)));
  const pad = (v: string, i: number) => (numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!));
  const line = (vals: string[], colour = false) =>
    vals
      .map((v, i) => {
        const padded = pad(v, i);
        return colour && STATUS_COLUMNS.has(cols[i]!) && v ? statusColour(p, v)(v) + padded.slice(v.length) : padded;
      })
      .join('  ')
      .trimEnd();
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...body.map((b) => line(b, true))].join('\n');
}

export function printRunResult(r: RunResult): void {
  if (r.status === 'refused') {
    out.line(`refused: nothing ran${r.runId ? ` (run ${r.runId})` : ''}`);
    return;
  }
  const p = paint(process.stdout);
  out.line(`run ${r.runId} ${statusColour(p, r.status)(r.status)}${r.resumed ? ' (resumed)' : ''} in ${(r.durationMs / 1000).toFixed(2)} s`);
  out.line(
    table(
      r.steps.map((s) => ({ step: s.name, kind: s.kind, status: s.status, rows: s.rowsDone, changed: s.rowsChanged, batches: s.batches })),
      ['step', 'kind', 'status', 'rows', 'changed', 'batches'],
    ),
  );
  out.line('row counts:');
  out.line(
    table(
      Object.keys(r.counts.before).map((t) => ({ table: t, before: r.counts.before[t], after: r.counts.after[t] })),
      ['table', 'before', 'after'],
    ),
  );
}

export function printCheckReport(r: CheckReport): void {
  out.line(`pre-flight of ${r.migrationId}: ${r.ok ? 'no blocking findings' : 'BLOCKED by errors'}`);
  // catalog facts are about the schema, not rows: no count
  out.line(
    table(
      r.findings.map((f) => ({ code: f.code, severity: f.severity, count: f.kind === 'catalog' ? '-' : f.count, message: f.message })),
      ['code', 'severity', 'count', 'message'],
    ),
  );
  for (const f of r.findings.filter((x) => x.kind === 'catalog' && x.severity !== 'info'))
    out.line(`\n${f.code}: ${f.message}${f.fix ? `\n  fix: ${f.fix}` : ''}`);
  for (const f of r.findings.filter((x) => x.count > 0 && x.severity !== 'info')) {
    out.line(`\n${f.code} (${f.count}): ${f.message}`);
    for (const s of f.sample.slice(0, 5)) out.line(`  ${JSON.stringify(s)}`);
    if (f.count > 5) out.line(`  … ${f.count - 5} more (--json lists up to the sample size)`);
    if (f.fix) out.line(`  fix: ${f.fix}`);
  }
}

/** `copies`: the in-database backups of the run (table → qualified copy), where rows deleted since still are. */
export function printRollbackResult(r: RollbackResult, copies: ReadonlyMap<string, string> = new Map()): void {
  if (r.status === 'nothing-to-do') {
    out.line(`run ${r.runId} is already rolled back: nothing to do`);
    return;
  }
  if (r.status === 'interrupted') {
    out.line(`rollback of run ${r.runId} stopped part-way: ${r.batches} undo batch(es) committed in this call, the run stays rolling_back`);
    return;
  }
  out.line(`run ${r.runId} rolled back: ${r.restored} rows restored from ${r.batches} undo batches in ${(r.durationMs / 1000).toFixed(2)} s`);
  if (r.skippedIrreversible.length > 0) out.line(`left in place (irreversible, --skip-irreversible): ${r.skippedIrreversible.join(', ')}`);
  const changed = r.conflicts.filter((c) => c.keys.length > 0);
  if (r.changedCount > 0) {
    out.line(`${r.changedCount} row(s) changed since the migration wrote them were left alone (--force overwrites them with their before-images):`);
    for (const c of changed.slice(0, 10)) out.line(`  ${c.table} batch ${c.batchNo}: keys ${JSON.stringify(c.keys.slice(0, 20))}`);
  }
  const deleted = r.conflicts.filter((c) => c.deleted.length > 0);
  if (r.deletedCount > 0) {
    // --force updates rows in place: a deleted row has no place left, so it is never the advice here
    out.line(`${r.deletedCount} row(s) deleted since the migration wrote them could not be restored (not even with --force: nothing is left to update):`);
    for (const c of deleted.slice(0, 10)) out.line(`  ${c.table} batch ${c.batchNo}: keys ${JSON.stringify(c.deleted.slice(0, 20))}`);
    const tables = [...new Set(deleted.map((c) => c.table))];
    const where = tables.map((t) => copies.get(t) ?? copies.get(t.replace(/"/g, ''))).filter((x): x is string => !!x);
    out.line(
      where.length > 0
        ? `  the run's backup holds them as the run found them (${where.join(', ')}): put them back from there if they must come back, or restore the table with belay backups restore`
        : '  this run has no backup of them: bring them back from your own backup if they must come back',
    );
  }
}
