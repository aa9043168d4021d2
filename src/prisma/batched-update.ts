// A large UPDATE of a migration file as a belay batched step. Only the plain form is taken: one table with a
// primary key (composite ones batched by row-value keyset), `SET column = expression, …` and an optional WHERE. FROM, WITH, RETURNING,
// WHERE CURRENT OF, DEFAULT and subscripted or multi-column targets stay in the file's transaction, as
// Prisma runs them: their meaning as a decision is not the UPDATE's in every case.
import { ident, qualified } from '../db/sql.ts';
import { checksumOf, type LoadedMigration, validate } from '../spec/load.ts';
import type { ActionInfo } from './analyze.ts';
import type { ParsedFile } from './parse.ts';
import { findTop, splitTop } from './sql-text.ts';
import type { Statement } from './types.ts';

export interface BatchedUpdate {
  /** The table as a spec names it (`schema.table`). */
  table: string;
  /** The primary key's columns (the step's key: the table's own primary key, composite or not). */
  key: string[];
  writes: string[];
  /** The rule as belay decides it: the key and the new value of every written column, for the rows the UPDATE touches. */
  decide: string;
  /** The planner's estimate of the table's rows. */
  rows: number;
}

interface Target {
  ResTarget: { name?: string; indirection?: unknown[]; val?: Record<string, unknown> };
}

/** The UPDATE as a batched step, or undefined when it is not one belay takes (or the table is small). */
export function batchedUpdate(p: ParsedFile, s: Statement, act: ActionInfo, over: number): BatchedUpdate | undefined {
  const n = s.node;
  if (s.kind !== 'UpdateStmt' || !act.live || act.touchedBefore || act.rows < over || !act.table || !act.schema) return undefined;
  if (n.fromClause || n.withClause || n.returningList || (n.whereClause as Record<string, unknown> | undefined)?.CurrentOfExpr) return undefined;
  if (act.primaryKey.length === 0 || act.table.includes('.') || act.schema.includes('.')) return undefined;
  const key = act.primaryKey;
  const targets = (n.targetList as Target[] | undefined) ?? [];
  if (
    targets.some(
      (t) =>
        !t.ResTarget.name || t.ResTarget.indirection?.length || !t.ResTarget.val || 'SetToDefault' in t.ResTarget.val || 'MultiAssignRef' in t.ResTarget.val,
    )
  )
    return undefined;
  const writes = targets.map((t) => t.ResTarget.name!);
  if (writes.some((w) => key.includes(w)) || new Set(writes).size !== writes.length) return undefined;
  const toks = p.text.tokens(s.start, s.end);
  const set = findTop(toks, 1, (t) => t.up === 'SET');
  const where = findTop(toks, set + 1, (t) => t.up === 'WHERE');
  if (set >= toks.length || set < 2) return undefined;
  const parts = splitTop(toks, set + 1, where);
  if (parts.length !== writes.length) return undefined;
  const exprs: string[] = [];
  for (const [a, b] of parts) {
    // `column = expression`: one token before the `=` (a subscript or a field would be more)
    if (toks[a + 1]?.up !== '=' || a + 2 >= b) return undefined;
    exprs.push(p.text.slice(toks[a + 2]!.start, toks[b - 1]!.end));
  }
  // the table schema-qualified: belay's helper sessions do not share the deploy's search_path
  const rel = n.relation as { inh?: boolean; alias?: { aliasname?: string } };
  const alias = rel.alias?.aliasname;
  const relation = `${rel.inh === false ? 'ONLY ' : ''}${qualified([act.schema, act.table])}${alias ? ` AS ${ident(alias)}` : ''}`;
  const condition = where < toks.length ? p.text.slice(toks[where + 1]!.start, toks[toks.length - 1]!.end) : undefined;
  const decide =
    `SELECT ${key.map(ident).join(', ')}, ${exprs.map((e, i) => `(${e}) AS ${ident(writes[i]!)}`).join(', ')}\n  FROM ${relation}` +
    (condition ? `\n WHERE ${condition}` : '');
  return { table: `${act.schema}.${act.table}`, key, writes, decide, rows: act.rows };
}

/** The belay migration that carries one batched UPDATE of a Prisma migration (its id is stable: a crash resumes it). */
export function batchedMigration(u: BatchedUpdate, migration: string, statement: number, file: string): LoadedMigration {
  const base = migration
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '');
  const id = `prisma.${base.slice(0, 48)}.s${statement}`;
  const spec = validate(
    {
      id,
      purpose: `Statement ${statement} of the Prisma migration ${migration}: UPDATE of ${u.table}, run by belay prisma deploy in batches.`,
      tables: [u.table],
      steps: [{ kind: 'batched', name: `statement-${statement}`, table: u.table, writes: u.writes, decide: u.decide }],
    },
    file,
  );
  return { spec, file, params: {}, checksum: checksumOf(spec, {}) };
}
