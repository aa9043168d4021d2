// ADD COLUMN … NOT NULL without a default (or with DEFAULT NULL): fails as soon as the table has a row.
import { identity } from '../context.ts';
import { constraintsOf, defaultSql, type ColumnDefNode } from '../columns.ts';
import type { Predictor } from './predictor.ts';

export const requiredColumnPredictor: Predictor = {
  name: 'required-column',
  applies: (a) => {
    if (a.kind !== 'AT_AddColumn') return false;
    const def = (a.node.def as { ColumnDef: ColumnDefNode }).ColumnDef;
    const cons = constraintsOf(def);
    const types = def.typeName?.names.map((n) => n.String.sval) ?? [];
    return (
      cons.some((c) => c.contype === 'CONSTR_NOTNULL' || c.contype === 'CONSTR_PRIMARY') &&
      !cons.some((c) => ['CONSTR_IDENTITY', 'CONSTR_GENERATED'].includes(c.contype)) &&
      !/serial/i.test(types[types.length - 1] ?? '')
    );
  },
  async predict(a, ctx) {
    const t = a.table!;
    const def = (a.node.def as { ColumnDef: ColumnDefNode }).ColumnDef;
    if (t.empty || defaultSql(ctx.frag, def) !== null || t.columns.some((c) => c.name === def.colname)) return [];
    const r = await ctx.offending(t.rows, a.alias!, identity(t, a.alias!), 'true');
    if (r.count === 0) return [];
    return [
      ctx.finding('PRISMA_REQUIRED_COLUMN_ROWS', {
        table: t.name,
        count: r.count,
        sample: r.sample,
        message: `"${t.name}" has ${r.count} row(s): the required column "${def.colname}" has no default to give them`,
      }),
    ];
  },
};
