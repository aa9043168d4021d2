import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { once } from 'node:events';
import type { Command } from 'commander';
import { BelayError, EXIT, UsageError } from '../../errors.ts';
import type { BackupRollbackPreview } from '../../backup/restore-run.ts';
import type { Db } from '../../db/connection.ts';
import { connect, type GlobalOptions, out, parseRunId, reportError } from '../context.ts';
import { printRollbackResult } from '../print.ts';
import { catchInterrupts } from '../signals.ts';

interface RollbackFlags {
  force?: boolean;
  wait?: boolean;
  sql?: boolean;
  output?: string;
  skipIrreversible?: boolean;
  fromBackup?: boolean;
  includeReadTables?: boolean;
  yes?: boolean;
}

export function registerRollback(program: Command, setExit: (c: number) => void): void {
  program
    .command('rollback <run>')
    .description('restore every row a run wrote to its before-image, newest batch first')
    .option('--force', 'also overwrite rows that changed after the migration wrote them')
    .option('--wait', 'wait for a concurrent run of the same migration instead of failing')
    .option('--sql', 'write a standalone SQL script (run it with psql alone) instead of rolling back')
    .option('-o, --output <file>', 'with --sql: the file to write (default: standard output)')
    .option('--skip-irreversible', 'undo everything else and leave SQL steps without a reverse (down: null) in place')
    .option('--from-backup', "restore the run's tables from its verified backup instead of the undo log (shows what it overwrites first)")
    .option('--include-read-tables', 'with --from-backup: also restore the tables the run only read (deletes the rows others added since; shown first)')
    .option('--yes', 'with --from-backup: do not ask for confirmation')
    .action(async (run: string, o: RollbackFlags, cmd: Command) => {
      const { rollback } = await import('../../rollback/rollback.ts');
      const { rollbackScript } = await import('../../rollback/rollback-script.ts');
      const { rollbackFromBackup } = await import('../../backup/restore-run.ts');
      const { progressSink } = await import('../progress.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      if (o.output && !o.sql) throw new UsageError('-o/--output only goes with --sql', `Write belay rollback ${runId} --sql -o rollback.sql.`);
      if (o.sql && o.force)
        throw new UsageError('--force does not apply to --sql', 'The script always leaves rows changed since the migration alone and lists them.');
      if (o.fromBackup && (o.sql || o.force || o.skipIrreversible))
        throw new UsageError('--from-backup goes alone (not with --sql, --force or --skip-irreversible)');
      if (o.yes && !o.fromBackup) throw new UsageError('--yes only goes with --from-backup');
      if (o.includeReadTables && !o.fromBackup) throw new UsageError('--include-read-tables only goes with --from-backup');
      const db = await connect(g);
      try {
        if (o.fromBackup) {
          const r = await rollbackFromBackup(db, runId, {
            readTables: o.includeReadTables,
            confirm: async (p) => {
              printBackupPreview(p);
              if (o.yes) return true;
              if (!process.stdin.isTTY) {
                throw new UsageError(
                  'refusing to restore from backup without confirmation (no terminal to ask on)',
                  `Read the preview above, then run belay rollback ${runId} --from-backup --yes.`,
                );
              }
              return askYes('Restore these tables from the backup and overwrite the rows above? [y/N] ');
            },
          });
          if (g.json) out.json({ type: 'result', ...r });
          else if (r.status === 'cancelled') out.line('cancelled: nothing was restored');
          else
            out.line(
              `run ${runId} rolled back from its backup: ${r.tables.map((t) => `${t.table} (${t.rows} rows, checksum verified)`).join(', ')} in ${(r.durationMs / 1000).toFixed(2)} s`,
            );
          setExit(r.status === 'cancelled' ? EXIT.aborted : EXIT.ok);
          return;
        }
        if (o.sql) {
          const file = o.output ? createWriteStream(o.output) : undefined;
          const write = async (s: string) => {
            if (file) {
              if (!file.write(s)) await once(file, 'drain');
            } else if (!process.stdout.write(s)) await once(process.stdout, 'drain');
          };
          const r = await rollbackScript(db, runId, { skipIrreversible: o.skipIrreversible, write });
          if (file) {
            file.end();
            await once(file, 'finish');
            if (g.json) out.json({ type: 'result', ...r, file: o.output });
            else
              out.err(
                `wrote ${o.output}: ${r.rows} rows in ${r.batches} undo batches (${(r.bytes / 1e6).toFixed(1)} MB); run it with psql -v ON_ERROR_STOP=1 -f ${o.output}`,
              );
          }
          setExit(EXIT.ok);
          return;
        }
        const stop = catchInterrupts(() => db, 'the rollback');
        try {
          const r = await rollback(db, runId, {
            force: o.force,
            lock: o.wait ? 'wait' : 'fail',
            skipIrreversible: o.skipIrreversible,
            onEvent: progressSink({ json: g.json }),
            signal: stop.signal,
          });
          if (g.json) out.json({ type: 'result', ...r });
          else printRollbackResult(r, r.deletedCount > 0 ? await backupCopies(db, runId) : undefined);
          if (r.status === 'interrupted') {
            const err = new BelayError('BELAY_INTERRUPTED', `rollback of run ${runId} stopped by ${String(stop.signal.reason)}; the run stays rolling_back`, {
              details: { runId, batches: r.batches },
              fix: `Finish it with belay rollback ${runId} (with the same --db or --env): it goes on from the newest batch not undone.`,
            });
            reportError(err, !!g.json);
            setExit(stop.exitCode() ?? EXIT.interrupted);
          }
          // rows deleted since stay missing whatever --force does
          else setExit((r.changedCount > 0 && !o.force) || r.deletedCount > 0 ? EXIT.conflicts : EXIT.ok);
        } finally {
          stop.dispose();
        }
      } finally {
        await db.close();
      }
    });
}

function printBackupPreview(p: BackupRollbackPreview): void {
  out.err(`restoring run ${p.runId} from its backup would overwrite:`);
  for (const t of p.tables) {
    const read = p.readTables.includes(t.table) ? ' — a table the run only READ' : '';
    out.err(`  ${t.table} (backup ${t.backupId})${read}: ${t.changed} changed, ${t.added} added and ${t.deleted} deleted rows since the backup`);
    // the rows a restore deletes are listed whole: they are what cannot be had back afterwards
    if (t.samples.added.length > 0) out.err(`    deletes the ${t.added} row(s) added since, keys ${JSON.stringify(t.samples.added)}`);
    for (const kind of ['changed', 'deleted'] as const)
      if (t.samples[kind].length > 0) out.err(`    ${kind}, e.g. keys ${JSON.stringify(t.samples[kind].slice(0, 10))}`);
    if (t.notWrittenByRun && t.notWrittenByRun.count > 0) {
      out.err(
        `    ${t.notWrittenByRun.count} of them were NOT written by this run (changes by others, lost by the restore), e.g. keys ${JSON.stringify(t.notWrittenByRun.sample)}`,
      );
    }
  }
  for (const c of p.effects.cascades) {
    if (c.deleted > 0) out.err(`  ${c.table} (not restored): ${c.deleted} row(s) deleted through ON DELETE CASCADE, keys ${JSON.stringify(c.deletedKeys)}`);
    if (c.changed > 0)
      out.err(`  ${c.table} (not restored): ${c.changed} row(s) changed through ON DELETE SET NULL/DEFAULT, keys ${JSON.stringify(c.changedKeys)}`);
  }
  if (p.effects.failure) out.err(`  the restore would fail: ${p.effects.failure}`);
  if (p.skipped.length > 0) out.err(`left as they are (only read by the run, backed up): ${p.skipped.join(', ')}; --include-read-tables restores them too`);
}

async function backupCopies(db: Db, runId: number): Promise<Map<string, string>> {
  const { copySqlName, listBackups } = await import('../../backup/backup.ts');
  const m = new Map<string, string>();
  for (const b of await listBackups(db, { runId })) if (b.status === 'verified' && !m.has(b.sourceTable)) m.set(b.sourceTable, copySqlName(b));
  return m;
}

async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
