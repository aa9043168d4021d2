// Terminal renderings of a check report and a deploy plan: what a developer reads in CI.
import { DELETE_BATCH_ROWS } from './batched-delete.ts';
import type { PrismaCheckReport } from './check.ts';
import type { PrismaDeployResult } from './deploy.ts';
import type { Finding } from './types.ts';

const where = (f: Finding) =>
  [f.migration, f.line ? `line ${f.line}${f.column ? `:${f.column}` : ''}` : null, f.statement ? `statement ${f.statement}` : null].filter(Boolean).join(', ');

export function renderCheck(r: PrismaCheckReport, opts: { info?: boolean } = {}): string {
  const out: string[] = [];
  const s = r.status;
  out.push(
    `belay prisma check ${r.dir} (schema ${r.schema}): ${s.applied.length} applied, ${s.pending.length} pending${s.failed.length ? `, ${s.failed.length} FAILED` : ''}`,
  );
  for (const name of s.pending) out.push(`  pending  ${name}`);
  const shown = r.findings.filter((f) => opts.info || f.severity !== 'info');
  const errors = r.findings.filter((f) => f.severity === 'error').length;
  const warnings = r.findings.filter((f) => f.severity === 'warning').length;
  for (const f of shown) {
    out.push('', `${f.severity.toUpperCase()} ${f.code}${f.count !== null ? ` (${f.count})` : ''}${f.sqlstate ? ` [SQLSTATE ${f.sqlstate}]` : ''}`);
    if (where(f)) out.push(`  at ${where(f)}`);
    if (f.sql) out.push(`  ${f.sql}`);
    out.push(`  ${f.message}`);
    for (const row of f.sample.slice(0, 5)) out.push(`    ${JSON.stringify(row)}`);
    if (f.count !== null && f.count > Math.min(5, f.sample.length) && f.sample.length)
      out.push(`    … ${f.count - Math.min(5, f.sample.length)} more (--json lists up to --sample)`);
    out.push(`  fix: ${f.fix}${f.deployFixes && !f.fix.includes('belay prisma deploy') ? ' (belay prisma deploy does this)' : ''}`);
  }
  const locks = r.migrations.flatMap((m) => m.locks.filter((h) => h.oid && h.blocks !== 'nothing').map((h) => ({ m: m.name, h })));
  if (locks.length) {
    out.push('', 'locks on existing tables (held until the end of their transaction):');
    for (const { m, h } of locks) {
      out.push(`  ${m}: ${h.mode} on "${h.table}", statements ${h.from}–${h.until}, about ${fmtMs(h.estimateMs)}; blocks ${h.blocks}`);
    }
  }
  out.push(
    '',
    r.ok
      ? `no statement is predicted to fail (${warnings} warning(s)) in ${fmtMs(r.durationMs)}`
      : `BLOCKED: ${errors} statement(s) predicted to fail, ${warnings} warning(s), in ${fmtMs(r.durationMs)}`,
  );
  return out.join('\n');
}

const PHASES = {
  batched: 'first, as belay batched steps (each batch one transaction with its undo log)',
  before: 'before the transaction',
  transaction: 'in one transaction, with its _prisma_migrations row',
  after: 'after the commit',
} as const;

export function renderPlan(r: PrismaDeployResult): string {
  const out: string[] = [];
  if (r.plans.length === 0) return 'nothing to deploy: every migration is applied';
  for (const p of r.plans) {
    out.push(`${p.name} (checksum ${p.checksum.slice(0, 12)}…)`);
    for (const phase of ['batched', 'before', 'transaction', 'after'] as const) {
      const steps = p.steps.filter((s) => s.phase === phase);
      if (!steps.length) continue;
      out.push(`  ${PHASES[phase]}:`);
      for (const s of steps) {
        out.push(`    ${s.statement ? `[${s.statement}] ` : ''}${s.sql.replace(/\s*\n\s*/g, ' ').slice(0, 200)}`);
        if (s.why) out.push(`        ${s.why}`);
        if (s.deleted)
          out.push(`        in batches of ${DELETE_BATCH_ROWS}: DELETE FROM ${s.deleted.relation} WHERE ${s.deleted.where ?? 'true'} (by ${s.deleted.key})`);
        if (s.batched) out.push(`        as belay decides it: ${s.batched.decide.replace(/\s*\n\s*/g, ' ').slice(0, 300)}`);
      }
    }
  }
  return out.join('\n');
}

export function renderDeploy(r: PrismaDeployResult): string {
  if (r.planOnly) return renderPlan(r);
  if (r.applied.length === 0) return 'nothing to deploy: every migration is applied';
  return [
    ...r.applied.map(
      (a) =>
        `applied ${a.name} in ${fmtMs(a.durationMs)}${a.attempts > 1 ? ` (${a.attempts} attempts)` : ''}` +
        (a.belayRuns.length ? `; batched UPDATE(s) in belay run(s) ${a.belayRuns.join(', ')} (belay report <run>)` : '') +
        (a.deletedRowsKept.length ? `; the rows its batched DELETE(s) deleted are kept in ${a.deletedRowsKept.join(', ')}` : ''),
    ),
    `${r.applied.length} migration(s) applied and recorded in _prisma_migrations in ${fmtMs(r.durationMs)}`,
  ].join('\n');
}

const fmtMs = (ms: number) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
