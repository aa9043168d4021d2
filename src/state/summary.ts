// The run summary (belay.runs.summary): one typed structure with a version, owned here. Stages read it
// with readSummary and add their part with mergeSummary; nobody else writes the jsonb.
import type { Db } from '../db/connection.ts';

/** Bumped when a part changes shape; readers of an older summary see the parts it has. */
export const SUMMARY_VERSION = 1;

export interface RunSummary {
  summaryVersion?: number;
  /** Row counts of every touched table when the run first started, and when it ended. */
  countsBefore?: Record<string, number>;
  countsAfter?: Record<string, number>;
  /** The verification baseline, taken before the first write. */
  verify?: Baseline;
  /** The latest verification round that was not a monitoring round. */
  verification?: { roundId: number; at: string; source: string; ok: boolean; failed: string[] };
  /** Running totals of the abort triggers by index (a resumed run goes on counting), and the one that fired. */
  abortTotals?: Record<number, number>;
  abort?: FiredTrigger;
  rollback?: RollbackSummary;
  /** The touched tables' schema before the first write (kept on resume) and after the last step. */
  schemaBefore?: SchemaSnapshot;
  schemaAfter?: SchemaSnapshot;
  cleanup?: { tempIndexes?: TempIndexCleanup; backups?: Record<string, unknown> };
  monitor?: Record<string, unknown>;
}

export interface Baseline {
  at: string;
  untouched: UntouchedBaseline[];
}

export interface UntouchedBaseline {
  table: string;
  key?: string;
  /** The columns the run does not write, as they were at baseline time. */
  columns: string[];
  lo?: string;
  hi?: string;
  width?: string;
  /** bucket -> [rows, checksum] */
  buckets: Record<string, [number, string]>;
}

/** An abort trigger that fired. */
export interface FiredTrigger {
  /** Index in spec.abort, or -1 for the built-in default (a failed in-batch verification rolls back). */
  index: number;
  when: 'verification-failed' | 'conflicts-over' | 'batch-slower-than-ms' | 'lock-retries-over' | 'skipped-over';
  threshold?: number;
  decision: 'pause' | 'rollback';
  /** The measured value that crossed the threshold. */
  value: number;
  reason: string;
  batchNo?: number;
  step?: string;
}

export interface RollbackSummary {
  by?: 'undo' | 'backup' | 'sql-script';
  restored?: number;
  conflictCount?: number;
  /** Of conflictCount: rows changed since (--force overwrites them) and rows deleted since (only a backup has them). */
  changed?: number;
  deleted?: number;
  force?: boolean;
  skippedIrreversible?: string[];
  tables?: unknown;
}

export interface TempIndexCleanup {
  at: string;
  declared: string[];
  dropped: string[];
}

export interface ColumnDoc {
  name: string;
  type: string;
  notNull: boolean;
  default: string | null;
}
export interface IndexDoc {
  name: string;
  definition: string;
  unique: boolean;
  primary: boolean;
}
export interface ConstraintDoc {
  name: string;
  /** p primary key, u unique, f foreign key, c check, x exclusion. */
  type: string;
  definition: string;
}
/** One table's shape; exists is false when the table is absent (then the lists are empty). */
export interface TableSchema {
  table: string;
  exists: boolean;
  columns: ColumnDoc[];
  indexes: IndexDoc[];
  constraints: ConstraintDoc[];
}
/** Table name (as in the spec) -> its shape, and when it was taken. */
export interface SchemaSnapshot {
  takenAt: string;
  tables: Record<string, TableSchema>;
}

const READ_SQL = `SELECT summary FROM belay.runs WHERE id = $1`;
const MERGE_SQL = `UPDATE belay.runs SET summary = summary || $2::jsonb || jsonb_build_object('summaryVersion', $3::int) WHERE id = $1`;
/** One part merged key by key into what the part holds already (cleanup: temporary indexes, then backups). */
const MERGE_PART_SQL = `UPDATE belay.runs
   SET summary = summary || jsonb_build_object($2::text, coalesce(summary->$2::text, '{}'::jsonb) || $3::jsonb, 'summaryVersion', $4::int)
 WHERE id = $1`;
const HAS_SQL = `SELECT summary ? $2 AS has FROM belay.runs WHERE id = $1`;

export async function readSummary(db: Db, runId: number): Promise<RunSummary> {
  const r = await db.query<{ summary: RunSummary }>(READ_SQL, [runId]);
  return r.rows[0]?.summary ?? {};
}

/** Sets the given parts, leaving the others as they are. */
export async function mergeSummary(db: Db, runId: number, parts: RunSummary): Promise<void> {
  await db.query(MERGE_SQL, [runId, JSON.stringify(parts), SUMMARY_VERSION]);
}

/** Merges into one part of the summary, keeping the keys of that part it does not name. */
export async function mergeSummaryPart<K extends 'cleanup' | 'monitor'>(db: Db, runId: number, key: K, part: NonNullable<RunSummary[K]>): Promise<void> {
  await db.query(MERGE_PART_SQL, [runId, key, JSON.stringify(part), SUMMARY_VERSION]);
}

export async function summaryHas(db: Db, runId: number, key: keyof RunSummary): Promise<boolean> {
  const r = await db.query<{ has: boolean }>(HAS_SQL, [runId, key]);
  return r.rows[0]?.has ?? false;
}
