// What the database does when a batched step writes, read from the catalog and said as plain data: the
// triggers its UPDATE fires and what they change, foreign keys with actions from or into the written table
// and the tables changed through them, cascades that scan a table per row, composite keys. The step's own
// declarations (triggers, disableUserTriggers) are applied. checks/ reports these notes as findings,
// plan/ keeps them in the plan, the runbook shows them: one reading, one wording.
import { catalogFacts, type CatalogFacts, type ForeignKeyFact, type TriggerFact } from '../db/catalog-facts.ts';
import { ROLE_MAY_DISABLE_TRIGGERS_SQL } from '../db/catalog-sql.ts';
import type { Db } from '../db/connection.ts';
import { SpecError } from '../errors.ts';
import type { BatchedStep, Migration } from './define.ts';

export type NoteKind = 'trigger' | 'foreign-key' | 'cascade-scan' | 'composite-key' | 'disable-triggers';

/** One thing the catalog says about a step's writes: a stable code, a severity, what it means and what to do. */
export interface StepNote {
  /** TRIGGER:<trigger>@<step>, FK_ACTION:<constraint>@<step>, CASCADE_SCAN:<constraint>@<step>, COMPOSITE_KEY:<table>@<step>, DISABLE_TRIGGERS:<table>@<step>. */
  code: string;
  kind: NoteKind;
  /** error only for DISABLE_TRIGGERS when the role may not set session_replication_role. */
  severity: 'error' | 'warn' | 'info';
  message: string;
  fix: string;
  /** The catalog's facts behind the note (and what the spec declared), for machines. */
  data: Record<string, unknown>;
}

/** A table the step changes without writing it itself. */
export interface IndirectTable {
  table: string;
  /** The foreign key (ON UPDATE action) or trigger it is changed through. */
  through: string;
  /** The migration lists it in tables (backed up, verified). */
  listed: boolean;
}

export interface StepFacts {
  step: string;
  stepNo: number;
  table: string;
  indirectTables: IndirectTable[];
  notes: StepNote[];
}

const ACTS = new Set(['cascade', 'set null', 'set default']);

/** Reads a step's catalog facts (callers that read them already pass their own, cached). */
export type FactsReader = (step: BatchedStep) => Promise<CatalogFacts>;

/** The notes of every batched step, in step order. Read-only: a few catalog queries per step. */
export async function stepFacts(db: Db, spec: Migration, read: FactsReader = (s) => catalogFacts(db, s.table, s.writes)): Promise<StepFacts[]> {
  const out: StepFacts[] = [];
  let mayDisable: boolean | undefined;
  for (const [stepNo, step] of spec.steps.entries()) {
    if (step.kind !== 'batched') continue;
    const facts = await read(step);
    checkDeclarations(step, stepNo, facts);
    if (step.disableUserTriggers && mayDisable === undefined) mayDisable = (await db.query<{ may: boolean }>(ROLE_MAY_DISABLE_TRIGGERS_SQL)).rows[0]!.may;
    out.push(notesOf(spec, step, stepNo, facts, mayDisable ?? false));
  }
  return out;
}

/** The notes of one step, from its catalog facts (pure: tests and other callers may pass facts of their own). */
export function notesOf(spec: Migration, step: BatchedStep, stepNo: number, facts: CatalogFacts, mayDisable: boolean): StepFacts {
  const listed = (t: string) => spec.tables.some((x) => sameTable(x, t));
  const indirect: IndirectTable[] = [];
  const notes: StepNote[] = [];
  for (const t of facts.triggers) {
    const n = triggerNote(step, t, indirect, listed);
    if (n) notes.push(n);
  }
  for (const fk of facts.foreignKeysFrom) {
    if (ACTS.has(fk.onDelete) || ACTS.has(fk.onUpdate)) notes.push(fromNote(step, fk));
  }
  for (const fk of facts.foreignKeysInto) {
    const n = intoNote(step, fk, listed);
    if (n) notes.push(n);
    if (fk.writtenColumns.length > 0 && ACTS.has(fk.onUpdate) && !step.disableUserTriggers) {
      indirect.push({ table: fk.child.name, through: fk.name, listed: listed(fk.child.name) });
    }
  }
  for (const fk of [...facts.foreignKeysFrom, ...facts.foreignKeysInto]) {
    const n = scanNote(step, fk);
    if (n && !notes.some((x) => x.code === n.code)) notes.push(n);
  }
  if (facts.primaryKey && facts.primaryKey.columns.length > 1) {
    const cols = facts.primaryKey.columns.map((c) => `"${c}"`).join(', ');
    notes.push({
      code: `COMPOSITE_KEY:${step.table}@${step.name}`,
      kind: 'composite-key',
      severity: 'info',
      message: `the primary key of ${facts.table.sqlName} is composite (${cols}); step "${step.name}" walks it ${step.key ? `by its key: "${step.key}"` : `by row-value keyset (${cols}) > (…)`}`,
      fix: 'Nothing to do.',
      data: { table: step.table, primaryKey: facts.primaryKey.columns, keys: facts.keys.map((k) => k.columns) },
    });
  }
  if (step.disableUserTriggers) notes.push(disableNote(step, facts, mayDisable));
  return { step: step.name, stepNo, table: step.table, indirectTables: dedupe(indirect), notes };
}

