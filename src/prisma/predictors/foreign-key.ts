// ADD CONSTRAINT … FOREIGN KEY (validated, i.e. without NOT VALID): child rows whose key columns are all set
// and match no parent row. Prisma drops and re-adds a foreign key whenever its onDelete/onUpdate changes, so
// a legacy database with orphans fails on a migration that looks harmless.
import { ident } from '../../db/sql.ts';
import { identity } from '../context.ts';
import { strings } from '../fragments.ts';
import { orphanWhere } from '../prisma-sql.ts';
import { constraintOf, type Predictor } from './predictor.ts';

export const foreignKeyPredictor: Predictor = {
  name: 'foreign-key',
  applies: (a) => {
    const c = constraintOf(a);
    return c?.contype === 'CONSTR_FOREIGN' && !c.skip_validation;
  },
  async predict(a, ctx) {
    const t = a.table!;
    const c = constraintOf(a)!;
    if (t.empty) return [];
    const parent = await ctx.model.table(c.pktable!.schemaname, c.pktable!.relname);
    if (!parent) {
      return [ctx.finding('PRISMA_MISSING_TABLE', { table: c.pktable!.relname, message: `the referenced table "${c.pktable!.relname}" does not exist` })];
    }
    const fk = strings(c.fk_attrs);
    const pk = strings(c.pk_attrs).length ? strings(c.pk_attrs) : parent.primaryKey;
    if (pk.length !== fk.length) return [];
    const show = [...new Set([...identity(t, 'c'), ...fk.map((x) => `c.${ident(x)}`)])];
    const r = await ctx.offending(t.rows, 'c', show, orphanWhere(parent.rows, fk, pk));
    if (r.count === 0) return [];
    return [
      ctx.finding('PRISMA_FK_ORPHANS', {
        table: t.name,
        count: r.count,
        sample: r.sample,
        message: `${r.count} row(s) of "${t.name}" have (${fk.join(', ')}) with no matching row in "${parent.name}" (${pk.join(', ')}): ${c.conname ?? 'the foreign key'} fails`,
      }),
    ];
  },
};
