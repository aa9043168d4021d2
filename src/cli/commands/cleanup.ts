import type { Command } from 'commander';
import type { ArchiveResult } from '../../backup/archive.ts';
import { EXIT, UsageError } from '../../errors.ts';
import { connect, type GlobalOptions, out, parseFlagNumber, parseRunId } from '../context.ts';

/** belay cleanup <run>, and `belay backups archive` added to the backups command group. */
export function registerCleanup(program: Command, setExit: (c: number) => void): void {
  program
    .command('cleanup <run>')
    .description("drop the run's temporary indexes; archive its backups (--dir) and drop in-database copies past the retention")
    .option('--dir <folder>', 'archive backups without a file into this folder (gzip COPY files + manifest.json)')
    .option('--retention <duration>', 'keep in-database copies this long after they were taken', '7d')
    .action(async (run: string, o: { dir?: string; retention: string }, cmd: Command) => {
      const { parseDuration } = await import('../../verify/duration.ts');
      const { DEFAULT_RETENTION_MS } = await import('../../backup/archive.ts');
      const { cleanupRun } = await import('../../run/pipeline.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      const retentionMs = o.retention ? parseDuration(o.retention, '--retention') : DEFAULT_RETENTION_MS;
      const db = await connect(g);
      try {
        const r = await cleanupRun(db, runId, { dir: o.dir, retentionMs });
        if (g.json) out.json({ type: 'result', ...r });
        else {
          out.line(`run ${runId}: temporary indexes dropped: ${r.tempIndexesDropped.join(', ') || 'none'}`);
          if (r.decisionsDropped.length > 0) {
            out.line(
              `run ${runId}: decisions dropped (past --retention; an exact rollback is no longer possible, --from-backup is): ${r.decisionsDropped.join(', ')}`,
            );
          }
          printArchive(r.backups);
        }
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });

  const backups = program.commands.find((c) => c.name() === 'backups') ?? program.command('backups').description('table backups');
  backups
    .command('archive [id]')
    .description('archive a backup (or every backup of --run N) to gzip COPY files with a manifest; --retention drops old in-database copies')
    .option('--run <n>', 'every backup of this run', (s: string) => parseRunId(s))
    .option('--dir <folder>', 'folder for the archive (a new sub-folder per archive)')
    .option('--retention <duration>', 'then drop archived in-database copies older than this (e.g. 7d)')
    .action(async (id: string | undefined, o: { run?: number; dir?: string; retention?: string }, c: Command) => {
      const { parseDuration } = await import('../../verify/duration.ts');
      const { archiveBackups } = await import('../../backup/archive.ts');
      const g = c.optsWithGlobals<GlobalOptions>();
      if ((id === undefined) === (o.run === undefined))
        throw new UsageError('name one backup id or --run N', 'belay backups archive 12 --dir ./archive, or belay backups archive --run 3 --dir ./archive');
      const backupId = id === undefined ? undefined : parseFlagNumber('backup id', 'id', id, 'List them with belay backups list.');
      const retentionMs = o.retention ? parseDuration(o.retention, '--retention') : undefined;
      const db = await connect(g);
      try {
        const r = await archiveBackups(db, { backupId, runId: o.run }, { dir: o.dir, retentionMs });
        if (g.json) out.json({ type: 'result', ...r });
        else printArchive(r);
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });
}

function printArchive(r: ArchiveResult): void {
  for (const a of r.archived) out.line(`backup ${a.id} (${a.table}) archived to ${a.file}`);
  if (r.manifest) out.line(`manifest: ${r.manifest}`);
  for (const d of r.dropped) out.line(`backup ${d}: in-database copy dropped (archived, past the retention)`);
  for (const k of r.kept) out.line(`backup ${k.id} (${k.table}): copy kept, ${k.reason}`);
}
