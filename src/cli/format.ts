// Human summaries of plans, dry runs and rehearsals (the CLI prints these; --json prints the objects).
import type { DryRunResult } from '../run/dry-run.ts';
import type { Plan } from '../plan/plan.ts';
import type { RehearseResult } from '../run/rehearse.ts';

const secs = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(0)} s` : `${(ms / 1000).toFixed(2)} s`);
const bytes = (n: number) =>
  n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.round(n / 1024)} kB`;

export function formatPlan(p: Plan): string[] {
  const lines = [`plan for ${p.migration.id} (checksum ${p.migration.checksum.slice(0, 12)}) on ${p.database.label}`, 'tables:'];
  for (const t of p.tables) lines.push(`  ${t.name}: ${t.rows} rows (${t.rowsMethod}), table ${bytes(t.tableBytes)}, indexes ${bytes(t.indexBytes)}`);
  lines.push('steps:');
  for (const s of p.steps) {
    if (s.kind === 'sql') {
      lines.push(`  ${s.name}: plain SQL${s.note ? ` (${s.note})` : ''}`);
      continue;
    }
    const r = s.rates ? `${Math.round(s.rates.low)}–${Math.round(s.rates.high)} rows/s (median ${Math.round(s.rates.mid)})` : 'not calibrated';
    lines.push(
      `  ${s.name}: ${s.rows} rows of ${s.table}, ${r} over ${s.samples.length} rolled-back batch(es), ${secs(s.estimateMs.low)}–${secs(s.estimateMs.high)}`,
    );
    for (const f of s.seqScans) {
      lines.push(`    sequential scan over ${f.table} (${f.rows} rows)${f.condition ? ` for ${f.condition}` : ''}`);
      if (f.proposedIndex)
        lines.push(
          `    proposed temporary index: tempIndexes: [{ name: '${f.proposedIndex.name}', table: '${f.proposedIndex.table}', columns: '${f.proposedIndex.columns}' }]`,
        );
      else if (f.servedBy) lines.push(`    no index proposed: ${f.servedBy} is led by a column it uses`);
    }
    if (s.note) lines.push(`    ${s.note}`);
  }
  const notes = (p.catalog ?? []).flatMap((c) => c.notes);
  if (notes.length) {
    lines.push('what the database does on these writes (from the catalog):');
    for (const n of notes) lines.push(`  ${n.severity.padEnd(5)} ${n.code}: ${n.message}`);
  }
  lines.push(
    `mode: ${p.mode === 'single' ? 'one transaction (the whole change fits in one batch of the target duration)' : `batches of ${p.batchSize} rows to start (each under ${p.targetBatchMs} ms: sized below it, adapted while running)`}`,
  );
  lines.push(
    `expected time: ${secs(p.estimate.lowMs)} – ${secs(p.estimate.highMs)} (midpoint ${secs(p.estimate.midMs)}, from ${p.estimate.source}; one commit ${p.commitMs.toFixed(1)} ms, throttle checks ${(p.throttleMs ?? 0).toFixed(1)} ms per batch)`,
  );
  return lines;
}

export function formatDryRun(r: DryRunResult, sample = 5): string[] {
  const lines = [`dry run of ${r.migrationId} on ${r.database}: ${r.ok ? 'PASS' : 'FAIL'} in ${secs(r.durationMs)}; every batch was rolled back`];
  lines.push('pre-flight (counts per category):');
  for (const f of r.checks.findings) lines.push(`  ${f.code.padEnd(24)} ${String(f.count).padStart(9)}  ${f.severity.padEnd(5)} ${f.message}`);
  for (const s of r.steps) {
    if (s.kind === 'sql') {
      lines.push(`step ${s.name} (plain SQL): ${s.error ? `FAILS: ${s.error}` : `runs (${s.ms.toFixed(0)} ms, rolled back)`}`);
      continue;
    }
    const ms = s.batches.map((b) => b.ms);
    lines.push(
      `step ${s.name}: ${s.rowsChanged} of ${s.rowsInRange} rows would change, ${s.batches.length} batches, ${ms.length ? `${Math.min(...ms).toFixed(0)}–${Math.max(...ms).toFixed(0)} ms each, ${secs(s.ms)} in all` : 'no rows'}`,
    );
    for (const x of s.sample.slice(0, sample)) lines.push(`  ${String(x.key)}: ${JSON.stringify(x.before)} → ${JSON.stringify(x.after)}`);
    for (const v of s.verifyFailures.slice(0, 5))
      lines.push(`  batch ${v.batchNo}: ${v.name} returned ${v.count} row(s): ${JSON.stringify(v.sample.slice(0, 2))}`);
  }
  const conflicts = r.checks.findings.filter((f) => f.count > 0 && f.severity !== 'info');
  if (conflicts.length > 0) {
    lines.push('reported and left alone:');
    for (const f of conflicts)
      lines.push(
        `  ${f.code} (${f.count}): ${f.sample
          .slice(0, 2)
          .map((x) => JSON.stringify(x))
          .join(' ')}`,
      );
  }
  return lines;
}

export function formatRehearsal(r: RehearseResult): string[] {
  const lines = [`rehearsal of ${r.migrationId} (checksum ${r.checksum.slice(0, 12)}): ${r.pass ? 'PASS' : `FAIL: ${r.reason}`}`];
  if (r.apply)
    lines.push(
      `  apply: run ${r.apply.runId} ${r.apply.status}, ${r.apply.steps.reduce((n, s) => n + s.rowsChanged, 0)} rows changed in ${secs(r.apply.durationMs)}`,
    );
  for (const v of r.verify) lines.push(`  verify ${v.name}: ${v.rows === 0 ? 'pass' : `${v.rows} row(s)`}`);
  if (r.rollback) lines.push(`  rollback: ${r.rollback.restored} rows restored, ${r.rollback.conflictCount} conflicts`);
  lines.push('  table checksums (rows:sum) before → after the rollback:');
  for (const t of r.tables)
    lines.push(
      `    ${t.same ? 'same' : 'DIFF'}  ${t.table}: ${t.before.rows}:${t.before.checksum} → ${t.after ? `${t.after.rows}:${t.after.checksum}` : '(unreadable)'}`,
    );
  return lines;
}
