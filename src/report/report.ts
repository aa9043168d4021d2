// The report: what a run did, read back from belay's state (and the live catalog) as plain data,
// then rendered as Markdown here, as HTML in html.ts, or printed as JSON.
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { stateVersion } from '../state/schema.ts';
import { getBatches, getRun, type StoredBatch, UNDO_BY_STEP_SQL, STEP_TIMINGS_SQL } from '../state/runs.ts';
import { fmtInt } from './markdown.ts';
import { renderReportMarkdown } from './report-markdown.ts';
import type { ReportSources } from './sources.ts';
import type { RunSummary } from '../state/summary.ts';
import { HAS_RUN_ID_SQL, RELATION_EXISTS_SQL, rowsOfRunSql } from './report-sql.ts';
import { diffTable, snapshotSchema, type TableDiff, type TableSchema } from './schema-snapshot.ts';
import { RUN_EVENTS_SQL } from '../state/events.ts';
import { VERIFICATION_ROUNDS_SQL } from '../state/verification-sql.ts';

export { renderReportMarkdown };

export interface ReportOptions {
  /** What other stages know (the pipeline passes it): without it, a run with no stored pre-flight shows none. */
  sources?: ReportSources;
  /** Sample rows kept per finding (default 10). */
  sample?: number;
  /** Timestamp shown in the report (tests pin it). */
  now?: Date;
}

/** One issue category: a pre-flight finding, a verification result, or rollback conflicts. */
export interface IssueFinding {
  code: string;
  severity: string;
  message: string;
  count: number;
  sample: unknown[];
  fix?: string;
  outcome?: string;
}

export interface BatchTiming extends StoredBatch {
  /** Rows of the range per second of batch time. */
  rowsPerSec: number;
}

export interface VerificationRound {
  round: number;
  id: number;
  /** apply (after the last batch), verify (belay verify), monitor (belay monitor). */
  source: string;
  at: string;
  ok: boolean;
  durationMs: number;
  checks: number;
  /** Names of the checks that failed or errored. */
  failed: string[];
}

export interface RunReport {
  generatedAt: string;
  database: string;
  run: {
    id: number;
    migrationId: string;
    checksum: string;
    status: string;
    mode: string;
    startedAt: string;
    finishedAt: string | null;
    durationMs: number | null;
    file: string | null;
    params: Record<string, string>;
  };
  purpose: string;
  tables: string[];
  steps: Array<{
    stepNo: number;
    name: string;
    kind: string;
    table?: string;
    writes?: string[];
    status: string;
    rowsTotal: number | null;
    rowsDone: number;
    rowsChanged: number;
    startedAt: string | null;
    finishedAt: string | null;
    durationMs: number | null;
    sql?: string;
    reversible: boolean;
  }>;
  counts: Array<{ table: string; before: number | null; after: number | null; delta: number | null }>;
  /** stored: results recorded during the run; live: the spec's checks run read-only when the report was made. */
  issues: { source: 'stored' | 'live' | 'unavailable'; note: string; findings: IssueFinding[] };
  /** Rounds numbered from 1 in the order they ran; every result carries the `round` it belongs to. */
  verification: { source: 'stored' | 'none'; note: string; rounds: VerificationRound[]; results: Array<Record<string, unknown>> };
  backups: { source: 'stored' | 'none'; note: string; rows: Array<Record<string, unknown>> };
  undo: Array<{ stepNo: number; step: string; batches: number; rows: number; skipped: number; rolledBack: number; restored: number; conflicts: number }>;
  timings: {
    stages: Array<{ stage: string; startedAt: string | null; durationMs: number | null; detail: string }>;
    batches: BatchTiming[];
    events: Array<{ at: string; elapsedMs: number; type: string; data: unknown }>;
  };
  aborts: Array<{ source: string; at?: string; what: string; detail: unknown }>;
  error: Record<string, unknown> | null;
  schema: { source: string; tables: Array<{ table: string; before: TableSchema | null; after: TableSchema; diff: TableDiff }>; note: string };
}

