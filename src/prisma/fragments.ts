// Pieces of a statement's own text (a SET expression, a WHERE clause, a USING expression), rendered so that
// they read the modelled state instead of the snapshot: a table the files changed becomes its modelled rows,
// a cast to an enum the files create becomes a cast to text.
import type { Model } from './model.ts';
import type { Replacement, SqlText, Tok } from './sql-text.ts';
import type { Statement } from './types.ts';

interface RangeVarNode {
  schemaname?: string;
  relname: string;
  alias?: { aliasname: string };
  location?: number;
}

interface TypeNameNode {
  names: Array<{ String: { sval: string } }>;
  location?: number;
}

export class Fragments {
  readonly toks: Tok[];
  private reps: Replacement[] = [];

  constructor(
    readonly text: SqlText,
    readonly stmt: Statement,
    readonly model: Model,
  ) {
    this.toks = text.tokens(stmt.start, stmt.end);
  }

  /** Finds what must be replaced; `skip` holds the statement's target relation node (modelled by the caller). */
  prepare(skip: readonly object[] = []): this {
    this.reps = [];
    walk(this.stmt.node, (kind, node) => {
      if (kind === 'RangeVar' && !skip.includes(node)) this.relation(node as unknown as RangeVarNode);
      if (kind === 'TypeCast') this.typeName((node as { typeName?: TypeNameNode }).typeName);
    });
    return this;
  }

  nameSpan(location: number | undefined): { start: number; end: number } | undefined {
    if (location === undefined || location < 0) return undefined;
    let i = this.toks.findIndex((t) => t.start === location);
    if (i < 0) return undefined;
    const start = this.toks[i]!.start;
    while (this.toks[i + 1]?.up === '.' && this.toks[i + 2]) i += 2;
    return { start, end: this.toks[i]!.end };
  }

  private relation(rv: RangeVarNode): void {
    const t = this.model.changedTable(rv.schemaname, rv.relname);
    const span = this.nameSpan(rv.location);
    if (!t || !span) return;
    this.reps.push({ ...span, text: rv.alias ? `(${t.rows})` : `(${t.rows}) AS "${rv.relname.replace(/"/g, '""')}"` });
  }

  private typeName(tn: TypeNameNode | undefined): void {
    if (!tn) return;
    const to = this.model.typeInSnapshot(tn.names.map((n) => n.String.sval));
    const span = this.nameSpan(tn.location);
    if (to && span) this.reps.push({ ...span, text: to });
  }

  /** Bytes [start, end) rendered, with `extra` replacements on top of the statement's own. */
  render(start: number, end: number, extra: readonly Replacement[] = []): string {
    return this.text.render(start, end, [...this.reps.filter((r) => !extra.some((e) => e.start < r.end && r.start < e.end)), ...extra]);
  }

  /** Column references inside `node` as `prefix.column` (a PL/pgSQL record's field, say). */
  columnRefs(node: unknown, prefix: string): Replacement[] {
    const out: Replacement[] = [];
    walk(node, (kind, n) => {
      if (kind !== 'ColumnRef') return;
      const fields = strings((n as { fields?: unknown[] }).fields);
      const span = this.nameSpan((n as { location?: number }).location);
      if (span && fields.length) out.push({ ...span, text: `${prefix}."${fields[fields.length - 1]!.replace(/"/g, '""')}"` });
    });
    return out;
  }

  /** Tokens [i, j) rendered. */
  tokens(i: number, j: number): string {
    if (j <= i) return '';
    return this.render(this.toks[i]!.start, this.toks[j - 1]!.end);
  }
}

/** Calls fn for every node of a libpg-query tree, with its node type. */
export function walk(node: unknown, fn: (kind: string, node: Record<string, unknown>) => void): void {
  if (Array.isArray(node)) {
    for (const n of node) walk(n, fn);
    return;
  }
  if (!node || typeof node !== 'object') return;
  for (const [k, v] of Object.entries(node as Record<string, unknown>)) {
    if (/^[A-Z]/.test(k) && v && typeof v === 'object' && !Array.isArray(v)) fn(k, v as Record<string, unknown>);
    walk(v, fn);
  }
}

/** The relation nodes of a statement's node tree whose type name is `kind` (RangeVar targets of UPDATE…). */
export function strings(list: unknown): string[] {
  return Array.isArray(list) ? list.map((x) => String((x as { String?: { sval?: string } }).String?.sval ?? '')) : [];
}
