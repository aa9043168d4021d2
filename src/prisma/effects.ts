// What each statement does to the model once it has run: tables and columns created, renamed, retyped or
// dropped; rows updated, inserted or deleted (each a new SELECT over the previous one); enums and names.
import { ident } from '../db/sql.ts';
import { columnOf, type ColumnDefNode, type ConstraintNode, defaultForRows, typeSql } from './columns.ts';
import type { Action } from './context.ts';
import { strings, type Fragments } from './fragments.ts';
import type { TableState } from './model.ts';
import { emptyRowsSql, insertSql, projectSql, updateFromSql } from './prisma-sql.ts';
import { innerTargets } from './parse.ts';
import { findTop, type Replacement, splitTop } from './sql-text.ts';

type Node = Record<string, unknown>;
interface RangeVar {
  schemaname?: string;
  relname: string;
  alias?: { aliasname: string };
  location?: number;
}

/** Rebuilds a table's rows as a projection of its previous rows: `exprs` gives each column by name. */
function project(t: TableState, alias: string, exprs: Array<[string, string]>, where?: string): void {
  t.rows = t.empty ? emptyRowsSql(t.columns) : projectSql(t.rows, alias, exprs, where);
  t.changed = true;
}

const same = (alias: string, t: TableState): Array<[string, string]> => t.columns.map((c) => [c.name, `${ident(alias)}.${ident(c.name)}`]);

export async function applyEffects(a: Action, f: Fragments, migration: string): Promise<void> {
  const m = f.model;
  const t = a.table;
  if (t) t.touched.push(`${migration}#${a.stmt.index}`);
  const n = a.node;
  switch (a.kind) {
    case 'CreateStmt':
      return createTable(f, n);
    case 'IndexStmt':
      if (t && n.idxname) m.addIndex(t.schema, String(n.idxname), t);
      return;
    case 'CreateEnumStmt': {
      const names = strings(n.typeName);
      m.createEnum(m.schemaOf(names.length > 1 ? names[0] : undefined), names[names.length - 1]!, strings(n.vals));
      return;
    }
    case 'AlterEnumStmt': {
      const names = strings(n.typeName);
      const e = m.enumOf(names.length > 1 ? names[0] : undefined, names[names.length - 1]!);
      if (!e) return;
      if (n.oldVal) e.labels = e.labels.map((l) => (l === n.oldVal ? String(n.newVal) : l));
      else if (n.newVal && !e.labels.includes(String(n.newVal))) e.labels.push(String(n.newVal));
      return;
    }
    case 'RenameStmt':
      return rename(f, a);
    case 'DropStmt':
      return drop(f, n);
    case 'TruncateStmt':
      for (const r of (n.relations as Array<{ RangeVar: RangeVar }>) ?? []) {
        const tt = await m.table(r.RangeVar.schemaname, r.RangeVar.relname);
        if (tt) {
          tt.rows = emptyRowsSql(tt.columns);
          tt.empty = true;
          tt.changed = true;
        }
      }
      return;
    case 'UpdateStmt':
      return t ? update(f, a, t) : undefined;
    case 'DeleteStmt':
      return t ? remove(f, a, t) : undefined;
    case 'InsertStmt':
      return t ? insert(f, a, t) : undefined;
    case 'DoStmt':
      for (const sql of a.stmt.inner) {
        for (const target of innerTargets(sql)) {
          const tt = await m.table(target.schemaname, target.relname);
          if (tt) tt.approx ??= `a DO block (statement ${a.stmt.index} of ${migration}) may change it`;
        }
      }
      return;
    default:
      if (t && a.kind.startsWith('AT_')) return alterTable(f, a, t);
  }
}

