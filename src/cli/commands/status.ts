import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { loadEnvFiles } from '../../config/env-file.ts';
import { type Db, openDb } from '../../db/connection.ts';
import type { MigrationStatus } from '../../run/migrations.ts';
import { databaseUrl, type GlobalOptions, out, parsePositiveInt, reportError } from '../context.ts';
import { table } from '../print.ts';

export function registerStatus(program: Command, setExit: (c: number) => void): void {
  program
    .command('status')
    .description("the project's migrations with their state (pending, applied, failed, rolled back, …), then the runs recorded in this database, newest first")
    .option('--limit <n>', 'how many runs', parsePositiveInt('--limit'), 20)
    .action(async (o: { limit: number }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const { loadProjectConfig } = await import('../../config/environments.ts');
      const cfg = loadProjectConfig();
      const project = existsSync(cfg.migrationsDir);
      if (!project) {
        const db = await openDb(databaseUrl(g), { applicationName: 'belay' });
        try {
          await printRuns(db, o.limit, g.json);
        } finally {
          await db.close();
        }
        return;
      }
      // the folder is listed whatever the database: without one (or unreachable), every state is unknown
      loadEnvFiles();
      const given = !!(g.db || g.env || process.env.DATABASE_URL);
      let db: Db | null = null;
      let failure: unknown;
      if (given) {
        try {
          db = await openDb(databaseUrl(g), { applicationName: 'belay' });
        } catch (err) {
          failure = err;
        }
      }
      try {
        const { migrationStatus } = await import('../../run/migrations.ts');
        const migrations = await migrationStatus(cfg, db);
        if (!g.json) printMigrations(cfg.migrationsDir, migrations, db?.label);
        if (db) await printRuns(db, o.limit, g.json, migrations);
        else if (g.json) out.json({ type: 'status', migrations, runs: null });
        if (!given) out.err('no database given (--db, --env or DATABASE_URL): the states are unknown');
        if (failure) setExit(reportError(failure, !!g.json));
      } finally {
        await db?.close();
      }
    });
}

function printMigrations(dir: string, ms: MigrationStatus[], label: string | undefined): void {
  const shown = path.relative(process.cwd(), dir) || '.';
  out.line(`migrations in ${shown}${label ? `, state in ${label}` : ''}:`);
  if (ms.length === 0) {
    out.line('  none yet: belay new <name>');
    return;
  }
  const rows = ms.map((m) => ({
    migration: m.name,
    id: m.id ?? '',
    state: m.changed ? `${m.state} (file changed since)` : m.state,
    run: m.run ?? '',
    at: m.at ? utc(m.at) : '',
  }));
  out.line(table(rows, ['migration', 'id', 'state', 'run', 'at'], { ids: ['run'] }));
  for (const m of ms) if (m.error) out.line(`  ${m.name}: [${m.error.code}] ${m.error.message.split('\n').slice(0, 3).join(' ')}`);
  out.line();
}

async function printRuns(db: Db, limit: number, json: boolean | undefined, migrations?: MigrationStatus[]): Promise<void> {
  const { stateVersion } = await import('../../state/schema.ts');
  const { getSteps, listRuns } = await import('../../state/runs.ts');
  const extra = migrations ? { migrations } : {};
  if ((await stateVersion(db)) === 0) {
    if (json) out.json({ type: 'status', ...extra, runs: [] });
    else out.line(`no belay runs in ${db.label} yet`);
    return;
  }
  const rows = [];
  for (const r of await listRuns(db, limit)) {
    const steps = await getSteps(db, r.id);
    rows.push({
      run: r.id,
      migration: r.migrationId,
      status: r.status,
      started: utc(r.startedAt),
      finished: r.finishedAt ? utc(r.finishedAt) : '',
      changed: steps.reduce((n, s) => n + Number(s.rowsChanged), 0),
      checksum: r.checksum.slice(0, 12),
      error: (r.error as { code?: string } | null)?.code ?? '',
    });
  }
  if (json) out.json({ type: 'status', ...extra, runs: rows });
  else
    out.line(
      rows.length
        ? `runs in ${db.label}:\n${table(rows, ['run', 'migration', 'status', 'started', 'finished', 'changed', 'checksum', 'error'], { ids: ['run'] })}`
        : 'no runs yet',
    );
}

/** An ISO 8601 UTC timestamp to the second, as the tables show it. */
function utc(at: string): string {
  return at.replace(/\.\d+Z$/, 'Z');
}
