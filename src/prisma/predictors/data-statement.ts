// UPDATE, INSERT … SELECT, DELETE: the statement's own expressions evaluated over the rows it touches (after
// it has been modelled): a cast or a function that fails on some live row makes the migration fail.
import { isDataError, type Action } from '../context.ts';
import { evaluateAllSql } from '../prisma-sql.ts';
import { ident } from '../../db/sql.ts';
import type { Predictor } from './predictor.ts';

export const dataStatementPredictor: Predictor & { after: true } = {
  name: 'data-statement',
  after: true,
  applies: (a: Action) => ['UpdateStmt', 'InsertStmt', 'DeleteStmt'].includes(a.kind) && !!a.table,
  async predict(a, ctx) {
    const t = a.table!;
    if (t.empty || !t.changed) return [];
    try {
      // count(t.*) builds every row of the modelled result, so every new value is computed
      await ctx.probe(evaluateAllSql(t.rows, 'belay_rows', [`${ident('belay_rows')}.*`]));
      return [];
    } catch (err) {
      if (!isDataError(err)) throw err;
      t.broken = `statement ${a.stmt.index} fails on its rows`;
      return [ctx.finding('PRISMA_STATEMENT_FAILS', {
        table: t.name, sqlstate: (err as { server?: { sqlstate?: string } }).server?.sqlstate,
        message: `${a.stmt.text.split(/\s+/)[0]!.toUpperCase()} on "${t.name}" fails on its rows: ${(err as Error).message}`,
      })];
    }
  },
};
