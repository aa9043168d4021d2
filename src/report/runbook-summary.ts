// The runbook's first screen: what the migration will change, what stops it, how to undo it. Short enough to
// paste into a pull request (test/report-glance.test.ts holds it under 60 lines); the sections below it
// carry the detail, folded.
import type { Check } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { code, fmtBytes, fmtInt } from './markdown.ts';
import type { ReportSources } from './sources.ts';

export interface TableFacts {
  table: string;
  exists: boolean;
  rows?: number;
  estimated?: boolean;
  bytes?: number;
}

export type CatalogSources = Awaited<ReturnType<NonNullable<ReportSources['catalog']>>>;

/** At most `n` codes inline, then how many more and where they are. */
function codes(list: readonly string[], where: string, n = 6): string {
  const shown = list.slice(0, n).map((c) => code(c));
  return `${shown.join(', ')}${list.length > n ? `, and ${list.length - n} more (section ${where})` : ''}`;
}

function checkCodes(checks: readonly Check[], severity: string): string[] {
  return checks.flatMap((c) =>
    c.kind === 'classify' ? c.categories.filter((x) => x.severity === severity).map((x) => x.code) : c.severity === severity ? [c.code] : [],
  );
}

export function runbookSummary(m: LoadedMigration, facts: readonly TableFacts[], hasDb: boolean, catalog: CatalogSources | Error | undefined): string[] {
  const { spec } = m;
  const size = (t: string) => {
    const f = facts.find((x) => x.table === t);
    if (!f) return '';
    return f.exists ? ` (${f.estimated ? '≈ ' : ''}${fmtInt(f.rows)} rows, ${fmtBytes(f.bytes)})` : ' (**missing**)';
  };
  const out: string[] = ['**What will change**', ''];
  for (const [i, s] of spec.steps.entries()) {
    if (s.kind === 'batched')
      out.push(
        `- ${code(s.table)}${size(s.table)}: step ${i + 1} **${s.name}** writes ${s.writes.map((w) => code(w)).join(', ')} on the rows its rule decides once before the first write, in batches of one transaction each.`,
      );
    else out.push(`- Step ${i + 1} **${s.name}** runs its SQL once, in one transaction${s.down === null ? ' (**irreversible**: `down: null`)' : ''}.`);
  }
  const readOnly = spec.tables.filter((t) => !spec.steps.some((s) => s.kind === 'batched' && s.table === t));
  if (readOnly.length)
    out.push(`- Read, not written (not backed up; a restore from backup leaves them as they are): ${readOnly.map((t) => `${code(t)}${size(t)}`).join(', ')}.`);
  const facts2 = catalog && !(catalog instanceof Error) ? catalog.facts : [];
  const indirect = facts2.flatMap((f) => f.indirectTables);
  if (indirect.length)
    out.push(
      `- Changed indirectly (triggers, foreign-key actions): ${indirect.map((t) => `${code(t.table)}${t.listed ? '' : ' — **not backed up**: add it to tables'}`).join(', ')}.`,
    );
  if (spec.tempIndexes.length) out.push(`- ${spec.tempIndexes.length} temporary index(es), built before the first step and dropped in cleanup.`);

  out.push('', '**What blocks**', '', 'The apply stops before its first write when one of these finds rows; `belay check` counts them, read-only:', '');
  const errors = checkCodes(spec.checks, 'error');
  out.push(`- Checks of severity error: ${errors.length ? codes(errors, 'Pre-flight checks') : 'none declared'}.`);
  if (catalog && !(catalog instanceof Error)) {
    const derived = catalog.derived.map((d) => d.code);
    out.push(`- Predicted from the catalog: ${derived.length ? codes(derived, 'Pre-flight checks') : 'nothing (no constraint covers a written column)'}.`);
  } else out.push(hasDb ? '- Predicted from the catalog: could not be read (section What changes).' : '- Predicted from the catalog: pass --db to list them.');
  const missing = facts.filter((f) => !f.exists).map((f) => f.table);
  if (missing.length) out.push(`- **Missing tables**: ${missing.map((t) => code(t)).join(', ')}: the apply refuses to start.`);
  const warns = checkCodes(spec.checks, 'warn');
  if (warns.length)
    out.push(`- Not blocking: ${warns.length} check(s) of severity warn report their rows and leave them unchanged: ${codes(warns, 'Pre-flight checks')}.`);
  const notes = facts2.flatMap((f) => f.notes).filter((n) => n.severity !== 'info');
  if (notes.length)
    out.push(
      `- Not blocking: ${notes.length} catalog note(s) on these writes: ${codes(
        notes.map((n) => n.code),
        'What changes',
        3,
      )}.`,
    );
  if (spec.abort.length)
    out.push(
      `- During the run, abort triggers: ${spec.abort.map((a) => `${code(a.when)}${a.threshold === undefined ? '' : ` > ${a.threshold}`} → ${a.action === 'rollback' ? 'roll back' : 'pause'}`).join('; ')}.`,
    );

  out.push('', '**How to undo**', '');
  out.push(
    '- `belay rollback <run>`: every written row back to its before-image, newest batch first; rows others changed since are left alone and listed (exit 11), `--force` overwrites them; rows deleted since are listed apart: `--force` cannot bring them back, the backup copy holds them.',
    '- `belay rollback <run> --sql`: the same undo as one script for psql, where belay is not installed.',
    '- `belay rollback <run> --from-backup`: the tables the run writes from the verified copies taken before the first write, in the order of their foreign keys; the tables it only reads stay as they are.',
  );
  const irreversible = spec.steps.filter((s) => s.kind === 'sql' && s.down === null).map((s) => s.name);
  out.push(
    irreversible.length
      ? `- **Irreversible**: ${irreversible.map((n) => `**${n}**`).join(', ')} (\`down: null\`): only the backup undoes ${irreversible.length === 1 ? 'it' : 'them'}.`
      : '- Every step can be undone exactly.',
  );
  return out;
}
