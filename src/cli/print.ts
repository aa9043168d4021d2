// Human-readable renderings of results, shared by commands.
import type { CheckReport } from '../checks/run-checks.ts';
import type { RollbackResult } from '../rollback/rollback.ts';
import { out } from './context.ts';
import type { RunResult } from '../contract.ts';

export function table(rows: Array<Record<string, unknown>>, cols: string[]): string {
  const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

export function printRunResult(r: RunResult): void {
  if (r.status === 'refused') {
    out.line(`refused: nothing ran${r.runId ? ` (run ${r.runId})` : ''}`);
    return;
  }
  out.line(`run ${r.runId} ${r.status}${r.resumed ? ' (resumed)' : ''} in ${(r.durationMs / 1000).toFixed(2)} s`);
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

export function printRollbackResult(r: RollbackResult): void {
  if (r.status === 'nothing-to-do') {
    out.line(`run ${r.runId} is already rolled back: nothing to do`);
    return;
  }
  out.line(`run ${r.runId} rolled back: ${r.restored} rows restored from ${r.batches} undo batches in ${(r.durationMs / 1000).toFixed(2)} s`);
  if (r.skippedIrreversible.length > 0) out.line(`left in place (irreversible, --skip-irreversible): ${r.skippedIrreversible.join(', ')}`);
  if (r.conflictCount > 0) {
    out.line(`${r.conflictCount} row(s) changed since the migration wrote them were left alone (use --force to overwrite):`);
    for (const c of r.conflicts.slice(0, 10)) out.line(`  ${c.table} batch ${c.batchNo}: keys ${JSON.stringify(c.keys.slice(0, 20))}`);
  }
}
