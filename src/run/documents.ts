// The runbook and the report, with what other stages know of the checks and the batches (sources.ts).
import type { Db } from '../db/connection.ts';
import { buildReport as build, type ReportOptions, report as render, type RunReport } from '../report/report.ts';
import { runbook as renderRunbook, type RunbookOptions } from '../report/runbook.ts';
import { type RunDocs, writeRunDocs as write } from '../report/write-docs.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { reportSources } from './sources.ts';

/** belay runbook: everything a reviewer needs before the migration runs, as Markdown. */
export function runbook(m: LoadedMigration, opts: Omit<RunbookOptions, 'sources'> = {}): Promise<string> {
  return renderRunbook(m, { ...opts, sources: reportSources });
}

/** What a run did, as plain data (the report's JSON). */
export function buildReport(db: Db, runId: number, opts: Omit<ReportOptions, 'sources'> = {}): Promise<RunReport> {
  return build(db, runId, { ...opts, sources: reportSources });
}

/** belay report: Markdown, JSON or self-contained HTML. */
export function report(db: Db, runId: number, opts: Omit<ReportOptions, 'sources'> & { format?: 'md' | 'json' | 'html' } = {}): Promise<string> {
  return render(db, runId, { ...opts, sources: reportSources });
}

/** RUNBOOK.md, REPORT.md and report.html of a run, side by side. */
export function writeRunDocs(db: Db, m: LoadedMigration, runId: number, dir: string, opts: Omit<RunbookOptions, 'db' | 'sources'> = {}): Promise<RunDocs> {
  return write(db, m, runId, dir, { ...opts, sources: reportSources });
}
