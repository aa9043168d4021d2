import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { Db } from '../../db/connection.ts';
import { EXIT, UsageError } from '../../errors.ts';
import { type GlobalOptions, locate, out, parseParams, resolveDbUrl } from '../context.ts';

export function registerRunbook(program: Command, setExit: (c: number) => void): void {
  program
    .command('runbook <migration>')
    .description('write the Markdown runbook a reviewer approves before the migration runs (read-only; --db optional)')
    .option('--param <key=value...>', 'migration parameter (policy), repeatable')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .option('--plan <plan.json>', 'include the figures of a plan made by belay plan')
    .option('--backup-dir <dir>', 'where belay apply --backup-dir will write backup files')
    .action(async (target: string, o: { param?: string[]; output?: string; plan?: string; backupDir?: string }, cmd: Command) => {
      const { openDb } = await import('../../db/connection.ts');
      const { runbook } = await import('../../run/documents.ts');
      const { loadMigration } = await import('../../spec/load.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const m = await loadMigration(await locate(target), parseParams(o.param));
      const plan = o.plan ? readPlan(o.plan) : undefined;
      // the database is optional here: without one the runbook is complete but has no sizes
      let url: string | undefined;
      try {
        url = resolveDbUrl(g.db);
      } catch {
        url = undefined;
      }
      const db: Db | undefined = url ? await openDb(url, { applicationName: 'belay runbook' }) : undefined;
      try {
        const md = await runbook(m, { db, plan, planFile: o.plan, backupDir: o.backupDir, target });
        if (o.output) {
          writeFileSync(o.output, md);
          if (g.json) out.json({ type: 'runbook', file: o.output, bytes: Buffer.byteLength(md) });
          else out.line(`runbook written to ${o.output}`);
        } else if (g.json) out.json({ type: 'runbook', format: 'md', text: md });
        else out.line(md.trimEnd());
        setExit(EXIT.ok);
      } finally {
        await db?.close();
      }
    });
}

function readPlan(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(
      `--plan ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
      'Give the path of a plan.json written by belay plan -o plan.json.',
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--plan ${file}: not valid JSON (${(err as Error).message})`, 'Write the plan again with belay plan -o plan.json.');
  }
}
