// Writes the runbook and the report of a run side by side: RUNBOOK.md, REPORT.md and report.html.
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Db } from '../db/connection.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { renderReportHtml } from './html.ts';
import { buildReport, renderReportMarkdown } from './report.ts';
import { runbook, type RunbookOptions } from './runbook.ts';

export interface RunDocs {
  dir: string;
  runbook: string;
  report: string;
  html: string;
}

/** Creates `dir` if needed and writes the three documents; returns their absolute paths. */
export async function writeRunDocs(db: Db, m: LoadedMigration, runId: number, dir: string, opts: Omit<RunbookOptions, 'db'> = {}): Promise<RunDocs> {
  const abs = path.resolve(dir);
  mkdirSync(abs, { recursive: true });
  const docs: RunDocs = { dir: abs, runbook: path.join(abs, 'RUNBOOK.md'), report: path.join(abs, 'REPORT.md'), html: path.join(abs, 'report.html') };
  writeFileSync(docs.runbook, await runbook(m, { ...opts, db }));
  const data = await buildReport(db, runId, { sources: opts.sources });
  writeFileSync(docs.report, renderReportMarkdown(data));
  writeFileSync(docs.html, renderReportHtml(data));
  return docs;
}
