import { createWriteStream } from 'node:fs';
import { createInterface } from 'node:readline/promises';
import { once } from 'node:events';
import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import { rollback } from '../../rollback/rollback.ts';
import { rollbackScript } from '../../rollback/rollback-script.ts';
import { type BackupRollbackPreview, rollbackFromBackup } from '../../backup/restore-run.ts';
import { connect, type GlobalOptions, out, parseRunId } from '../context.ts';
import { printRollbackResult } from '../print.ts';
import { progressSink } from '../progress.ts';

interface RollbackFlags {
  force?: boolean;
  wait?: boolean;
  sql?: boolean;
  output?: string;
  skipIrreversible?: boolean;
  fromBackup?: boolean;
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
    .option('--yes', 'with --from-backup: do not ask for confirmation')
    .action(async (run: string, o: RollbackFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      if (o.output && !o.sql) throw new UsageError('-o/--output only goes with --sql', `Write belay rollback ${runId} --sql -o rollback.sql.`);
      if (o.sql && o.force)
        throw new UsageError('--force does not apply to --sql', 'The script always leaves rows changed since the migration alone and lists them.');
      if (o.fromBackup && (o.sql || o.force || o.skipIrreversible))
        throw new UsageError('--from-backup goes alone (not with --sql, --force or --skip-irreversible)');
      if (o.yes && !o.fromBackup) throw new UsageError('--yes only goes with --from-backup');
      const db = await connect(g);
      try {
        if (o.fromBackup) {
          const r = await rollbackFromBackup(db, runId, {
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
        const r = await rollback(db, runId, {
          force: o.force,
          lock: o.wait ? 'wait' : 'fail',
          skipIrreversible: o.skipIrreversible,
          onEvent: progressSink({ json: g.json }),
        });
        if (g.json) out.json({ type: 'result', ...r });
        else printRollbackResult(r);
        setExit(r.conflictCount > 0 && !o.force ? EXIT.conflicts : EXIT.ok);
      } finally {
        await db.close();
      }
    });
}

function printBackupPreview(p: BackupRollbackPreview): void {
  out.err(`restoring run ${p.runId} from its backup would overwrite:`);
  for (const t of p.tables) {
    out.err(`  ${t.table} (backup ${t.backupId}): ${t.changed} changed, ${t.added} added and ${t.deleted} deleted rows since the backup`);
    for (const [kind, keys] of Object.entries(t.samples)) if (keys.length > 0) out.err(`    ${kind}, e.g. keys ${JSON.stringify(keys.slice(0, 10))}`);
    if (t.notWrittenByRun && t.notWrittenByRun.count > 0) {
      out.err(
        `    ${t.notWrittenByRun.count} of them were NOT written by this run (changes by others, lost by the restore), e.g. keys ${JSON.stringify(t.notWrittenByRun.sample)}`,
      );
    }
  }
}

async function askYes(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
