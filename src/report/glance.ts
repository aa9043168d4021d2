// The report's first screen, as data both renderers draw: what the run changed, what blocked it or was
// left out, and how to undo it. Everything else in the report is the detail behind these lines.
import { fmtInt, fmtMs } from './markdown.ts';
import type { BatchTiming, RunReport } from './report.ts';

/** A piece of a line: text, `code`, or **strong** (each renderer marks them its own way). */
export type Seg = string | { code: string } | { strong: string };
export type Line = Seg[];

export interface Glance {
  headline: Line;
  changed: Line[];
  blocked: Line[];
  undo: Line[];
}

const c = (code: string): Seg => ({ code });
const b = (strong: string): Seg => ({ strong });

/** The slowest batches, slowest first (ties in commit order): the ones a reader looks at. */
/** The columns of a table of batches, in the Markdown report and the HTML one alike. */
export const BATCH_COLUMNS = ['step', 'batch', 'keys', 'rows', 'changed', 'duration', 'rows/s', 'attempts'];

/** One batch as the cells of BATCH_COLUMNS. */
export function batchCells(x: BatchTiming): Array<string | number> {
  return [x.stepNo + 1, x.batchNo, `${x.lo} – ${x.hi}`, fmtInt(x.rowsInRange), fmtInt(x.rowsChanged), fmtMs(x.durationMs), fmtInt(x.rowsPerSec), x.attempts];
}

export function slowestBatches(batches: readonly BatchTiming[], n = 10): BatchTiming[] {
  return batches
    .map((x, i) => ({ x, i }))
    .sort((p, q) => q.x.durationMs - p.x.durationMs || p.i - q.i)
    .slice(0, n)
    .map((p) => p.x);
}

export function glance(r: RunReport): Glance {
  const changedRows = r.steps.reduce((n, s) => n + s.rowsChanged, 0);
  const batches = r.timings.batches;
  const headline: Line = [
    b(r.run.status),
    ` on ${r.database}: ${fmtInt(changedRows)} row(s) changed`,
    r.run.durationMs === null ? ', not finished' : ` in ${fmtMs(r.run.durationMs)}`,
    batches.length ? `, ${fmtInt(batches.length)} batch(es), the slowest ${fmtMs(Math.max(...batches.map((x) => x.durationMs)))}.` : '.',
  ];

  const changed: Line[] = [];
  for (const s of r.steps) {
    const u = r.undo.find((x) => x.stepNo === s.stepNo);
    const where: Seg[] = s.table ? [c(s.table), ' (', ...(s.writes ?? []).flatMap((w, i) => [i ? ', ' : '', c(w)]), ')'] : [];
    if (s.kind === 'batched')
      changed.push([
        `Step ${s.stepNo + 1} ${s.name}: `,
        b(fmtInt(s.rowsChanged)),
        ` row(s) of `,
        ...where,
        s.rowsTotal === null ? '' : ` changed, of ${fmtInt(s.rowsTotal)} decided`,
        u?.skipped ? `; ${fmtInt(u.skipped)} left alone (changed by others since the decision, or rejected by its in-batch check)` : '',
        ` (${s.status}).`,
      ]);
    else changed.push([`Step ${s.stepNo + 1} ${s.name}: its SQL ran (${s.status})`, ...(s.reversible ? ['.'] : ['; ', b('irreversible'), ' (down: null).'])]);
  }
  const moved = r.counts.filter((x) => x.delta !== null && x.delta !== 0);
  changed.push(
    moved.length
      ? ['Row counts: ', ...moved.flatMap((x, i) => [i ? ', ' : '', c(x.table), ` ${fmtInt(x.before)} → ${fmtInt(x.after)}`]), '.']
      : [`Row counts: the same before and after in all ${r.counts.length} table(s).`],
  );
  const diff = r.schema.tables.filter((t) => t.diff.differences > 0);
  changed.push(
    diff.length
      ? ['Schema: ', ...diff.flatMap((t, i) => [i ? ', ' : '', c(t.table), ` ${t.diff.differences} difference(s)`]), ' (section Schema).']
      : [r.schema.source === 'snapshot' ? 'Schema: unchanged.' : 'Schema: no snapshot from before the run, so no difference can be shown.'],
  );

  const blocked: Line[] = [];
  if (r.error) blocked.push(['Stopped by ', c(String(r.error.code)), `: ${String(r.error.message ?? '')}`]);
  for (const a of r.aborts) if (a.source === 'event') blocked.push(['Abort trigger: ', c(a.what), a.at ? ` at ${a.at}` : '', '.']);
  const errors = r.issues.findings.filter((f) => f.severity === 'error' && f.count > 0);
  blocked.push(
    errors.length
      ? ['Blocking findings: ', ...errors.flatMap((f, i) => [i ? ', ' : '', c(f.code), ` ${fmtInt(f.count)} row(s)`]), '.']
      : [r.issues.source === 'unavailable' ? 'Pre-flight results: not available (section Issues found).' : 'No check of severity error found rows.'],
  );
  const warned = r.issues.findings.filter((f) => f.severity === 'warn' && f.count > 0);
  if (warned.length)
    blocked.push(['Reported and left unchanged: ', ...warned.flatMap((f, i) => [i ? ', ' : '', c(f.code), ` ${fmtInt(f.count)}`]), ' (section Issues found).']);
  const rounds = r.verification.rounds;
  const last = rounds[rounds.length - 1];
  blocked.push(
    last
      ? [
          `Verification: ${rounds.length} round(s); the last (round ${last.round}, ${last.source}) `,
          last.ok ? 'passed' : b('failed'),
          last.failed.length ? ': ' : ` its ${last.checks} check(s).`,
          ...last.failed.flatMap((n, i) => [i ? ', ' : '', c(n)]),
          last.failed.length ? '.' : '',
        ]
      : ['Verification: no round recorded (', c(`belay verify ${r.run.id}`), ' records one).'],
  );
  const conflicts = r.undo.reduce((n, u) => n + u.conflicts, 0);
  if (conflicts) blocked.push([`Rollback conflicts: ${fmtInt(conflicts)} row(s) others changed were left alone.`]);

  const undo: Line[] = [];
  const written = r.undo.reduce((n, u) => n + u.rows, 0);
  const restored = r.undo.reduce((n, u) => n + u.restored, 0);
  if (r.run.status === 'rolled_back') undo.push([b('Rolled back'), `: ${fmtInt(restored)} row(s) restored to their before-images.`]);
  else {
    undo.push([
      c(`belay rollback ${r.run.id}`),
      `: every one of the ${fmtInt(written)} written row(s) back to its before-image, newest batch first; rows others changed since are left alone and listed (`,
      c('--force'),
      ' overwrites them).',
    ]);
    undo.push([c(`belay rollback ${r.run.id} --sql`), ': the same undo as one script for psql.']);
  }
  undo.push(
    r.backups.rows.length
      ? [c(`belay rollback ${r.run.id} --from-backup`), `: the ${r.backups.rows.length} table(s) from the verified copies taken before the first write.`]
      : ['No backup copy was recorded for this run.'],
  );
  const irreversible = r.steps.filter((s) => !s.reversible);
  undo.push(
    irreversible.length
      ? [b('Irreversible'), ': ', ...irreversible.flatMap((s, i) => [i ? ', ' : '', c(s.name)]), ' (down: null): only the backup undoes them.']
      : ['Every step can be undone exactly.'],
  );
  return { headline, changed, blocked, undo };
}