function triggerNote(step: BatchedStep, t: TriggerFact, indirect: IndirectTable[], listed: (t: string) => boolean): StepNote | undefined {
  const updates = t.events.includes('update') && (!t.updateOf || t.updateOf.some((c) => step.writes.includes(c)));
  if (!updates || t.enabled === 'disabled') return undefined;
  const off = step.disableUserTriggers ? t.enabled === 'origin' : t.enabled === 'replica';
  const code = `TRIGGER:${t.name}@${step.name}`;
  const what = `trigger "${t.name}" (${t.timing.toUpperCase()} UPDATE${t.updateOf ? ` OF ${t.updateOf.map((c) => `"${c}"`).join(', ')}` : ''}, for each ${t.level}${t.constraint?.initiallyDeferred ? ', deferred to commit' : ''})`;
  const declared = step.triggers?.find((d) => d.name === t.name);
  const sets = declared ? declared.sets : t.timing === 'before' && t.level === 'row' ? t.body.setsNew : [];
  const writesTables = declared ? declared.writesTables : t.body.writesTables;
  const data = {
    trigger: t.name,
    timing: t.timing,
    level: t.level,
    enabled: t.enabled,
    when: t.when,
    function: t.function.signature,
    sets,
    writesTables,
    declared: !!declared,
    unreadable: t.body.unreadable,
    dynamicSql: t.body.dynamicSql,
    calls: t.body.calls,
    fires: !off,
  };
  if (off) {
    return {
      code,
      kind: 'trigger',
      severity: 'info',
      message: `${what} does not fire on step "${step.name}" (${step.disableUserTriggers ? 'disableUserTriggers' : 'ENABLE REPLICA: only under session_replication_role = replica'})`,
      fix: 'Nothing to do.',
      data,
    };
  }
  for (const w of writesTables) indirect.push({ table: w, through: t.name, listed: listed(w) });
  const others = sets.filter((c) => !step.writes.includes(c));
  const effects: string[] = [];
  if (others.includes('*')) effects.push('replaces the whole row (NEW)');
  else if (others.length) effects.push(`sets ${others.map((c) => `"${c}"`).join(', ')}, which the step does not write`);
  if (writesTables.length) effects.push(`writes ${writesTables.map((w) => `"${w}"`).join(', ')}`);
  const unknown =
    !declared && (t.body.unreadable ?? (t.body.dynamicSql ? 'it runs dynamic SQL' : t.body.calls.length ? `it calls ${t.body.calls.join(', ')}` : null));
  const when = t.when ? ` when ${t.when}` : '';
  if (declared) {
    return {
      code,
      kind: 'trigger',
      severity: 'info',
      message: `${what} fires on the rows step "${step.name}" writes${when}; declared: ${effects.join(' and ') || 'changes nothing else'}`,
      fix: 'Nothing to do: the declaration stands for it.',
      data,
    };
  }
  if (!effects.length && !unknown) {
    return {
      code,
      kind: 'trigger',
      severity: 'info',
      message: `${what} fires on the rows step "${step.name}" writes${when}; it changes nothing belay can see`,
      fix: 'Nothing to do.',
      data,
    };
  }
  const consequences = [
    ...(others.length ? ['the post-run check of untouched columns sees those columns change, and rollback restores only the written ones'] : []),
    ...(writesTables.length ? ["apply writes there for every row, and a rollback's UPDATE fires it again"] : []),
  ];
  const message =
    `${what} fires on the rows step "${step.name}" writes${when}${effects.length ? ` and ${effects.join(' and ')}` : ''}` +
    `${unknown ? `; what else it does is unknown (${unknown})` : ''}${consequences.length ? `: ${consequences.join('; ')}` : ''}`;
  const example = `triggers: [{ name: '${t.name}'${others.length && !others.includes('*') ? `, sets: [${others.map((c) => `'${c}'`).join(', ')}]` : ''}${writesTables.length ? `, writesTables: [${writesTables.map((w) => `'${w}'`).join(', ')}]` : ''} }]`;
  const fix =
    `Declare what it changes in step "${step.name}" (${example})${writesTables.length ? ' and list the tables it writes in tables (backed up, verified)' : ''}, ` +
    'or run the step with disableUserTriggers: true (session_replication_role = replica, where the role may).';
  return { code, kind: 'trigger', severity: 'warn', message, fix, data };
}

