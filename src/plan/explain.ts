// Reading EXPLAIN (FORMAT JSON): sequential scans over large tables, and the index that would avoid them,
// proposed only when no index of the table (or temporary index of the migration) already serves the
// columns the scan filters or joins on, and once.
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import type { Migration } from '../spec/define.ts';
import { LEADING_INDEX_COLUMNS_SQL, TABLE_SIZE_SQL } from './plan-sql.ts';

export interface SeqScanFinding {
  step: string;
  table: string;
  alias: string;
  /** Rows of the table (pg_class estimate). */
  rows: number;
  /** The condition the scan filters or joins on, as EXPLAIN prints it. */
  condition: string | null;
  /** A temporary index that would serve the condition, when its columns can be read from it and none serves them yet. */
  proposedIndex: { name: string; table: string; columns: string } | null;
  /** Why none is proposed although the columns are known: the index (existing, in tempIndexes, or proposed above) led by one of them. */
  servedBy?: string;
}

interface PlanNode {
  'Node Type'?: string;
  'Relation Name'?: string;
  Alias?: string;
  Filter?: string;
  'Hash Cond'?: string;
  'Join Filter'?: string;
  'Merge Cond'?: string;
  Plans?: PlanNode[];
}

const COND_KEYS = ['Filter', 'Hash Cond', 'Join Filter', 'Merge Cond'] as const;

/** Every Seq Scan node of the plan with the conditions of its parent joins. */
function walk(node: PlanNode, parents: PlanNode[], out: Array<{ node: PlanNode; conds: string[] }>): void {
  if (node['Node Type'] === 'Seq Scan' && node['Relation Name']) {
    const conds = [node, ...parents.slice(-3)].flatMap((n) => COND_KEYS.map((k) => n[k]).filter((c): c is string => !!c));
    out.push({ node, conds });
  }
  for (const child of node.Plans ?? []) walk(child, [...parents, node], out);
}

/** Columns of `alias` (or unqualified, for the node's own filter) named in the conditions, in order. */
export function columnsIn(conds: readonly string[], alias: string, columns: readonly string[]): string[] {
  const found: string[] = [];
  const re = /(?:("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)\.)?("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)/g;
  const unq = (s: string) => (s.startsWith('"') ? s.slice(1, -1).replace(/""/g, '"') : s);
  conds.forEach((c, i) => {
    for (const m of c.matchAll(re)) {
      const a = m[1] ? unq(m[1]) : null;
      const col = unq(m[2]!);
      // the scan's own Filter names its columns without alias; joins name them with it
      if ((a === alias || (a === null && i === 0)) && columns.includes(col) && !found.includes(col)) found.push(col);
    }
  });
  return found;
}

/** The leading column of a temporary index's column list, as the catalog names it (an expression: none). */
export function leadingColumn(columns: string): string | null {
  const first = columns
    .split(',')[0]!
    .trim()
    .replace(/\s+(ASC|DESC|NULLS\s+\w+|COLLATE\s+.*)$/i, '')
    .trim();
  const quoted = /^"((?:[^"]|"")+)"$/.exec(first);
  if (quoted) return quoted[1]!.replace(/""/g, '"');
  return /^[A-Za-z_][A-Za-z0-9_$]*$/.test(first) ? first.toLowerCase() : null;
}

export async function findSeqScans(
  db: Db,
  explain: unknown,
  step: string,
  largeRows: number,
  tempIndexes: Migration['tempIndexes'] = [],
): Promise<SeqScanFinding[]> {
  const root = (Array.isArray(explain) ? explain[0] : explain) as { Plan?: PlanNode } | undefined;
  if (!root?.Plan) return [];
  const scans: Array<{ node: PlanNode; conds: string[] }> = [];
  walk(root.Plan, [], scans);
  const out: SeqScanFinding[] = [];
  const proposed = new Set<string>();
  for (const { node, conds } of scans) {
    const table = node['Relation Name']!;
    const alias = node.Alias ?? table;
    const size = await db.query<{ estimate: number }>(TABLE_SIZE_SQL, [qualified(table)]);
    let rows = Number(size.rows[0]?.estimate ?? 0);
    if (rows < 0) rows = Number((await db.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${qualified(table)}`)).rows[0]!.n);
    if (rows < largeRows) continue;
    const cols = await db.query<{ name: string }>(
      `SELECT attname AS name FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`,
      [qualified(table)],
    );
    const used = columnsIn(
      conds,
      alias,
      cols.rows.map((c) => c.name),
    ).slice(0, 3);
    const name = `belay_tmp_${table}_${used.join('_')}`.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 63);
    const finding: SeqScanFinding = { step, table, alias, rows, condition: conds[0] ?? null, proposedIndex: null };
    if (used.length > 0) {
      // an index led by a column the scan uses could serve it already: the planner chose the scan (the
      // primary key for a wide key range, say), and another index would not change its mind
      const existing = (await db.query<{ index: string; column: string }>(LEADING_INDEX_COLUMNS_SQL, [qualified(table)])).rows;
      const served =
        existing.find((x) => used.includes(x.column))?.index ??
        tempIndexes.find((x) => x.table.replace(/^.*\./, '') === table && used.includes(leadingColumn(x.columns) ?? ''))?.name ??
        (proposed.has(name) ? name : undefined);
      if (served) finding.servedBy = served;
      else {
        proposed.add(name);
        finding.proposedIndex = { name, table, columns: used.map((c) => ident(c)).join(', ') };
      }
    }
    out.push(finding);
  }
  return out;
}
