// UPDATE, INSERT … SELECT, DELETE: the statement's own expressions evaluated over the rows it touches (after
// it has been modelled): a cast or a function that fails on some live row makes the migration fail. After an
// UPDATE or INSERT, the table's existing unique indexes must still hold: the Cal.com backfill of April 2025
// failed on "EventType_userId_slug_key", which was there before it.
import { isDataError, type Action } from '../context.ts';
import { evaluateAllSql, UNIQUE_INDEXES_SQL } from '../prisma-sql.ts';
import { duplicates } from './unique.ts';
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
    } catch (err) {
      if (!isDataError(err)) throw err;
      t.broken = `statement ${a.stmt.index} fails on its rows`;
      return [
        ctx.finding('PRISMA_STATEMENT_FAILS', {
          table: t.name,
          sqlstate: (err as { server?: { sqlstate?: string } }).server?.sqlstate,
          message: `${a.stmt.text.split(/\s+/)[0]!.toUpperCase()} on "${t.name}" fails on its rows: ${(err as Error).message}`,
        }),
      ];
    }
    if (a.kind === 'DeleteStmt' || !t.live) return [];
    const out = [];
    const set = a.kind === 'UpdateStmt' ? ((a.node.targetList as Array<{ ResTarget: { name: string } }>) ?? []).map((x) => x.ResTarget.name) : null;
    const indexes = await ctx.probe<{ name: string; keys: string[]; where: string | null; nullsEqual: boolean }>(UNIQUE_INDEXES_SQL, [t.live.oid]);
    // an UPDATE can only break the indexes over the columns it sets
    const mentions = (k: string, c: string) => k.includes(ident(c)) || new RegExp(`(^|[^\\w"])${c.replace(/[^\w]/g, '\\$&')}($|[^\\w"])`).test(k);
    const touches = (keys: readonly string[]) => !set || set.some((c) => keys.some((k) => mentions(k, c)));
    for (const u of indexes.filter((x) => touches(x.keys))) {
      const d = await duplicates(ctx, t.rows, t.name, u.keys, u.where, u.nullsEqual);
      if (d.count === 0) continue;
      out.push(
        ctx.finding('PRISMA_DUPLICATE_KEYS', {
          table: t.name,
          count: d.count,
          sample: d.sample,
          message: `after this ${a.kind === 'UpdateStmt' ? 'UPDATE' : 'INSERT'}, ${d.count} rows of "${t.name}" would share ${d.groups} value(s) of (${u.keys.join(', ')}): the existing unique index ${u.name} makes it fail`,
        }),
      );
    }
    return out;
  },
};