function fromNote(step: BatchedStep, fk: ForeignKeyFact): StepNote {
  const cols = fk.childColumns.map((c) => `"${c}"`).join(', ');
  const parts: string[] = [];
  if (ACTS.has(fk.onDelete)) {
    const verb =
      fk.onDelete === 'cascade'
        ? 'deletes the rows'
        : `sets ${(fk.onDeleteSetColumns ?? fk.childColumns).map((c) => `"${c}"`).join(', ')} of the rows to ${fk.onDelete === 'set null' ? 'NULL' : 'its default'}`;
    parts.push(
      `deleting a row of ${fk.parent.sqlName} after the run ${verb} that reference it, rows this run wrote among them` +
        (fk.onDelete === 'cascade'
          ? ' (rollback cannot bring back a deleted row, and a monitor looking for rows whose parent is gone never sees them)'
          : ' (rollback then finds them changed)'),
    );
  }
  if (ACTS.has(fk.onUpdate)) parts.push(`changing the referenced key of ${fk.parent.sqlName} rewrites them (ON UPDATE ${fk.onUpdate.toUpperCase()})`);
  return {
    code: `FK_ACTION:${fk.name}@${step.name}`,
    kind: 'foreign-key',
    severity: ACTS.has(fk.onDelete) ? 'warn' : 'info',
    message: `step "${step.name}" writes ${cols}, which references ${fk.parent.sqlName} through "${fk.name}" (ON DELETE ${fk.onDelete.toUpperCase()}, ON UPDATE ${fk.onUpdate.toUpperCase()}): ${parts.join('; ')}`,
    fix: 'Know it before applying: watch the parent table during the monitoring window, and prefer a foreign key that restricts deletes while the migration can still be rolled back.',
    data: fkData(fk, 'from'),
  };
}

function intoNote(step: BatchedStep, fk: ForeignKeyFact, listed: (t: string) => boolean): StepNote | undefined {
  const written = fk.writtenColumns.length > 0;
  if (written && ACTS.has(fk.onUpdate)) {
    const inList = listed(fk.child.name);
    return {
      code: `FK_ACTION:${fk.name}@${step.name}`,
      kind: 'foreign-key',
      severity: inList && !step.disableUserTriggers ? 'info' : 'warn',
      message: step.disableUserTriggers
        ? `step "${step.name}" writes ${fk.writtenColumns.map((c) => `"${c}"`).join(', ')}, referenced by ${fk.child.sqlName} through "${fk.name}" (ON UPDATE ${fk.onUpdate.toUpperCase()}); with disableUserTriggers the action does not run, and the children keep the old values`
        : `step "${step.name}" changes ${fk.child.sqlName} too: "${fk.name}" (ON UPDATE ${fk.onUpdate.toUpperCase()}) rewrites its rows that reference the rows the step writes${inList ? '' : `; ${fk.child.sqlName} is not in the migration's tables, so it is neither backed up nor verified`}`,
      fix: step.disableUserTriggers
        ? `Run without disableUserTriggers, or update ${fk.child.sqlName} in a step of its own.`
        : inList
          ? 'Nothing to do: the table is backed up and verified.'
          : `Add "${fk.child.name}" to tables.`,
      data: fkData(fk, 'into'),
    };
  }
  if (!ACTS.has(fk.onDelete)) return undefined;
  return {
    code: `FK_ACTION:${fk.name}@${step.name}`,
    kind: 'foreign-key',
    severity: 'info',
    message: `${fk.child.sqlName} references ${fk.parent.sqlName} through "${fk.name}" (ON DELETE ${fk.onDelete.toUpperCase()}): deleting rows of ${fk.parent.sqlName} (by the application, or a restore from backup that replaces the table) ${fk.onDelete === 'cascade' ? 'deletes' : 'changes'} their rows in ${fk.child.sqlName}`,
    fix: `Restore from backup only with ${fk.child.sqlName} in mind; the step's UPDATE itself does not fire it.`,
    data: fkData(fk, 'into'),
  };
}

