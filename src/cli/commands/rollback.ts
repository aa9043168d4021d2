import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import { rollback } from '../../rollback/rollback.ts';
import { rollbackScript } from '../../rollback/rollback-script.ts';
import { connect, type GlobalOptions, out, parseRunId } from '../context.ts';
import { printRollbackResult } from '../print.ts';
import { progressSink } from '../progress.ts';

interface RollbackFlags {
  force?: boolean;
  wait?: boolean;
  sql?: boolean;
  output?: string;
  skipIrreversible?: boolean;
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
    .action(async (run: string, o: RollbackFlags, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      if (o.output && !o.sql) throw new UsageError('-o/--output only goes with --sql', `Write belay rollback ${runId} --sql -o rollback.sql.`);
      if (o.sql && o.force) throw new UsageError('--force does not apply to --sql', 'The script always leaves rows changed since the migration alone and lists them.');
      const db = await connect(g);
      try {
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
            else out.err(`wrote ${o.output}: ${r.rows} rows in ${r.batches} undo batches (${(r.bytes / 1e6).toFixed(1)} MB); run it with psql -v ON_ERROR_STOP=1 -f ${o.output}`);
          }
          setExit(EXIT.ok);
          return;
        }
        const r = await rollback(db, runId, {
          force: o.force, lock: o.wait ? 'wait' : 'fail', skipIrreversible: o.skipIrreversible, onEvent: progressSink({ json: g.json }),
        });
        if (g.json) out.json({ type: 'result', ...r });
        else printRollbackResult(r);
        setExit(r.conflictCount > 0 && !o.force ? EXIT.conflicts : EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
