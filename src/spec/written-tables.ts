// Which of a migration's tables a run writes and which it only reads. Written: the tables of batched steps,
// the tables those writes change through foreign-key actions and triggers (step-facts.ts), and the targets
// of INSERT, UPDATE, DELETE, MERGE, TRUNCATE and ALTER TABLE in plain SQL steps (a function or DO block
// they call is not looked into). The rest of `tables` is only read:
// not backed up and not restored unless asked for (a restore of a read table deletes what others added).
import { parse } from 'libpg-query';
import type { Db } from '../db/connection.ts';
import { SpecError } from '../errors.ts';
import type { Migration } from './define.ts';
import { stepFacts } from './step-facts.ts';

export interface TableRoles {
  /** Entries of spec.tables, in their order. */
  written: string[];
  read: string[];
}

/** The roles as the catalog says today (the tables changed indirectly read from it). */
export async function tableRoles(db: Db, spec: Migration): Promise<TableRoles> {
  const indirect: string[] = [];
  try {
    for (const f of await stepFacts(db, spec)) for (const t of f.indirectTables) indirect.push(t.table);
  } catch (err) {
    // a declared trigger that is gone (schema changed since): the tables the steps name stay the written ones
    if (!(err instanceof SpecError)) throw err;
  }
  return rolesOf(spec, indirect);
}

/** The roles from the spec alone, plus the tables known to change indirectly (none without a database). */
export async function rolesOf(spec: Migration, indirect: readonly string[] = []): Promise<TableRoles> {
  const names = new Set<string>(indirect);
  for (const s of spec.steps) {
    if (s.kind === 'batched') names.add(s.table);
    else for (const t of await sqlTargets(s.up)) names.add(t);
  }
  const written = spec.tables.filter((t) => [...names].some((n) => sameTable(n, t)));
  return { written, read: spec.tables.filter((t) => !written.includes(t)) };
}

// ALTER TABLE counts: ALTER COLUMN … TYPE … USING rewrites every row
const TARGETS = new Set(['InsertStmt', 'UpdateStmt', 'DeleteStmt', 'MergeStmt', 'AlterTableStmt']);

/** The tables a SQL text writes rows of, as written ("schema.table" or "table"); a data-modifying CTE counts too. */
export async function sqlTargets(sql: string): Promise<string[]> {
  const out: string[] = [];
  const name = (r: { schemaname?: string; relname?: string } | undefined) => r?.relname && out.push(r.schemaname ? `${r.schemaname}.${r.relname}` : r.relname);
  const walk = (node: unknown, kind?: string): void => {
    if (Array.isArray(node)) for (const x of node) walk(x);
    else if (node && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (kind && TARGETS.has(kind)) name(o.relation as { relname?: string });
      if (kind === 'TruncateStmt') for (const r of (o.relations as Array<{ RangeVar?: { relname?: string } }>) ?? []) name(r.RangeVar);
      for (const [k, v] of Object.entries(o)) walk(v, k);
    }
  };
  try {
    walk(await parse(sql));
  } catch {
    // the spec's SQL was parsed on load; a text that does not parse here writes nothing we can name
  }
  return out;
}

export function sameTable(a: string, b: string): boolean {
  const norm = (x: string) => x.replace(/"/g, '').replace(/^public\./, '');
  return norm(a) === norm(b);
}