function scanNote(step: BatchedStep, fk: ForeignKeyFact): StepNote | undefined {
  if (fk.childIndexed) return undefined;
  // the step's UPDATE of a referenced column makes the server look for children, whatever the action
  const byStep = fk.parent.name === step.table && fk.writtenColumns.length > 0 && fk.parentColumns.some((c) => step.writes.includes(c));
  if (!byStep && !ACTS.has(fk.onDelete) && !ACTS.has(fk.onUpdate)) return undefined;
  const cols = fk.childColumns.map((c) => `"${c}"`).join(', ');
  return {
    code: `CASCADE_SCAN:${fk.name}@${step.name}`,
    kind: 'cascade-scan',
    severity: byStep ? 'warn' : 'info',
    message: `${fk.child.sqlName} has no index led by ${cols}, its columns of "${fk.name}": ${
      byStep
        ? `every row step "${step.name}" writes makes the server scan ${fk.child.sqlName} for rows that reference it`
        : ACTS.has(fk.onDelete)
          ? `every row deleted from ${fk.parent.sqlName} (ON DELETE ${fk.onDelete.toUpperCase()}) scans ${fk.child.sqlName}`
          : `every change of a referenced key of ${fk.parent.sqlName} (ON UPDATE ${fk.onUpdate.toUpperCase()}) scans ${fk.child.sqlName}`
    }`,
    fix: `CREATE INDEX CONCURRENTLY ON ${fk.child.sqlName} (${cols})${byStep ? ', or declare it in tempIndexes for the run' : ''}.`,
    data: fkData(fk, fk.parent.name === step.table ? 'into' : 'from'),
  };
}

function disableNote(step: BatchedStep, facts: CatalogFacts, may: boolean): StepNote {
  const code = `DISABLE_TRIGGERS:${step.table}@${step.name}`;
  const data = {
    table: step.table,
    roleMay: may,
    stillFire: facts.triggers.filter((t) => t.enabled === 'always' || t.enabled === 'replica').map((t) => t.name),
    notFiring: facts.triggers.filter((t) => t.enabled === 'origin').map((t) => t.name),
    foreignKeysNotEnforced: [...facts.foreignKeysFrom, ...facts.foreignKeysInto.filter((f) => f.writtenColumns.length > 0)].map((f) => f.name),
  };
  if (!may) {
    return {
      code,
      kind: 'disable-triggers',
      severity: 'error',
      data,
      message: `step "${step.name}" declares disableUserTriggers, but this role may not set session_replication_role: apply would fail at its first batch`,
      fix: "Run as a role that may (a superuser, or: GRANT SET ON PARAMETER session_replication_role TO <role>), or drop disableUserTriggers and declare the triggers' effects instead.",
    };
  }
  const parts = [
    `ordinary triggers do not fire${data.notFiring.length ? ` (${data.notFiring.map((n) => `"${n}"`).join(', ')})` : ''}`,
    ...(data.foreignKeysNotEnforced.length
      ? [`the server does not enforce ${data.foreignKeysNotEnforced.map((n) => `"${n}"`).join(', ')} (belay's predictions check them before the run)`]
      : []),
    ...(data.stillFire.length ? [`ENABLE ALWAYS / REPLICA triggers fire: ${data.stillFire.map((n) => `"${n}"`).join(', ')}`] : []),
  ];
  return {
    code,
    kind: 'disable-triggers',
    severity: 'info',
    data,
    message: `step "${step.name}" runs with session_replication_role = replica: ${parts.join('; ')}`,
    fix: 'Nothing to do.',
  };
}

function fkData(fk: ForeignKeyFact, side: 'from' | 'into'): Record<string, unknown> {
  return {
    constraint: fk.name,
    side,
    child: fk.child.name,
    childColumns: fk.childColumns,
    parent: fk.parent.name,
    parentColumns: fk.parentColumns,
    onUpdate: fk.onUpdate,
    onDelete: fk.onDelete,
    childIndexed: fk.childIndexed,
    writtenColumns: fk.writtenColumns,
  };
}

/** Declared triggers must exist on the table and their columns in it: a typo would silence a warning. */
function checkDeclarations(step: BatchedStep, stepNo: number, facts: CatalogFacts): void {
  for (const [i, d] of (step.triggers ?? []).entries()) {
    const field = `steps.${stepNo}.triggers.${i}`;
    if (!facts.triggers.some((t) => t.name === d.name)) {
      throw new SpecError(`step "${step.name}" declares trigger "${d.name}", which ${facts.table.sqlName} does not have`, {
        field: `${field}.name`,
        expected: `one of: ${facts.triggers.map((t) => t.name).join(', ') || '(the table has no user trigger)'}`,
        fix: "Name an existing trigger of the step's table (its exact name and case), or drop the declaration.",
      });
    }
    for (const c of d.sets) {
      if (!facts.columns.some((x) => x.name === c)) {
        throw new SpecError(`step "${step.name}" declares that trigger "${d.name}" sets "${c}", which is not a column of ${facts.table.sqlName}`, {
          field: `${field}.sets`,
          expected: `columns of ${facts.table.sqlName}`,
        });
      }
    }
  }
}

function sameTable(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/"/g, '').replace(/^public\./, '');
  return norm(a) === norm(b);
}

function dedupe(xs: IndirectTable[]): IndirectTable[] {
  const byKey = new Map<string, IndirectTable>();
  for (const x of xs) if (!byKey.has(`${x.table}\0${x.through}`)) byKey.set(`${x.table}\0${x.through}`, x);
  return [...byKey.values()];
}
