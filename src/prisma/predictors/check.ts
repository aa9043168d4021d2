// ADD CONSTRAINT … CHECK (validated): rows for which the expression is false (NULL passes, as in PostgreSQL).
import { identity, isDataError } from '../context.ts';
import { findTop, matching } from '../sql-text.ts';
import { constraintOf, type Predictor } from './predictor.ts';

export const checkPredictor: Predictor = {
  name: 'check',
  applies: (a) => {
    const c = constraintOf(a);
    return c?.contype === 'CONSTR_CHECK' && !c.skip_validation;
  },
  async predict(a, ctx) {
    const t = a.table!;
    const c = constraintOf(a)!;
    if (t.empty) return [];
    const f = ctx.frag;
    const kw = findTop(
      f.toks,
      f.toks.findIndex((x) => x.start >= (c.location ?? 0)),
      (x) => x.up === 'CHECK',
    );
    const expr = f.tokens(kw + 2, matching(f.toks, kw + 1));
    try {
      const r = await ctx.offending(t.rows, a.alias!, identity(t, a.alias!), `NOT (${expr})`);
      if (r.count === 0) return [];
      return [
        ctx.finding('PRISMA_CHECK_VIOLATIONS', {
          table: t.name,
          count: r.count,
          sample: r.sample,
          message: `${r.count} row(s) of "${t.name}" violate CHECK (${expr})${c.conname ? ` of ${c.conname}` : ''}`,
        }),
      ];
    } catch (err) {
      if (!isDataError(err)) throw err;
      return [
        ctx.finding('PRISMA_CHECK_VIOLATIONS', {
          table: t.name,
          message: `evaluating CHECK (${expr}) on the rows of "${t.name}" fails: ${(err as Error).message}`,
        }),
      ];
    }
  },
};
