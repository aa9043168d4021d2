// CREATE TABLE / INDEX / TYPE (without IF NOT EXISTS) of a name that is already taken, in the snapshot or by
// an earlier pending statement. An INVALID index of that name is what an interrupted CREATE INDEX
// CONCURRENTLY leaves behind: the rerun fails the same way (42P07) until it is dropped.
import { strings } from '../fragments.ts';
import type { Predictor } from './predictor.ts';

export const existsPredictor: Predictor = {
  name: 'exists',
  applies: (a) => ['CreateStmt', 'IndexStmt', 'CreateEnumStmt'].includes(a.kind) && !a.node.if_not_exists,
  async predict(a, ctx) {
    const m = ctx.model;
    if (a.kind === 'CreateEnumStmt') {
      const names = strings(a.node.typeName);
      const schema = m.schemaOf(names.length > 1 ? names[0] : undefined);
      const name = names[names.length - 1]!;
      await m.load(schema);
      return m.typeTaken(schema, name)
        ? [ctx.finding('PRISMA_ALREADY_EXISTS', { sqlstate: '42710', message: `type "${name}" already exists in schema "${schema}"` })]
        : [];
    }
    const rv = (a.kind === 'CreateStmt' ? a.node.relation : undefined) as { schemaname?: string; relname: string } | undefined;
    const schema = a.kind === 'CreateStmt' ? m.schemaOf(rv!.schemaname) : a.table?.schema;
    const name = a.kind === 'CreateStmt' ? rv!.relname : (a.node.idxname as string | undefined);
    if (!schema || !name) return [];
    await m.load(schema);
    const rel = m.relation(schema, name);
    if (!rel) return [];
    if (rel.kind === 'i' && rel.valid === false) {
      return [
        ctx.finding('PRISMA_INVALID_INDEX', {
          message: `an INVALID index "${name}" exists (left by an interrupted CREATE INDEX CONCURRENTLY): CREATE INDEX "${name}" fails`,
          fix: `Drop the leftover first: DROP INDEX CONCURRENTLY ${JSON.stringify(name)}; then deploy again.`,
        }),
      ];
    }
    return [
      ctx.finding('PRISMA_ALREADY_EXISTS', {
        message: `relation "${name}" already exists in schema "${schema}"${rel.live ? '' : ' (created by an earlier pending statement)'}`,
      }),
    ];
  },
};