async function createTable(f: Fragments, n: Node): Promise<void> {
  const rv = n.relation as RangeVar;
  const m = f.model;
  const schema = m.schemaOf(rv.schemaname);
  if (n.if_not_exists && (await m.table(rv.schemaname, rv.relname))) return;
  const cols = [];
  let pk: string[] = [];
  let pkName = `${rv.relname}_pkey`;
  for (const el of (n.tableElts as Node[]) ?? []) {
    if (el.ColumnDef) {
      const c = columnOf(f, el.ColumnDef as ColumnDefNode);
      cols.push({ name: c.name, type: c.type, notNull: c.notNull, default: c.default });
      if ((el.ColumnDef as ColumnDefNode).constraints?.some((x) => x.Constraint.contype === 'CONSTR_PRIMARY')) pk = [c.name];
    } else if (el.Constraint && (el.Constraint as ConstraintNode).contype === 'CONSTR_PRIMARY') {
      const c = el.Constraint as ConstraintNode;
      pk = strings(c.keys);
      if (c.conname) pkName = c.conname;
    }
  }
  const t = m.createTable(schema, rv.relname, cols, pk);
  if (pk.length) m.addIndex(schema, pkName, t);
  if (n.inhRelations || n.partbound) t.approx = 'it inherits from or is a partition of another table';
}

async function rename(f: Fragments, a: Action): Promise<void> {
  const n = a.node;
  const m = f.model;
  const to = String(n.newname);
  const type = String(n.renameType);
  if (type === 'OBJECT_TABLE' && a.table) m.renameTable(a.table, to);
  else if (type === 'OBJECT_COLUMN' && a.table) {
    const t = a.table;
    const from = String(n.subname);
    const alias = t.name;
    project(
      t,
      alias,
      t.columns.map((c) => [c.name === from ? to : c.name, `${ident(alias)}.${ident(c.name)}`]),
    );
    for (const c of t.columns) if (c.name === from) c.name = to;
    t.primaryKey = t.primaryKey.map((c) => (c === from ? to : c));
    if (t.empty) t.rows = emptyRowsSql(t.columns);
  } else if (type === 'OBJECT_TYPE') {
    const names = strings((n.object as { List?: { items?: unknown[] } })?.List?.items);
    m.renameType(m.schemaOf(names.length > 1 ? names[0] : undefined), names[names.length - 1]!, to);
  } else if (type === 'OBJECT_INDEX' || type === 'OBJECT_TABCONSTRAINT') {
    const rv = n.relation as RangeVar | undefined;
    const name = type === 'OBJECT_INDEX' ? rv?.relname : String(n.subname);
    if (name) m.renameRelation(m.schemaOf(rv?.schemaname), name, to);
  }
}

async function drop(f: Fragments, n: Node): Promise<void> {
  const m = f.model;
  const type = String(n.removeType);
  for (const obj of (n.objects as Node[]) ?? []) {
    const names = obj.List ? strings((obj.List as { items: unknown[] }).items) : strings((obj.TypeName as { names?: unknown[] })?.names);
    const schemaname = names.length > 1 ? names[names.length - 2] : undefined;
    const name = names[names.length - 1];
    if (!name) continue;
    if (type === 'OBJECT_TABLE') {
      const t = await m.table(schemaname, name);
      if (t) m.dropTable(t);
    } else if (type === 'OBJECT_INDEX') m.dropRelation(m.schemaOf(schemaname), name);
    else if (type === 'OBJECT_TYPE') m.dropType(m.schemaOf(schemaname), name);
  }
}

