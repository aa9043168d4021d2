// Column definitions of CREATE TABLE and ADD COLUMN, read from the parse tree and the statement's text:
// the type as written (an enum the files create reads as text), NOT NULL, the default.
import { strings, type Fragments } from './fragments.ts';
import type { Column } from './model.ts';
import { findTop } from './sql-text.ts';

export interface ColumnDefNode {
  colname?: string;
  typeName?: TypeNameNode;
  constraints?: Array<{ Constraint: ConstraintNode }>;
  /** USING expression of ALTER COLUMN TYPE. */
  raw_default?: unknown;
  location?: number;
}

export interface TypeNameNode {
  names: Array<{ String: { sval: string } }>;
  arrayBounds?: unknown[];
  location?: number;
}

export interface ConstraintNode {
  contype: string;
  conname?: string;
  location?: number;
  keys?: unknown[];
  fk_attrs?: unknown[];
  pk_attrs?: unknown[];
  pktable?: { schemaname?: string; relname: string };
  skip_validation?: boolean;
  initially_valid?: boolean;
  nulls_not_distinct?: boolean;
  raw_expr?: unknown;
  indexname?: string;
}

const SERIAL: Readonly<Record<string, string>> = { serial: 'int4', serial4: 'int4', bigserial: 'int8', serial8: 'int8', smallserial: 'int2', serial2: 'int2' };
const TYPE_END = new Set([',', ')', ';', 'NOT', 'NULL', 'DEFAULT', 'CONSTRAINT', 'PRIMARY', 'UNIQUE', 'CHECK', 'REFERENCES', 'COLLATE', 'GENERATED', 'USING']);
const DEFAULT_END = new Set([',', ')', ';', 'NOT', 'NULL', 'CONSTRAINT', 'PRIMARY', 'UNIQUE', 'CHECK', 'REFERENCES', 'COLLATE', 'GENERATED']);

/** The type as SQL that the snapshot understands, and whether it is a serial (a sequence default). */
export function typeSql(f: Fragments, tn: TypeNameNode): { type: string; serial: boolean } {
  const names = strings(tn.names);
  const last = names[names.length - 1]!;
  if (names.length === 1 && SERIAL[last]) return { type: SERIAL[last]!, serial: true };
  const inSnapshot = f.model.typeInSnapshot(names);
  const brackets = '[]'.repeat(tn.arrayBounds?.length ?? 0);
  if (inSnapshot) return { type: inSnapshot + brackets, serial: false };
  const i = f.toks.findIndex((t) => t.start === tn.location);
  if (i < 0) return { type: names.map((n) => `"${n.replace(/"/g, '""')}"`).join('.') + brackets, serial: false };
  return {
    type: f.tokens(
      i,
      findTop(f.toks, i + 1, (t) => TYPE_END.has(t.up)),
    ),
    serial: false,
  };
}

/** The default of a column definition as written (rendered for the snapshot), or null. */
export function defaultSql(f: Fragments, def: ColumnDefNode): string | null {
  const c = def.constraints?.find((x) => x.Constraint.contype === 'CONSTR_DEFAULT')?.Constraint;
  if (!c) return null;
  const i = f.toks.findIndex((t) => t.start === c.location);
  if (i < 0 || f.toks[i]!.up !== 'DEFAULT') return null;
  const text = f.tokens(
    i + 1,
    Math.max(
      i + 2,
      findTop(f.toks, i + 2, (t) => DEFAULT_END.has(t.up)),
    ),
  );
  return /^null$/i.test(text.trim()) ? null : text;
}

export function constraintsOf(def: ColumnDefNode): ConstraintNode[] {
  return (def.constraints ?? []).map((c) => c.Constraint);
}

/** The column a definition adds. A serial gets its sequence default as nextval(). */
export function columnOf(f: Fragments, def: ColumnDefNode): Column & { serial: boolean; identity: boolean } {
  const { type, serial } = typeSql(f, def.typeName!);
  const cons = constraintsOf(def);
  const identity = cons.some((c) => c.contype === 'CONSTR_IDENTITY' || c.contype === 'CONSTR_GENERATED');
  return {
    name: def.colname!,
    type,
    serial,
    identity,
    notNull: cons.some((c) => c.contype === 'CONSTR_NOTNULL' || c.contype === 'CONSTR_PRIMARY'),
    default: serial ? 'nextval(serial)' : defaultSql(f, def),
  };
}

/**
 * A default as an expression over existing rows: a sequence cannot be read in a read-only snapshot, and
 * what matters to a prediction is that it gives every row its own value.
 */
export function defaultForRows(d: string | null, type: string): string {
  if (d === null) return `NULL::${type}`;
  if (/\bnextval\s*\(/i.test(d)) return `(row_number() OVER ())::${type}`;
  return `(${d})::${type}`;
}