export async function buildReport(db: Db, runId: number, opts: ReportOptions = {}): Promise<RunReport> {
  if ((await stateVersion(db)) === 0) {
    throw new StateError('BELAY_NO_RUN', `no belay runs are recorded in ${db.label}`, {
      fix: 'Check --db: it must be the database the run used (belay status lists its runs).',
    });
  }
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const summary = run.summary;
  const sample = opts.sample ?? 10;
  const steps = (
    await db.query<{
      stepNo: number;
      name: string;
      kind: string;
      status: string;
      rowsTotal: number | null;
      rowsDone: number;
      rowsChanged: number;
      startedAt: string | null;
      finishedAt: string | null;
      durationMs: number | null;
    }>(STEP_TIMINGS_SQL, [runId])
  ).rows;
  const batches: BatchTiming[] = (await getBatches(db, runId)).map((b) => ({
    ...b,
    durationMs: Number(b.durationMs),
    rowsPerSec: b.durationMs > 0 ? (b.rowsInRange * 1000) / b.durationMs : 0,
  }));
  const events = (await db.query<{ at: string; elapsedMs: number; type: string; data: unknown }>(RUN_EVENTS_SQL, [runId])).rows;
  const countsBefore = summary.countsBefore ?? {};
  const countsAfter = summary.countsAfter ?? {};
  const durationMs = run.finishedAt ? Date.parse(run.finishedAt) - Date.parse(run.startedAt) : null;

  return {
    generatedAt: (opts.now ?? new Date()).toISOString(),
    database: db.label,
    run: {
      id: run.id,
      migrationId: run.migrationId,
      checksum: run.checksum,
      status: run.status,
      mode: run.mode,
      startedAt: run.startedAt,
      finishedAt: run.finishedAt,
      durationMs: Number.isFinite(durationMs) ? durationMs : null,
      file: run.file,
      params: run.params,
    },
    purpose: spec.purpose,
    tables: [...spec.tables],
    steps: steps.map((s) => {
      const st = spec.steps[s.stepNo];
      return {
        ...s,
        rowsDone: Number(s.rowsDone),
        rowsChanged: Number(s.rowsChanged),
        table: st?.kind === 'batched' ? st.table : undefined,
        writes: st?.kind === 'batched' ? [...st.writes] : undefined,
        sql: st?.kind === 'sql' ? st.up : undefined,
        reversible: st?.kind !== 'sql' || st.down !== null,
      };
    }),
    counts: [...new Set([...spec.tables, ...Object.keys(countsBefore), ...Object.keys(countsAfter)])].map((t) => {
      const before = countsBefore[t] ?? null;
      const after = countsAfter[t] ?? null;
      return { table: t, before, after, delta: before !== null && after !== null ? after - before : null };
    }),
    issues: await issues(db, run.id, spec, run, sample, opts.sources),
    verification: await verification(db, runId),
    backups: await backups(db, runId),
    undo: (await db.query<RunReport['undo'][number]>(UNDO_BY_STEP_SQL, [runId])).rows,
    timings: {
      stages: stages(run, steps, events),
      batches,
      events: events.map((e) => ({ at: e.at, elapsedMs: Number(e.elapsedMs), type: e.type, data: e.data })),
    },
    aborts: aborts(run.error, events),
    error: run.error,
    schema: await schema(db, spec, summary),
  };
}

async function stateRows(db: Db, table: string, runId: number): Promise<Array<Record<string, unknown>> | undefined> {
  const exists = await db.query<{ exists: boolean }>(RELATION_EXISTS_SQL, [`belay.${table}`]);
  if (!exists.rows[0]?.exists) return undefined;
  const has = await db.query<{ has: boolean }>(HAS_RUN_ID_SQL, ['belay', table]);
  if (!has.rows[0]?.has) return undefined;
  const r = await db.query<{ row: Record<string, unknown> }>(rowsOfRunSql(`belay.${table}`), [runId]);
  return r.rows.map((x) => Object.fromEntries(Object.entries(x.row).map(([k, v]) => [k, utcTimestamp(v)])));
}

/** to_jsonb writes a timestamptz in the session's zone (…+00:00, …+01:00): belay prints ISO 8601 UTC (…Z). Only belay's own columns, never a sampled row. */
function utcTimestamp(v: unknown): unknown {
  return typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d$/.test(v) ? new Date(v).toISOString() : v;
}

async function issues(
  db: Db,
  runId: number,
  spec: Migration,
  run: { checksum: string; file: string | null; params: Record<string, string> },
  sample: number,
  sources?: ReportSources,
): Promise<RunReport['issues']> {
  const stored = await stateRows(db, 'check_results', runId);
  if (stored?.length) {
    return {
      source: 'stored',
      note: 'Pre-flight results recorded by the run before its first write.',
      findings: stored.map((r) => ({
        code: String(r.code),
        severity: String(r.severity ?? ''),
        message: String(r.message ?? r.code),
        count: Number(r.row_count ?? r.count ?? 0),
        sample: Array.isArray(r.sample) ? r.sample.slice(0, sample) : [],
        fix: typeof r.fix === 'string' ? r.fix : undefined,
        outcome: typeof r.outcome === 'string' ? r.outcome : undefined,
      })),
    };
  }
  // No stored results: run the spec's checks now (runChecks is read-only: its own READ ONLY transaction).
  const m: LoadedMigration = { spec, file: run.file ?? '<stored spec>', params: run.params, checksum: run.checksum };
  try {
    if (!sources) throw new Error('no check runner was given');
    const r = await sources.liveChecks(db, m, sample);
    return {
      source: 'live',
      note: `No pre-flight results were stored with this run: the migration's checks were run read-only when this report was made (${new Date().toISOString()}), so they describe the data as it is now, after the run.`,
      findings: r.findings.map((f) => ({ ...f, sample: f.sample.slice(0, sample) })),
    };
  } catch (err) {
    return { source: 'unavailable', note: `No stored pre-flight results, and running the checks now failed: ${(err as Error).message}`, findings: [] };
  }
}

