import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { rollback } from '../../rollback/rollback.ts';
import { connect, type GlobalOptions, out, parseRunId } from '../context.ts';
import { printRollbackResult } from '../print.ts';
import { progressSink } from '../progress.ts';

export function registerRollback(program: Command, setExit: (c: number) => void): void {
  program
    .command('rollback <run>')
    .description('restore every row a run wrote to its before-image, newest batch first')
    .option('--force', 'also overwrite rows that changed after the migration wrote them')
    .option('--wait', 'wait for a concurrent run of the same migration instead of failing')
    .action(async (run: string, o: { force?: boolean; wait?: boolean }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      const db = await connect(g);
      try {
        const r = await rollback(db, runId, { force: o.force, lock: o.wait ? 'wait' : 'fail', onEvent: progressSink({ json: g.json }) });
        if (g.json) out.json({ type: 'result', ...r });
        else printRollbackResult(r);
        setExit(r.conflictCount > 0 && !o.force ? EXIT.conflicts : EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
