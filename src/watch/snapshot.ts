// What the dashboard shows, read from belay's state in the target database: the same tables the running
// apply writes, so the page works from any machine that reaches the database, as belay status does.
import type { Db } from '../db/connection.ts';
import { redactText, scrubValue } from '../db/redact.ts';
import { qualified } from '../db/sql.ts';
import type { TuneSettings } from '../state/controls.ts';
import { getRun, getSteps, type RunStatus } from '../state/runs.ts';
import { stateVersion } from '../state/schema.ts';
import {
  WATCH_BATCHES_SQL,
  WATCH_EVENTS_SQL,
  WATCH_FINDINGS_SQL,
  WATCH_LOCK_WAITERS_SQL,
  WATCH_NOW_SQL,
  WATCH_PENDING_SQL,
  WATCH_RUNS_SQL,
  WATCH_THROTTLE_SQL,
} from '../state/watch-sql.ts';

/** Batches the chart shows, and the window rows/s is measured over. */
export const CHART_BATCHES = 120;
export const RATE_WINDOW_MS = 30_000;
const EVENTS = 20;
const FINDINGS = 10;

export interface RunRow {
  id: number;
  migrationId: string;
  status: RunStatus;
  mode: string;
  file: string | null;
  startedAt: string;
  finishedAt: string | null;
  errorCode: string | null;
  rowsDone: number;
  rowsTotal: number | null;
  rowsChanged: number;
}

export interface BatchPoint {
  stepNo: number;
  batchNo: number;
  rows: number;
  changed: number;
  durationMs: number;
  /** Committed at, ms since the epoch (the database's clock). */
  at: number;
}

export interface RunView {
  run: RunRow & { error: { code?: string; message?: string; fix?: string } | null };
  steps: Array<{ stepNo: number; name: string; kind: string; status: string; rowsDone: number; rowsTotal: number | null; rowsChanged: number }>;
  /** Rows per second over the batches of the last RATE_WINDOW_MS; 0 when none committed then. */
  rowsPerSec: number;
  /** Seconds left at rowsPerSec; null when the run is not running or has no pace yet. */
  etaSec: number | null;
  /** Oldest first, the newest CHART_BATCHES. */
  batches: BatchPoint[];
  /** Sessions waiting for a lock on the run's tables now; null on PGlite (one session). */
  lockWaiters: number | null;
  /** throttled: the apply waits before its next batch (reasons as it recorded them); tuned: what every tune taken so far changed. */
  throttle: { state: 'clear' | 'throttled'; reasons: string[]; since: string | null; tuned: { at: string; settings: TuneSettings } | null };
  /** Commands left for the apply and not taken yet. */
  pending: Array<{ id: number; command: string; settings: TuneSettings; requestedAt: string }>;
  findings: Array<{ source: string; at: string; name: string; result: string; count: number; message: string | null }>;
  /** Newest first. */
  events: Array<{ id: number; at: string; type: string; data: Record<string, unknown> }>;
  /** The database's clock, ms since the epoch: the chart's x axis is the database's time. */
  now: number;
}

export async function listWatchRuns(db: Db): Promise<RunRow[]> {
  if ((await stateVersion(db)) === 0) return [];
  return (await db.query<RunRow>(WATCH_RUNS_SQL)).rows;
}

/** The run a page shows when none is named: the newest running or paused one, else the newest. */
export function defaultRun(runs: readonly RunRow[]): number | undefined {
  return (runs.find((r) => r.status === 'running' || r.status === 'paused') ?? runs[0])?.id;
}

export async function runView(db: Db, runId: number): Promise<RunView> {
  const run = await getRun(db, runId);
  const steps = await getSteps(db, runId);
  const now = (await db.query<{ now: number }>(WATCH_NOW_SQL)).rows[0]!.now;
  const batches = (await db.query<BatchPoint>(WATCH_BATCHES_SQL, [runId, CHART_BATCHES])).rows.reverse();
  const recent = batches.filter((b) => b.at > now - RATE_WINDOW_MS);
  const since = recent.length ? Math.min(...recent.map((b) => b.at - b.durationMs)) : now;
  const rowsPerSec = recent.length && now > since ? recent.reduce((n, b) => n + b.rows, 0) / ((now - since) / 1000) : 0;
  const rowsDone = steps.reduce((n, s) => n + s.rowsDone, 0);
  const totals = steps.filter((s) => s.rowsTotal !== null);
  const rowsTotal = totals.length ? totals.reduce((n, s) => n + s.rowsTotal!, 0) : null;
  const left = rowsTotal === null ? null : Math.max(0, rowsTotal - rowsDone);
  type Tune = { at: string; settings: TuneSettings };
  type Throttle = { last: { type: string; at: string; data: { reasons?: string[] } } | null; tunes: Tune[] | null };
  const t = (await db.query<Throttle>(WATCH_THROTTLE_SQL, [runId])).rows[0]!;
  // each tune changes only what it names: what holds now is all of them, in order
  const tuned = t.tunes?.length ? { at: t.tunes.at(-1)!.at, settings: Object.assign({}, ...t.tunes.map((x) => x.settings)) as TuneSettings } : null;
  const throttled = run.status === 'running' && t.last?.type === 'throttled';
  const tables = tablesOf(run.spec);
  const view: RunView = {
    run: {
      id: run.id,
      migrationId: run.migrationId,
      status: run.status,
      mode: run.mode,
      file: run.file,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      errorCode: (run.error?.code as string | undefined) ?? null,
      rowsDone,
      rowsTotal,
      rowsChanged: steps.reduce((n, s) => n + s.rowsChanged, 0),
      error: run.error ? { code: run.error.code as string, message: redactText(String(run.error.message ?? '')), fix: run.error.fix as string } : null,
    },
    steps: steps.map((s) => ({
      stepNo: s.stepNo,
      name: s.name,
      kind: s.kind,
      status: s.status,
      rowsDone: s.rowsDone,
      rowsTotal: s.rowsTotal,
      rowsChanged: s.rowsChanged,
    })),
    rowsPerSec,
    etaSec: run.status === 'running' && left !== null && rowsPerSec > 0 ? left / rowsPerSec : null,
    batches,
    lockWaiters:
      db.kind === 'postgres' && tables.length ? (await db.query<{ n: number }>(WATCH_LOCK_WAITERS_SQL, [tables.map((x) => qualified(x))])).rows[0]!.n : null,
    throttle: {
      state: throttled ? 'throttled' : 'clear',
      reasons: throttled ? (t.last?.data.reasons ?? []) : [],
      since: throttled ? t.last!.at : null,
      tuned,
    },
    pending: (await db.query<RunView['pending'][number]>(WATCH_PENDING_SQL, [runId])).rows,
    findings: (await db.query<RunView['findings'][number]>(WATCH_FINDINGS_SQL, [runId, FINDINGS])).rows,
    events: (await db.query<RunView['events'][number]>(WATCH_EVENTS_SQL, [runId, EVENTS])).rows,
    now,
  };
  // events and findings carry messages and samples: scrubbed like everything belay prints
  return scrubValue(view);
}

/** The tables a stored spec names (its `tables`, and each step's table). */
function tablesOf(spec: unknown): string[] {
  const s = spec as { tables?: string[]; steps?: Array<{ table?: string }> } | null;
  return [...new Set([...(s?.tables ?? []), ...(s?.steps ?? []).flatMap((x) => (x.table ? [x.table] : []))])];
}