async function verification(db: Db, runId: number): Promise<RunReport['verification']> {
  const rows = await stateRows(db, 'verification_results', runId);
  if (!rows?.length)
    return { source: 'none', note: 'No verification results are stored for this run (belay verify <run> records them).', rounds: [], results: [] };
  const stored = (await db.query<Omit<VerificationRound, 'checks' | 'failed'>>(VERIFICATION_ROUNDS_SQL, [runId])).rows;
  const byId = new Map(stored.map((x) => [Number(x.id), x]));
  const results = rows
    .map((r): Record<string, unknown> & { round: number | null } => {
      const of = byId.get(Number(r.verification_id));
      return { ...r, round: of?.round ?? null, source: of?.source ?? null };
    })
    .sort((x, y) => (x.round ?? 0) - (y.round ?? 0) || Number(x.seq) - Number(y.seq));
  const rounds = stored.map((x) => {
    const own = results.filter((r) => r.round === x.round);
    return {
      ...x,
      durationMs: Number(x.durationMs),
      checks: own.length,
      failed: own.filter((r) => r.result === 'fail' || r.result === 'error').map((r) => String(r.name)),
    };
  });
  return { source: 'stored', note: 'Recorded verification rounds (apply, verify, monitor), numbered in the order they ran.', rounds, results };
}

async function backups(db: Db, runId: number): Promise<RunReport['backups']> {
  const rows = await stateRows(db, 'backups', runId);
  if (!rows?.length) return { source: 'none', note: 'No backups are recorded for this run.', rows: [] };
  return { source: 'stored', note: 'Backups taken before the first write.', rows };
}

function stages(
  run: { startedAt: string; finishedAt: string | null; status: string },
  steps: Array<{ name: string; kind: string; startedAt: string | null; durationMs: number | null; rowsChanged: number; status: string }>,
  events: Array<{ type: string; at: string; elapsedMs: number; data: unknown }>,
): RunReport['timings']['stages'] {
  const out: RunReport['timings']['stages'] = [];
  const total = run.finishedAt ? Date.parse(run.finishedAt) - Date.parse(run.startedAt) : null;
  out.push({ stage: 'run', startedAt: run.startedAt, durationMs: total, detail: run.status });
  // events that carry their own duration (backups, checks, verification … as other stages record them)
  for (const e of events) {
    const d = (e.data ?? {}) as Record<string, unknown>;
    if (typeof d.durationMs === 'number' && e.type !== 'run-finished')
      out.push({ stage: e.type, startedAt: null, durationMs: d.durationMs, detail: `recorded at ${e.at}` });
  }
  for (const s of steps)
    out.push({
      stage: `step ${s.name}`,
      startedAt: s.startedAt,
      durationMs: s.durationMs === null ? null : Number(s.durationMs),
      detail: `${s.kind}, ${s.status}, ${fmtInt(Number(s.rowsChanged))} rows changed`,
    });
  return out;
}

function aborts(error: Record<string, unknown> | null, events: Array<{ type: string; at: string; data: unknown }>): RunReport['aborts'] {
  const out: RunReport['aborts'] = [];
  for (const e of events) {
    if (/abort|verification-failed|paused/.test(e.type)) out.push({ source: 'event', at: e.at, what: e.type, detail: e.data });
  }
  if (error && (error.code === 'BELAY_ABORTED' || error.code === 'BELAY_VERIFY')) out.push({ source: 'run error', what: String(error.code), detail: error });
  return out;
}

async function schema(db: Db, spec: Migration, summary: RunSummary): Promise<RunReport['schema']> {
  const before = summary.schemaBefore;
  const storedAfter = summary.schemaAfter;
  const live = await snapshotSchema(db, spec.tables);
  const tables = spec.tables.map((t) => {
    const b = before?.tables[t] ?? null;
    const a = live.tables[t]!;
    return { table: t, before: b, after: a, diff: diffTable(b ?? undefined, a) };
  });
  let note = before
    ? `Before: snapshot taken at the start of the run (${before.takenAt}). After: the live schema when this report was made.`
    : 'No schema snapshot was stored at the start of this run: only the live schema is shown, and no differences can be marked.';
  if (storedAfter) {
    const drift = spec.tables.filter((t) => storedAfter.tables[t] && diffTable(storedAfter.tables[t], live.tables[t]!).differences > 0);
    if (drift.length) note += ` The schema of ${drift.join(', ')} changed after the run ended (snapshot at ${storedAfter.takenAt}).`;
  }
  return { source: before ? 'snapshot' : 'live only', tables, note };
}

/** The library entry: the report of a run in one of the three formats. */
export async function report(db: Db, runId: number, opts: ReportOptions & { format?: 'md' | 'json' | 'html' } = {}): Promise<string> {
  const data = await buildReport(db, runId, opts);
  if (opts.format === 'json') return `${JSON.stringify(data, null, 2)}\n`;
  if (opts.format === 'html') {
    const { renderReportHtml } = await import('./html.ts');
    return renderReportHtml(data);
  }
  return renderReportMarkdown(data);
}
