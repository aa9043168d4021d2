// ALTER COLUMN … TYPE: rows whose value (or USING expression) cannot be converted to the new type, tested
// per row without aborting the snapshot. For an enum the files create (Prisma's enum rebuild: CREATE TYPE
// "X_new", ALTER COLUMN … TYPE "X_new" USING (c::text::"X_new")) the values are compared with its labels.
// The conversion is the assignment cast ALTER COLUMN TYPE applies: varchar(n) raises an error, it does not
// truncate as an explicit cast does.
import { ident, literal } from '../../db/sql.ts';
import { type ColumnDefNode, typeSql } from '../columns.ts';
import { identity, isDataError, type Action, type PredictContext } from '../context.ts';
import { usingSql } from '../effects.ts';
import { strings } from '../fragments.ts';
import { evaluateAllSql, inputInvalidWhere, PER_ROW_RESULT_SQL, perRowCastSql } from '../prisma-sql.ts';
import type { Finding } from '../types.ts';
import type { Predictor } from './predictor.ts';

const LIMITED = /^(?:varchar|character\s+varying|char|character|bpchar)\s*\(\s*(\d+)\s*\)$/i;
const TEXTLIKE = /^(?:text|character varying|varchar|character|char|bpchar|citext)\b/i;

/** Counts failing rows one by one: the conversion runs in PL/pgSQL from each row's fields. */
async function perRow(a: Action, ctx: PredictContext, column: string, type: string): Promise<{ count: number; sample: Record<string, unknown>[] }> {
  const t = a.table!;
  const alias = a.alias!;
  const ids = identity(t, alias).map((x) => `${literal(x.slice(x.lastIndexOf('.') + 2, -1).replace(/""/g, '"'))}, ${x}`);
  const show = `jsonb_build_object(${[...ids, `'value', ${ident(alias)}.${ident(column)}::text`].join(', ')})`;
  const def = (a.node.def as { ColumnDef: ColumnDefNode }).ColumnDef;
  const expr = def.raw_default ? usingSql(ctx.frag, a, ctx.frag.columnRefs(def.raw_default, 'r'))! : `r.${ident(column)}`;
  await ctx.probe(perRowCastSql(t.rows, alias, show, expr, type, ctx.sample));
  const r = await ctx.probe<{ n: number; sample: Record<string, unknown>[] }>(PER_ROW_RESULT_SQL);
  return { count: Number(r[0]!.n), sample: r[0]!.sample };
}

/**
 * The text column a conversion reads through its input function (no USING, USING c::T or c::text::T on a
 * text column): then pg_input_is_valid(c, T) answers for every row in one pass. Null otherwise.
 */
function inputColumn(a: Action, column: { name: string; type: string }): string | null {
  if (!TEXTLIKE.test(column.type)) return null;
  let n = (a.node.def as { ColumnDef: ColumnDefNode }).ColumnDef.raw_default as Record<string, unknown> | undefined;
  if (!n) return column.name;
  for (let depth = 0; depth < 2 && n?.TypeCast; depth++) n = (n.TypeCast as { arg: Record<string, unknown> }).arg;
  const ref = n?.ColumnRef as { fields?: unknown[] } | undefined;
  const fields = strings(ref?.fields);
  return fields[fields.length - 1] === column.name ? column.name : null;
}

export const alterTypePredictor: Predictor = {
  name: 'alter-type',
  applies: (a) => a.kind === 'AT_AlterColumnType',
  async predict(a, ctx): Promise<Finding[]> {
    const t = a.table!;
    const col = t.columns.find((c) => c.name === String(a.node.name));
    const def = (a.node.def as { ColumnDef: ColumnDefNode }).ColumnDef;
    if (t.empty || !col || !def.typeName) return [];
    const alias = a.alias!;
    const using = usingSql(ctx.frag, a);
    const src = using ?? `${ident(alias)}.${ident(col.name)}`;
    const names = strings(def.typeName.names);
    const enumState = ctx.model.enumOf(names.length > 1 ? names[0] : undefined, names[names.length - 1]!);
    const array = (def.typeName.arrayBounds?.length ?? 0) > 0;
    const show = [...new Set([...identity(t, alias), `${ident(alias)}.${ident(col.name)}::text AS "value"`])];
    let result: { count: number; sample: Record<string, unknown>[] };
    // whether converting in the model raises an error (an explicit cast to varchar(n) truncates instead)
    let raises = false;
    if (enumState && !enumState.live) {
      // the target enum does not exist in the snapshot: its values are text here
      const labels = `ARRAY[${enumState.labels.map(literal).join(', ')}]::text[]`;
      const bad = array
        ? `EXISTS (SELECT 1 FROM unnest((${src})::text[]) AS v(x) WHERE v.x IS NOT NULL AND NOT v.x = ANY (${labels}))`
        : `(${src}) IS NOT NULL AND NOT (${src})::text = ANY (${labels})`;
      result = await ctx.offending(t.rows, alias, show, bad);
    } else {
      const { type } = typeSql(ctx.frag, def.typeName);
      const limited = LIMITED.exec(type.trim());
      if (limited) {
        result = await ctx.offending(t.rows, alias, show, `char_length(rtrim((${src})::text, ' ')) > ${Number(limited[1])}`);
      } else {
        try {
          // one pass that converts every row: if it succeeds, no row fails
          await ctx.probe(evaluateAllSql(t.rows, alias, [`(${src})::${type}`]));
          result = { count: 0, sample: [] };
        } catch (err) {
          if (!isDataError(err)) throw err;
          raises = true;
          const input = ctx.inputIsValid ? inputColumn(a, col) : null;
          result = input
            ? await ctx.offending(t.rows, alias, show, inputInvalidWhere(`${ident(alias)}.${ident(input)}`, type))
            : await perRow(a, ctx, col.name, type);
        }
      }
    }
    if (result.count === 0) return [];
    // the model converts the column for later statements: a conversion that errors would stop them all
    if (raises) t.broken = `statement ${a.stmt.index} (ALTER COLUMN "${col.name}" TYPE) fails on its rows`;
    const isEnum = !!enumState;
    return [
      ctx.finding(isEnum ? 'PRISMA_ENUM_VALUES' : 'PRISMA_CAST_FAILS', {
        table: t.name,
        count: result.count,
        sample: result.sample,
        message: isEnum
          ? `${result.count} row(s) of "${t.name}" hold a "${col.name}" value that enum ${names[names.length - 1]} does not have (${enumState.labels.join(', ')})`
          : `${result.count} row(s) of "${t.name}" have a "${col.name}" value that cannot be converted to ${typeSql(ctx.frag, def.typeName).type}`,
      }),
    ];
  },
};