function alterTable(f: Fragments, a: Action, t: TableState): void {
  const n = a.node;
  const alias = t.name;
  const col = (name: string) => t.columns.find((c) => c.name === name);
  switch (a.kind) {
    case 'AT_AddColumn': {
      const def = n.def as { ColumnDef: ColumnDefNode };
      const c = columnOf(f, def.ColumnDef);
      if (col(c.name)) return; // ADD COLUMN IF NOT EXISTS of an existing column
      project(t, alias, [...same(alias, t), [c.name, defaultForRows(c.default, c.type)]]);
      t.columns.push({ name: c.name, type: c.type, notNull: c.notNull, default: c.default });
      if (t.empty) t.rows = emptyRowsSql(t.columns);
      return;
    }
    case 'AT_DropColumn': {
      const name = String(n.name);
      t.columns = t.columns.filter((c) => c.name !== name);
      t.primaryKey = t.primaryKey.filter((c) => c !== name);
      project(t, alias, same(alias, t));
      return;
    }
    case 'AT_AlterColumnType': {
      const c = col(String(n.name));
      const def = (n.def as { ColumnDef: ColumnDefNode }).ColumnDef;
      if (!c || !def.typeName) return;
      const { type } = typeSql(f, def.typeName);
      const using = usingSql(f, a) ?? `${ident(alias)}.${ident(c.name)}`;
      project(
        t,
        alias,
        t.columns.map((x) => [x.name, x === c ? `(${using})::${type}` : `${ident(alias)}.${ident(x.name)}`]),
      );
      c.type = type;
      return;
    }
    case 'AT_SetNotNull':
    case 'AT_DropNotNull': {
      const c = col(String(n.name));
      if (c) c.notNull = a.kind === 'AT_SetNotNull';
      return;
    }
    case 'AT_ColumnDefault': {
      const c = col(String(n.name));
      if (c) c.default = n.def ? defaultText(f, a) : null;
      return;
    }
    case 'AT_AddConstraint': {
      const c = (n.def as { Constraint: ConstraintNode }).Constraint;
      if (c.contype === 'CONSTR_PRIMARY') t.primaryKey = strings(c.keys);
      if ((c.contype === 'CONSTR_PRIMARY' || c.contype === 'CONSTR_UNIQUE') && c.conname) f.model.addIndex(t.schema, c.conname, t);
      return;
    }
    case 'AT_DropConstraint':
      if (n.name) f.model.dropRelation(t.schema, String(n.name));
      return;
  }
}

/** The USING expression of an ALTER COLUMN TYPE sub-command, rendered; null without one. */
export function usingSql(f: Fragments, a: Action, extra: readonly Replacement[] = []): string | null {
  const def = (a.node.def as { ColumnDef?: ColumnDefNode } | undefined)?.ColumnDef;
  if (!def?.raw_default) return null;
  const from = f.toks.findIndex((t) => t.start >= (def.typeName?.location ?? 0));
  const u = findTop(f.toks, from, (t) => t.up === 'USING');
  const end = findTop(f.toks, u + 1, (t) => t.up === ',' || t.up === ';');
  return f.render(f.toks[u + 1]!.start, f.toks[end - 1]!.end, extra);
}

/** The expression of ALTER COLUMN … SET DEFAULT, rendered: from the DEFAULT before it to the end of the sub-command. */
function defaultText(f: Fragments, a: Action): string {
  const loc = (Object.values(a.node.def as Node)[0] as { location?: number }).location ?? 0;
  let d = -1;
  f.toks.forEach((t, i) => {
    if (t.up === 'DEFAULT' && t.start < loc) d = i;
  });
  const end = findTop(f.toks, d + 1, (t) => t.up === ',' || t.up === ';');
  return f.tokens(d + 1, end);
}

/** Splits a data statement's text at its top-level clause keywords. */
function clauses(f: Fragments, words: readonly string[]): Map<string, [number, number]> {
  const at: Array<[string, number]> = [];
  let i = 0;
  while (i < f.toks.length) {
    const j = findTop(f.toks, i, (t) => words.includes(t.up));
    if (j >= f.toks.length) break;
    at.push([f.toks[j]!.up, j]);
    i = j + 1;
  }
  const out = new Map<string, [number, number]>();
  at.forEach(([w, j], k) => {
    if (!out.has(w)) out.set(w, [j + 1, at[k + 1]?.[1] ?? f.toks.length]);
  });
  return out;
}

