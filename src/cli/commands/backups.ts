import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import type { RestoreEffects, RestorePreview } from '../../backup/restore.ts';
import { EXIT, UsageError } from '../../errors.ts';
import { connect, type GlobalOptions, out, parseFlagNumber, parsePositiveInt } from '../context.ts';
import { table } from '../print.ts';

export function registerBackups(program: Command, setExit: (c: number) => void): void {
  const cmd = program.command('backups').description('list, verify, restore and drop the verified table backups taken before each apply');

  cmd
    .command('list')
    .description('every backup: table, copy, size, rows, checksum, file')
    .option('--run <id>', 'only the backups of this run', parsePositiveInt('--run'))
    .option('--all', 'include dropped backups')
    .action(async (o: { run?: number; all?: boolean }, c: Command) => {
      const { copySqlName, formatBytes, listBackups } = await import('../../backup/backup.ts');
      const g = c.optsWithGlobals<GlobalOptions>();
      const db = await connect(g);
      try {
        const list = await listBackups(db, { runId: o.run, all: o.all });
        if (g.json) out.json({ type: 'result', backups: list });
        else if (list.length === 0) out.line('no backups');
        else {
          out.line(
            table(
              list.map((b) => ({
                id: b.id,
                run: b.runId,
                table: b.sourceTable,
                copy: b.status === 'dropped' ? '(dropped)' : copySqlName(b),
                size: b.sizeBytes === null ? '' : formatBytes(b.sizeBytes),
                rows: b.rows,
                checksum: b.checksum,
                file: b.file ?? '',
                created: b.createdAt.replace(/\.\d+Z$/, 'Z'),
              })),
              ['id', 'run', 'table', 'copy', 'size', 'rows', 'checksum', 'file', 'created'],
              { ids: ['id', 'run'] },
            ),
          );
        }
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });

  cmd
    .command('verify <id>')
    .description('recompute row count and checksum of the copy (and of the exported file) against what was recorded')
    .option('--no-files', 'skip the exported file')
    .action(async (id: string, o: { files: boolean }, c: Command) => {
      const { verifyBackup } = await import('../../backup/backup.ts');
      const g = c.optsWithGlobals<GlobalOptions>();
      const db = await connect(g);
      try {
        const r = await verifyBackup(db, parseBackupId(id), { files: o.files });
        if (g.json) out.json({ type: 'result', ...r });
        else {
          out.line(`backup ${r.id} of ${r.table}: ${r.ok ? 'OK' : 'FAILED'} (recorded ${r.expected.rows} rows, checksum ${r.expected.checksum})`);
          if (r.copy) out.line(`  copy: ${r.copy.rows} rows, checksum ${r.copy.checksum} ${r.copy.ok ? 'ok' : 'MISMATCH'}`);
          if (r.file)
            out.line(
              `  file: sha256 ${r.file.sha256Ok ? 'ok' : 'MISMATCH'}, ${r.file.rows} rows, checksum ${r.file.checksum} ${r.file.ok ? 'ok' : 'MISMATCH'}`,
            );
          for (const p of r.problems) out.line(`  problem: ${p}`);
        }
        setExit(r.ok ? EXIT.ok : EXIT.verification);
      } finally {
        await db.close();
      }
    });

  cmd
    .command('restore <ids...>')
    .description('put tables back exactly as backed up (one transaction, checked against the recorded checksum)')
    .option('--yes', 'do not ask for confirmation')
    .option('--from <source>', 'copy (default) or file', 'copy')
    .action(async (ids: string[], o: { yes?: boolean; from: string }, c: Command) => {
      const { restoreBackup } = await import('../../backup/restore.ts');
      const g = c.optsWithGlobals<GlobalOptions>();
      if (o.from !== 'copy' && o.from !== 'file') throw new UsageError(`--from "${o.from}" is not copy or file`);
      const list = ids.map(parseBackupId);
      const db = await connect(g);
      try {
        const r = await restoreBackup(db, list, {
          from: o.from,
          confirm: async (previews, effects) => {
            if (g.json) out.json({ type: 'preview', previews, effects });
            else printPreviews(previews, effects);
            if (o.yes) return true;
            if (!process.stdin.isTTY) throw new UsageError('restore overwrites rows and needs a confirmation', 'Pass --yes to restore without asking.');
            const rl = createInterface({ input: process.stdin, output: process.stderr });
            try {
              return /^y(es)?$/i.test((await rl.question('restore? [y/N] ')).trim());
            } finally {
              rl.close();
            }
          },
        });
        if (g.json) out.json({ type: 'result', ...r });
        else if (r.status === 'cancelled') out.line('cancelled: nothing was changed');
        else for (const t of r.tables) out.line(`restored ${t.table} from backup ${t.backupId}: ${t.rows} rows, checksum ${t.checksum} (as backed up)`);
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });

  cmd
    .command('drop <id>')
    .description('drop the in-database copy (the record and any exported file stay)')
    .action(async (id: string, _o: unknown, c: Command) => {
      const { dropBackup } = await import('../../backup/backup.ts');
      const g = c.optsWithGlobals<GlobalOptions>();
      const db = await connect(g);
      try {
        const b = await dropBackup(db, parseBackupId(id));
        if (g.json) out.json({ type: 'result', ...b });
        else out.line(`dropped the copy of backup ${b.id} (${b.sourceTable})${b.file ? `; the file ${b.file} is kept` : ''}`);
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });
}

function parseBackupId(s: string): number {
  return parseFlagNumber('backup id', 'id', s, 'List backups with belay backups list.');
}

function printPreviews(previews: RestorePreview[], effects: RestoreEffects): void {
  for (const p of previews) {
    out.line(
      `${p.table} (backup ${p.backupId}, from ${p.from}, ${p.method}): ${p.changed} row(s) to overwrite, ${p.added} added since to delete, ${p.deleted} deleted since to put back`,
    );
    for (const k of ['changed', 'added', 'deleted'] as const) {
      if (p.samples[k].length > 0) out.line(`  ${k}: ${p.samples[k].map((x) => JSON.stringify(x)).join(' ')}${p[k] > p.samples[k].length ? ' …' : ''}`);
    }
  }
  for (const c of effects.cascades) {
    if (c.deleted > 0)
      out.line(`${c.table} (not restored): ${c.deleted} row(s) deleted through ON DELETE CASCADE: ${c.deletedKeys.map((x) => JSON.stringify(x)).join(' ')}`);
    if (c.changed > 0)
      out.line(
        `${c.table} (not restored): ${c.changed} row(s) changed through ON DELETE SET NULL/DEFAULT: ${c.changedKeys.map((x) => JSON.stringify(x)).join(' ')}`,
      );
  }
  if (effects.failure) out.line(`the restore would fail: ${effects.failure}`);
}
