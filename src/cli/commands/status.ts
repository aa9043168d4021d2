import type { Command } from 'commander';
import { stateVersion } from '../../state/schema.ts';
import { getSteps, listRuns } from '../../state/runs.ts';
import { connect, type GlobalOptions, out, parsePositiveInt } from '../context.ts';
import { table } from '../print.ts';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('list the runs recorded in this database, newest first')
    .option('--limit <n>', 'how many runs', parsePositiveInt('--limit'), 20)
    .action(async (o: { limit: number }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const db = await connect(g);
      try {
        if ((await stateVersion(db)) === 0) {
          if (g.json) out.json({ type: 'status', runs: [] });
          else out.line(`no belay runs in ${db.label} yet`);
          return;
        }
        const runs = await listRuns(db, o.limit);
        const rows = [];
        for (const r of runs) {
          const steps = await getSteps(db, r.id);
          rows.push({
            run: r.id,
            migration: r.migrationId,
            status: r.status,
            started: r.startedAt.slice(0, 19),
            finished: r.finishedAt?.slice(0, 19) ?? '',
            changed: steps.reduce((n, s) => n + Number(s.rowsChanged), 0),
            checksum: r.checksum.slice(0, 12),
            error: (r.error as { code?: string } | null)?.code ?? '',
          });
        }
        if (g.json) out.json({ type: 'status', runs: rows });
        else out.line(rows.length ? table(rows, ['run', 'migration', 'status', 'started', 'finished', 'changed', 'checksum', 'error']) : 'no runs yet');
      } finally {
        await db.close();
      }
    });
}
