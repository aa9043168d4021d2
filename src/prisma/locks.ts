// The table locks each statement takes, how long the file holds them (a lock is held until its transaction
// ends: the end of the file, or its explicit COMMIT), an estimate of that time from the tables' sizes and
// this server's read rate, and the sessions that hold conflicting locks right now.
import type { Db } from '../db/connection.ts';
import type { Action } from './context.ts';
import type { TableState } from './model.ts';
import { calibrateSql, LOCKS_NOW_SQL, TABLE_SIZE_SQL } from './prisma-sql.ts';

export const LOCK_MODES = [
  'ACCESS SHARE',
  'ROW SHARE',
  'ROW EXCLUSIVE',
  'SHARE UPDATE EXCLUSIVE',
  'SHARE',
  'SHARE ROW EXCLUSIVE',
  'EXCLUSIVE',
  'ACCESS EXCLUSIVE',
] as const;
export type LockMode = (typeof LOCK_MODES)[number];

/** Which modes each mode conflicts with (PostgreSQL's table-level lock matrix), by index in LOCK_MODES. */
const CONFLICTS: Readonly<Record<LockMode, readonly number[]>> = {
  'ACCESS SHARE': [7],
  'ROW SHARE': [6, 7],
  'ROW EXCLUSIVE': [4, 5, 6, 7],
  'SHARE UPDATE EXCLUSIVE': [3, 4, 5, 6, 7],
  SHARE: [2, 3, 5, 6, 7],
  'SHARE ROW EXCLUSIVE': [2, 3, 4, 5, 6, 7],
  EXCLUSIVE: [1, 2, 3, 4, 5, 6, 7],
  'ACCESS EXCLUSIVE': [0, 1, 2, 3, 4, 5, 6, 7],
};

export const conflicts = (a: LockMode, b: LockMode) => CONFLICTS[a].includes(LOCK_MODES.indexOf(b));
/** pg_locks spells modes as AccessExclusiveLock. */
export const fromPgMode = (m: string) => LOCK_MODES.find((x) => `${x.replace(/ /g, '').toLowerCase()}lock` === m.toLowerCase());

/** How much of a table a statement reads or writes, as a multiple of one sequential scan (0: catalog only). */
export type Work = number;

export interface StatementLock {
  table: string;
  mode: LockMode;
  /** Work on that table, in scans. */
  work: Work;
  state?: TableState;
  /** Referenced (not the statement's own) table, by schema and name, to resolve in the model. */
  ref?: { schemaname?: string; relname: string };
}

const SHARE_UPDATE_CMDS = new Set([
  'AT_ValidateConstraint',
  'AT_SetStatistics',
  'AT_ClusterOn',
  'AT_DropCluster',
  'AT_SetRelOptions',
  'AT_ResetRelOptions',
  'AT_AttachPartition',
]);

/** The locks one action takes on its own table (and, for a foreign key, on the referenced one). */
export function locksOf(a: Action): StatementLock[] {
  const t = a.table;
  const own = (mode: LockMode, work: Work): StatementLock[] => (t ? [{ table: t.name, mode, work, state: t }] : []);
  const n = a.node;
  switch (a.kind) {
    case 'IndexStmt':
      return own(n.concurrent ? 'SHARE UPDATE EXCLUSIVE' : 'SHARE', 2.5);
    case 'UpdateStmt':
      return own('ROW EXCLUSIVE', 3);
    case 'DeleteStmt':
      return own('ROW EXCLUSIVE', 2);
    case 'InsertStmt':
      return own('ROW EXCLUSIVE', 0);
    case 'TruncateStmt':
    case 'DropStmt':
    case 'RenameStmt':
      return own('ACCESS EXCLUSIVE', 0);
    case 'CreateTrigStmt':
      return own('SHARE ROW EXCLUSIVE', 0);
    case 'AT_AddConstraint': {
      const c = (n.def as { Constraint: { contype: string; skip_validation?: boolean; pktable?: { schemaname?: string; relname: string } } }).Constraint;
      const validate = c.skip_validation ? 0 : 1;
      if (c.contype === 'CONSTR_FOREIGN') {
        return [...own('SHARE ROW EXCLUSIVE', validate * 1.5), { table: c.pktable!.relname, mode: 'SHARE ROW EXCLUSIVE', work: 0, ref: c.pktable }];
      }
      return own('ACCESS EXCLUSIVE', c.contype === 'CONSTR_PRIMARY' || c.contype === 'CONSTR_UNIQUE' ? 2.5 : validate);
    }
    case 'AT_AlterColumnType':
      return own('ACCESS EXCLUSIVE', 4);
    case 'AT_SetNotNull':
      return own('ACCESS EXCLUSIVE', 1);
    case 'AT_AddColumn': {
      // a volatile default (or a serial) rewrites the table; a constant default is a catalog change
      const text = JSON.stringify(n.def);
      return own('ACCESS EXCLUSIVE', /"FuncCall"|serial|SQLValueFunction/i.test(text) && !/CURRENT_TIMESTAMP|now/i.test(text) ? 4 : 0);
    }
    default:
      if (a.kind.startsWith('AT_')) return own(SHARE_UPDATE_CMDS.has(a.kind) ? 'SHARE UPDATE EXCLUSIVE' : 'ACCESS EXCLUSIVE', 0);
      if (a.kind === 'CreateStmt') {
        return ((n.tableElts as Array<Record<string, unknown>>) ?? []).flatMap((el) => {
          const refs = el.ColumnDef
            ? (
                (el.ColumnDef as { constraints?: Array<{ Constraint: { contype: string; pktable?: { schemaname?: string; relname: string } } }> })
                  .constraints ?? []
              ).map((c) => c.Constraint)
            : el.Constraint
              ? [el.Constraint as { contype: string; pktable?: { schemaname?: string; relname: string } }]
              : [];
          return refs
            .filter((c) => c.contype === 'CONSTR_FOREIGN' && c.pktable)
            .map((c) => ({ table: c.pktable!.relname, mode: 'SHARE ROW EXCLUSIVE' as const, work: 0, ref: c.pktable }));
        });
      }
      return [];
  }
}

