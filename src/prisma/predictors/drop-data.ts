// DROP COLUMN and DROP TABLE: the values or rows that go with them (nothing fails, but nothing brings them back).
import { ident } from '../../db/sql.ts';
import { identity } from '../context.ts';
import type { Predictor } from './predictor.ts';

export const dropColumnPredictor: Predictor = {
  name: 'drop-column',
  applies: (a) => a.kind === 'AT_DropColumn',
  async predict(a, ctx) {
    const t = a.table!;
    const col = String(a.node.name);
    if (t.empty || !t.columns.some((c) => c.name === col)) return [];
    const x = `${ident(a.alias!)}.${ident(col)}`;
    const show = [...new Set([...identity(t, a.alias!), x])];
    const r = await ctx.offending(t.rows, a.alias!, show, `${x} IS NOT NULL`);
    if (r.count === 0) return [];
    return [
      ctx.finding('PRISMA_DROP_COLUMN_DATA', {
        table: t.name,
        count: r.count,
        sample: r.sample,
        message: `"${t.name}"."${col}" is dropped with ${r.count} non-NULL value(s)`,
      }),
    ];
  },
};

export const dropTablePredictor: Predictor = {
  name: 'drop-table',
  applies: (a) => a.kind === 'DropStmt' && a.node.removeType === 'OBJECT_TABLE' && !!a.table,
  async predict(a, ctx) {
    const t = a.table!;
    if (t.empty) return [];
    const r = await ctx.offending(t.rows, t.name, identity(t, t.name), 'true');
    if (r.count === 0) return [];
    return [
      ctx.finding('PRISMA_DROP_TABLE_DATA', {
        table: t.name,
        count: r.count,
        sample: r.sample,
        message: `"${t.name}" is dropped with ${r.count} row(s)`,
      }),
    ];
  },
};
