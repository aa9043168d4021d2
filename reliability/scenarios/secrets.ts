// 6. Secrets: every command run with a URL holding a password (role belay_pw). The password must not
// appear in any output, written file or row of belay's schemas; belay's tables and backups must not be
// readable by PUBLIC (checked as a role with no grants) and exported files must be mode 0600.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { FLAGSHIP, runBelay } from '../lib/belay-cli.ts';
import { flagshipFixture, sizes } from '../lib/flagship.ts';
import { ensureRoles, PW_ROLE, RO_ROLE, roleUrl, SECRET } from '../lib/roles.ts';
import { cloneDb, dropDb, withDb } from '../lib/server.ts';
import { tempDir } from '../lib/spec-files.ts';
import { outcome, type Outcome, type Scenario, type SuiteOptions } from '../lib/suite.ts';
import { BACKUP_SCHEMA } from '../../src/backup/backup-sql.ts';
import { ident } from '../../src/db/sql.ts';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

export const secrets: Scenario = {
  name: 'secrets',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const { rows, batch } = sizes(opts.short);
    const fx = await flagshipFixture(rows, batch, opts.seed);
    await ensureRoles();
    const name = await cloneDb(fx.base, 'secrets');
    const work = tempDir('secrets');
    const backupDir = path.join(work.dir, 'backups');
    const url = roleUrl(PW_ROLE, name, SECRET);
    const problems: string[] = [];
    const commands: string[][] = [
      ['check', FLAGSHIP],
      ['runbook', FLAGSHIP, '-o', path.join(work.dir, 'runbook.md')],
      ['apply', FLAGSHIP, '--batch-size', String(batch), '--backup-dir', backupDir],
      ['status'],
      ['--json', 'status'],
      ['verify', '1'],
      ['report', '1', '--format', 'html', '-o', path.join(work.dir, 'report.html')],
      ['report', '1', '--format', 'json'],
      ['backups', 'list'],
      ['rollback', '1'],
      ['--json', 'apply', FLAGSHIP, '--batch-size', String(batch)],
      ['rollback', '2', '--sql'],
    ];
    // the short version keeps the commands that write files and state rows
    // (apply with --backup-dir, status from DATABASE_URL, report --format json, rollback)
    if (opts.short) commands.splice(0, commands.length, ...[2, 3, 7, 9].map((i) => commands[i]!));
    let ran = 0;
    try {
      for (const args of commands) {
        // the URL comes from the environment once, and from --db otherwise: both must stay secret
        const viaEnv = args[0] === 'status' && args.length === 1;
        const r = await runBelay(viaEnv ? args : [...args, '--db', url], { cwd: work.dir, env: viaEnv ? { DATABASE_URL: url } : {} });
        ran++;
        if (`${r.stdout}${r.stderr}`.includes(SECRET)) problems.push(`belay ${args.join(' ')}: the password appears in its output`);
        if (r.code === null || r.code === 1) problems.push(`belay ${args.join(' ')} exited ${r.code}: ${r.stderr.trim().slice(0, 200)}`);
      }
      for (const f of filesUnder(work.dir)) {
        const st = statSync(f);
        if (readFileSync(f).includes(SECRET)) problems.push(`file ${path.relative(work.dir, f)} holds the password`);
        if (f.startsWith(backupDir) && (st.mode & 0o077) !== 0) problems.push(`backup file ${path.relative(work.dir, f)} has mode ${(st.mode & 0o777).toString(8)}, expected 600`);
      }
      await withDb(name, async (db) => {
        const tables = await db.query<{ s: string; t: string }>(
          `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('belay', $1) AND c.relkind = 'r'`, [BACKUP_SCHEMA]);
        if (!tables.rows.some((x) => x.s === BACKUP_SCHEMA)) problems.push('no in-database backup was found to check');
        for (const { s, t } of tables.rows) {
          const q = `${ident(s)}.${ident(t)}`;
          const hit = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${q} x WHERE strpos(x::text, $1) > 0`, [SECRET]);
          if (hit.rows[0]!.n > 0) problems.push(`${q}: ${hit.rows[0]!.n} row(s) hold the password`);
          const acl = await db.query<{ pub: boolean; ro: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass AND a.grantee = 0) AS pub,
                    has_table_privilege($2, $1::regclass, 'SELECT') AS ro`, [q, RO_ROLE]);
          if (acl.rows[0]!.pub) problems.push(`${q}: PUBLIC holds a privilege`);
          if (acl.rows[0]!.ro) problems.push(`${q}: readable by a role without grants`);
        }
        const schemas = await db.query<{ s: string; usage: boolean }>(`SELECT nspname AS s, has_schema_privilege($1, oid, 'USAGE') AS usage FROM pg_namespace WHERE nspname IN ('belay', $2)`, [RO_ROLE, BACKUP_SCHEMA]);
        for (const x of schemas.rows) if (x.usage) problems.push(`schema ${x.s}: usable by a role without grants`);
      });
    } finally {
      work.remove();
      await dropDb(name);
    }
    return [outcome('secrets', `${ran} commands with a password in the URL; outputs, files, belay's rows, privileges`, [problems.length ? { trial: 'all commands', seed: opts.seed, problems } : null],
      'password never shown; belay tables and backups not PUBLIC; files 0600')];
  },
};