export interface LockHold {
  table: string;
  /** The mode, stronger than what the same transaction held on the table before. */
  mode: LockMode;
  /** The statement that takes it, and the last statement of its transaction (it is held until then). */
  from: number;
  until: number;
  /** Estimated time the lock is held: the work of every statement from `from` to `until`, ms. */
  estimateMs: number;
  /** What the lock holds up for other sessions. */
  blocks: 'reads and writes' | 'writes' | 'schema changes' | 'nothing';
  oid: string | null;
}

export function blocksOf(mode: LockMode): LockHold['blocks'] {
  if (mode === 'ACCESS EXCLUSIVE') return 'reads and writes';
  if (conflicts(mode, 'ROW EXCLUSIVE')) return 'writes';
  if (conflicts(mode, 'SHARE UPDATE EXCLUSIVE')) return 'schema changes';
  return 'nothing';
}

export interface TableSize {
  heap: number;
  indexes: number;
  rows: number;
}

/** Sizes of live tables, read once per table. */
export class Sizes {
  private cache = new Map<string, TableSize>();
  /** Bytes read per millisecond by a sequential read on this server, once calibrated. */
  rate: number | null = null;
  constructor(private db: Db) {}

  /** The size if already read (the analysis reads it before the statement's predictions). */
  cached(oid: string): TableSize | undefined {
    return this.cache.get(oid);
  }

  async of(oid: string): Promise<TableSize> {
    let s = this.cache.get(oid);
    if (!s) {
      const r = await this.db.query<TableSize>(TABLE_SIZE_SQL, [oid]);
      s = r.rows[0] ?? { heap: 0, indexes: 0, rows: 0 };
      this.cache.set(oid, s);
    }
    return s;
  }

  /**
   * A prediction that read every row of an unchanged live table took `ms`: a read rate at no extra cost
   * (the fastest such read of the largest table is kept; a probe does at least one scan).
   */
  observe(heap: number, ms: number): void {
    if (heap < 1 << 20 || ms <= 0) return;
    if (!this.observed || heap > this.observed.heap || (heap === this.observed.heap && ms < this.observed.ms)) this.observed = { heap, ms };
    this.rate = this.observed.heap / this.observed.ms;
  }
  private observed: { heap: number; ms: number } | null = null;

  /** Without an observed read: times a sampled read of the largest table (at most about 4 MB of it). */
  async calibrate(sqlName: string, heap: number): Promise<void> {
    if (this.rate !== null || heap < 1 << 20) return;
    const pct = Math.min(100, (100 * (4 << 20)) / heap);
    const t0 = performance.now();
    await this.db.query(calibrateSql(sqlName, pct));
    this.rate = (heap * pct) / 100 / Math.max(0.5, performance.now() - t0);
  }

  /** Estimated ms for `work` scans of a table of `heap` bytes. */
  estimate(heap: number, work: Work): number {
    if (!work || !heap) return 0;
    return (work * heap) / (this.rate ?? 200_000); // 200 MB/s until calibrated
  }
}

export interface Blocker {
  pid: number;
  table: string;
  mode: LockMode;
  state: string | null;
  xactSeconds: number | null;
  query: string | null;
  app: string | null;
}

/** Sessions holding (or waiting for) locks that conflict with `holds` right now. */
export async function blockersNow(db: Db, holds: readonly LockHold[]): Promise<Blocker[]> {
  const live = holds.filter((h) => h.oid);
  if (live.length === 0) return [];
  const r = await db.query<{
    oid: string;
    mode: string;
    pid: number;
    state: string | null;
    xactSeconds: number | null;
    query: string | null;
    app: string | null;
  }>(LOCKS_NOW_SQL, [live.map((h) => h.oid)]);
  const out: Blocker[] = [];
  for (const row of r.rows) {
    const mode = fromPgMode(row.mode);
    // the strongest lock the migrations take on that table
    const h = live.filter((x) => x.oid === row.oid).sort((a, b) => LOCK_MODES.indexOf(b.mode) - LOCK_MODES.indexOf(a.mode))[0];
    if (mode && h && conflicts(h.mode, mode))
      out.push({ pid: row.pid, table: h.table, mode, state: row.state, xactSeconds: row.xactSeconds, query: row.query, app: row.app });
  }
  return out;
}