function update(f: Fragments, a: Action, t: TableState): void {
  if (t.empty) return;
  const rv = a.node.relation as RangeVar;
  const alias = rv.alias?.aliasname ?? rv.relname;
  const c = clauses(f, ['SET', 'FROM', 'WHERE', 'RETURNING']);
  const set = c.get('SET');
  if (!set) return;
  const sets = new Map<string, string>();
  for (const [i, j] of splitTop(f.toks, set[0], set[1])) {
    const eq = findTop(f.toks, i, (x) => x.up === '=');
    const name = f.toks[i]!.text;
    if (eq !== i + 1 || f.toks[i]!.up === '(') {
      t.approx = `statement ${a.stmt.index} assigns several columns at once`;
      return;
    }
    sets.set(name.startsWith('"') ? name.slice(1, -1).replace(/""/g, '"') : name.toLowerCase(), f.tokens(eq + 1, j));
  }
  const where = c.get('WHERE') ? f.tokens(...c.get('WHERE')!) : undefined;
  const from = c.get('FROM') ? f.tokens(...c.get('FROM')!) : undefined;
  if (from) {
    t.rows = updateFromSql(t.rows, alias, t.columns, sets, from, where);
  } else {
    project(
      t,
      alias,
      t.columns.map((col) => {
        const e = sets.get(col.name);
        const old = `${ident(alias)}.${ident(col.name)}`;
        return [col.name, e === undefined ? old : `CASE WHEN ${where ?? 'true'} THEN (${e})::${col.type} ELSE ${old} END`];
      }),
    );
  }
  t.changed = true;
}

function remove(f: Fragments, a: Action, t: TableState): void {
  if (t.empty) return;
  const rv = a.node.relation as RangeVar;
  const alias = rv.alias?.aliasname ?? rv.relname;
  const c = clauses(f, ['USING', 'WHERE', 'RETURNING']);
  const where = c.get('WHERE') ? f.tokens(...c.get('WHERE')!) : undefined;
  const using = c.get('USING') ? f.tokens(...c.get('USING')!) : undefined;
  if (!where && !using) {
    t.rows = emptyRowsSql(t.columns);
    t.empty = true;
    t.changed = true;
    return;
  }
  const keep = using ? `NOT EXISTS (SELECT 1 FROM ${using}${where ? ` WHERE ${where}` : ''})` : `(${where}) IS NOT TRUE`;
  project(t, alias, same(alias, t), keep);
}

function insert(f: Fragments, a: Action, t: TableState): void {
  const n = a.node;
  if (n.onConflictClause) t.approx = `statement ${a.stmt.index} is an INSERT … ON CONFLICT`;
  const given = n.cols ? (n.cols as Array<{ ResTarget: { name: string } }>).map((c) => c.ResTarget.name) : t.columns.map((c) => c.name);
  const rv = n.relation as RangeVar;
  // the rows come after the table name, its alias and its column list
  let i = f.toks.findIndex((x) => x.start === rv.location);
  while (i + 1 < f.toks.length && !['(', 'SELECT', 'VALUES', 'WITH', 'DEFAULT', 'OVERRIDING'].includes(f.toks[i + 1]!.up)) i++;
  i++;
  if (f.toks[i]?.up === '(' && n.cols) i = findTop(f.toks, i + 1, () => false) + 1;
  if (!f.toks[i] || ['DEFAULT', 'OVERRIDING'].includes(f.toks[i]!.up)) {
    t.approx = `statement ${a.stmt.index} inserts rows belay does not model`;
    t.empty = false;
    return;
  }
  const end = findTop(f.toks, i, (x) => x.up === 'ON' || x.up === 'RETURNING');
  const defaults = new Map(
    t.columns.filter((c) => c.default).map((c) => [c.name, /\bnextval\s*\(/i.test(c.default!) ? `-(row_number() OVER ())` : c.default!]),
  );
  t.rows = insertSql(t.rows, t.columns, given, f.tokens(i, end), defaults);
  t.empty = false;
  t.changed = true;
}
