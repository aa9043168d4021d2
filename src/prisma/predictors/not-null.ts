// ALTER COLUMN … SET NOT NULL: rows whose value is NULL, after what the earlier statements set (an UPDATE
// of the same file, with or without FROM, is part of the model).
import { ident } from '../../db/sql.ts';
import { identity } from '../context.ts';
import type { Predictor } from './predictor.ts';

export const notNullPredictor: Predictor = {
  name: 'not-null',
  applies: (a) => a.kind === 'AT_SetNotNull',
  async predict(a, ctx) {
    const t = a.table!;
    const col = String(a.node.name);
    if (t.empty || !t.columns.some((c) => c.name === col)) return [];
    const x = `${ident(a.alias!)}.${ident(col)}`;
    const r = await ctx.offending(t.rows, a.alias!, identity(t, a.alias!), `${x} IS NULL`);
    if (r.count === 0) return [];
    return [
      ctx.finding('PRISMA_NULLS_IN_NOT_NULL', {
        table: t.name,
        count: r.count,
        sample: r.sample,
        message: `${r.count} row(s) of "${t.name}" have NULL in "${col}" when SET NOT NULL runs`,
      }),
    ];
  },
};
