// A step's key in SQL: one column, or the columns of a composite primary key. In a decision (column k) a
// composite key is one value of a row type made with the decision, so that keyset batches, ranges and
// checkpoints stay one comparison `k > $1`; against the table it is spread back into column equalities,
// which the table's own index (a, b) answers. Every statement that reaches a table by its key builds it here.
import { ident } from './sql.ts';

export interface KeyShape {
  /** The key column; for a composite key, its label "(a, b)", shown in messages and never used as a name. */
  key: string;
  /** The key's columns in the primary key's order: one for a single-column key. */
  keyColumns: readonly string[];
  /** The SQL type of one key value: the column's type, or the decision's row type for a composite key. */
  keyType: string;
}

export const isComposite = (t: Pick<KeyShape, 'keyColumns'>): boolean => t.keyColumns.length > 1;

/** A column of alias ('' for an unqualified name). */
const col = (alias: string, c: string) => (alias ? `${alias}.${ident(c)}` : ident(c));

/** The label of a composite key's columns: ("a", "b"). */
export const keyLabel = (columns: readonly string[]): string => (columns.length === 1 ? columns[0]! : `(${columns.join(', ')})`);

/** alias's key as one value of the key's type: x."id", or ROW(x."a", x."b")::type (the text of the row before a decision exists). */
export function keyValue(t: KeyShape, alias: string): string {
  if (!isComposite(t)) return col(alias, t.key);
  return `ROW(${t.keyColumns.map((c) => col(alias, c)).join(', ')})::${t.keyType}`;
}

/** alias's row has the key `value` (a key value such as d.k), as column equalities the table's index answers. */
export function keyIs(t: KeyShape, alias: string, value: string): string {
  if (!isComposite(t)) return `${alias}.${ident(t.key)} = ${value}`;
  return `(${t.keyColumns.map((c) => `${alias}.${ident(c)}`).join(', ')}) = (${t.keyColumns.map((c) => `(${value}).${ident(c)}`).join(', ')})`;
}

/** Two rows that carry the key columns under their own names have the same key. */
export function sameKey(t: Pick<KeyShape, 'key' | 'keyColumns'>, a: string, b: string): string {
  if (t.keyColumns.length === 1) return `${a}.${ident(t.key)} = ${b}.${ident(t.key)}`;
  return `(${t.keyColumns.map((c) => `${a}.${ident(c)}`).join(', ')}) = (${t.keyColumns.map((c) => `${b}.${ident(c)}`).join(', ')})`;
}

/** The outer side of a LEFT JOIN found no row (key columns are NOT NULL), or found one. */
export const noRow = (t: Pick<KeyShape, 'keyColumns'>, alias: string): string => `${alias}.${ident(t.keyColumns[0]!)} IS NULL`;
export const hasRow = (t: Pick<KeyShape, 'keyColumns'>, alias: string): string => `${alias}.${ident(t.keyColumns[0]!)} IS NOT NULL`;

/** A key value spread back into the key's columns under their own names: d.k AS "id", or (d.k)."a" AS "a", … */
export function keyColumnsFrom(t: KeyShape, value: string): string {
  if (!isComposite(t)) return `${value} AS ${ident(t.key)}`;
  return t.keyColumns.map((c) => `(${value}).${ident(c)} AS ${ident(c)}`).join(', ');
}

/** The key columns in the key's order (ORDER BY, a select list), qualified by alias ('' for none). */
export const keyOrder = (t: Pick<KeyShape, 'keyColumns'>, alias: string, desc = false): string =>
  t.keyColumns.map((c) => `${col(alias, c)}${desc ? ' DESC' : ''}`).join(', ');
