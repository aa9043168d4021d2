// CREATE UNIQUE INDEX, ADD CONSTRAINT … UNIQUE / PRIMARY KEY: key values that occur more than once among
// the rows the index covers (its WHERE clause; NULLs count as distinct unless NULLS NOT DISTINCT). A
// primary key also fails on NULLs.
import { ident } from '../../db/sql.ts';
import { counted, identity, isDataError, type Action, type PredictContext } from '../context.ts';
import { strings } from '../fragments.ts';
import { distinctShortfallSql, duplicatesSql } from '../prisma-sql.ts';
import { findTop, matching, splitTop, tokenAt } from '../sql-text.ts';
import type { Finding } from '../types.ts';
import { constraintOf, type Predictor } from './predictor.ts';

interface IndexElem {
  name?: string;
  expr?: unknown;
  opclass?: unknown[];
  collation?: unknown[];
}

const TRAILING = new Set(['ASC', 'DESC', 'NULLS', 'FIRST', 'LAST']);

/** The key expressions and the predicate of a CREATE UNIQUE INDEX, in the statement's own text. */
function indexKeys(a: Action, ctx: PredictContext): { keys: string[]; where: string | null } {
  const f = ctx.frag;
  const rel = a.node.relation as { location: number };
  const open = findTop(f.toks, tokenAt(f.toks, rel.location), (t) => t.up === '(');
  const close = matching(f.toks, open);
  const elems = (a.node.indexParams as Array<{ IndexElem: IndexElem }>).map((e) => e.IndexElem);
  const keys = splitTop(f.toks, open + 1, close).map(([i, j], k) => {
    const el = elems[k]!;
    if (el.name) return `${ident(a.alias!)}.${ident(el.name)}`;
    let end = j;
    const drop = strings(el.opclass).length ? strings(el.opclass).length * 2 - 1 : 0;
    end -= drop;
    while (end > i + 1 && TRAILING.has(f.toks[end - 1]!.up)) end--;
    const collate = findTop(f.toks, i, (t) => t.up === 'COLLATE');
    return f.tokens(i, Math.min(end, collate));
  });
  const w = findTop(f.toks, close + 1, (t) => t.up === 'WHERE');
  return { keys, where: w < f.toks.length ? f.tokens(w + 1, f.toks.length) : null };
}

/**
 * One pass that proves there are no duplicates when there are none (the usual case), at a fraction of the
 * cost of grouping the keys themselves: every 64-bit hash of the keys distinct means every key distinct
 * (equal keys hash alike). Any shortfall (a duplicate, or a collision) sends the caller to the exact query.
 * False when the keys have no hash function.
 */
async function allDistinct(ctx: PredictContext, rows: string, alias: string, keys: readonly string[], cond: string): Promise<boolean> {
  try {
    const r = await ctx.probe<{ d: number }>(distinctShortfallSql(rows, alias, keys, cond));
    return Number(r[0]!.d) === 0;
  } catch (err) {
    if (isDataError(err)) throw err;
    return false;
  }
}

/** Rows sharing a key among those a unique index covers (its predicate; NULL keys unless NULLS NOT DISTINCT). */
export async function duplicates(ctx: PredictContext, rows: string, alias: string, keys: readonly string[], where: string | null, nullsEqual: boolean) {
  const cond = [where ? `(${where})` : null, ...(nullsEqual ? [] : keys.map((k) => `${k} IS NOT NULL`))].filter(Boolean).join(' AND ') || 'true';
  if (await allDistinct(ctx, rows, alias, keys, cond)) return { count: 0, groups: 0, sample: [] };
  return counted(await ctx.probe(duplicatesSql(rows, alias, keys, cond), [ctx.sample]));
}

export const uniquePredictor: Predictor = {
  name: 'unique',
  applies: (a) =>
    (a.kind === 'IndexStmt' && !!a.node.unique) ||
    (['CONSTR_UNIQUE', 'CONSTR_PRIMARY'].includes(constraintOf(a)?.contype ?? '') && !constraintOf(a)?.indexname),
  async predict(a, ctx): Promise<Finding[]> {
    const t = a.table!;
    if (t.empty) return [];
    const c = constraintOf(a);
    const alias = a.alias!;
    const { keys, where } = c ? { keys: strings(c.keys).map((k) => `${ident(alias)}.${ident(k)}`), where: null } : indexKeys(a, ctx);
    const nullsEqual = c ? !!c.nulls_not_distinct : !!a.node.nulls_not_distinct;
    const out: Finding[] = [];
    if (c?.contype === 'CONSTR_PRIMARY') {
      const nulls = await ctx.offending(t.rows, alias, identity(t, alias), keys.map((k) => `${k} IS NULL`).join(' OR '));
      if (nulls.count > 0) {
        out.push(
          ctx.finding('PRISMA_NULLS_IN_NOT_NULL', {
            table: t.name,
            count: nulls.count,
            sample: nulls.sample,
            message: `${nulls.count} row(s) of "${t.name}" have NULL in a column of the new primary key (${strings(c.keys).join(', ')})`,
          }),
        );
      }
    }
    const d = await duplicates(ctx, t.rows, alias, keys, where, nullsEqual);
    if (d.count > 0) {
      const what = c ? strings(c.keys).join(', ') : keys.join(', ');
      out.push(
        ctx.finding('PRISMA_DUPLICATE_KEYS', {
          table: t.name,
          count: d.count,
          sample: d.sample,
          message: `${d.count} rows of "${t.name}" share ${d.groups} value(s) of (${what})${where ? ' among the rows the index covers' : ''}: building ${String(a.node.idxname ?? c?.conname ?? 'the index')} fails`,
        }),
      );
    }
    return out;
  },
};
