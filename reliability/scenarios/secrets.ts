// 6. Secrets: a corpus of commands run with planted secrets — a database password (plain and one that
// needs percent-encoding), passwords in every malformed URL shape belay may be given (no "//", one "/",
// no scheme, a leading space, a bad port, a stray "%", a keyword string), URLs from --db, DATABASE_URL,
// .env and belay.config.json, and a webhook with credentials, a token in its path and one in its query.
// No secret may appear in any byte of any stdout, stderr, written file, or row of belay's schemas;
// belay's tables and backups must not be readable by a role without grants; exported files are 0600.
import { once } from 'node:events';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { FLAGSHIP, runBelay } from '../lib/belay-cli.ts';
import { flagshipFixture, sizes } from '../lib/flagship.ts';
import { ensureRoles, PW_ROLE, RO_ROLE, roleUrl, SECRET, SECRET_ENC, SECRET_ENC_RAW } from '../lib/roles.ts';
import { cloneDb, dropDb, withDb } from '../lib/server.ts';
import { tempDir } from '../lib/spec-files.ts';
import { outcome, type Outcome, type Scenario, type SuiteOptions } from '../lib/suite.ts';
import { BACKUP_SCHEMA } from '../../src/backup/backup-sql.ts';
import { ident } from '../../src/db/sql.ts';

/** Webhook secrets: HTTP basic credentials, a token in the path (Slack style), a token in the query. */
export const HOOK_USER = 'hookuser-Rel-4Kd';
export const HOOK_PASS = 'HookPass-Rel-7Wq';
export const HOOK_PATH_TOKEN = 'T0KEN-in-path-Rel-2Xv8';
export const HOOK_QUERY_TOKEN = 'QueryTok-Rel-5Ns1';

/** One password per malformed URL shape, so a leak names the shape. */
export function malformedUrls(host: string, db: string): Array<{ shape: string; url: string; secret: string; exit: number }> {
  const pw = (n: number) => `Shape${n}-Pw-Rel-${n * 7919}`;
  return [
    { shape: 'no scheme (user:pw@host/db)', url: `pwuser:${pw(1)}@${host}/${db}`, secret: pw(1), exit: 4 },
    { shape: 'one slash (postgres:/u:pw@…)', url: `postgres:/u:${pw(2)}@${host}/${db}`, secret: pw(2), exit: 4 },
    { shape: 'no slash (postgres:u:pw@…)', url: `postgres:u:${pw(3)}@${host}/${db}`, secret: pw(3), exit: 4 },
    { shape: 'port not a number', url: `postgres://u:${pw(4)}@${host}:abc/${db}`, secret: pw(4), exit: 4 },
    { shape: 'trailing %', url: `postgres://u:${pw(5)}@${host}/${db}%`, secret: pw(5), exit: 4 },
    { shape: 'keyword string', url: `host=${host} password=${pw(6)} dbname=${db}`, secret: pw(6), exit: 4 },
    { shape: 'password with @ and / unencoded', url: `postgres://u:${pw(7)}@x/y@${host}:1/${db}`, secret: `${pw(7)}@x/y`, exit: 4 },
  ];
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? filesUnder(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

/** A local webhook that records what it receives (to prove alerts still go out, with the credentials as a header). */
async function hookServer(): Promise<{
  url: (port?: number) => string;
  requests: Array<{ path: string; auth: string | undefined }>;
  close: () => Promise<void>;
}> {
  const requests: Array<{ path: string; auth: string | undefined }> = [];
  const server = createServer((req: IncomingMessage, res) => {
    requests.push({ path: req.url ?? '', auth: req.headers.authorization });
    req.resume();
    req.on('end', () => res.writeHead(204).end());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  return {
    url: (p = port) => `http://${HOOK_USER}:${HOOK_PASS}@127.0.0.1:${p}/services/${HOOK_PATH_TOKEN}?token=${HOOK_QUERY_TOKEN}`,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
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
    const encUrl = roleUrl(PW_ROLE, name, SECRET_ENC_RAW);
    const hook = await hookServer();
    const host = new URL(url).host;
    const shapes = malformedUrls(host, name);
    const planted = [SECRET, SECRET_ENC, SECRET_ENC_RAW, HOOK_USER, HOOK_PASS, HOOK_PATH_TOKEN, HOOK_QUERY_TOKEN, ...shapes.map((s) => s.secret)];
    // the URL of a named environment, read from the process environment (the ledger records what ran)
    writeFileSync(path.join(work.dir, 'belay.config.json'), JSON.stringify({ environments: { staging: { url: 'env:BELAY_REL_SECRET_URL' } } }));
    writeFileSync(path.join(work.dir, '.env'), `DATABASE_URL="${encUrl}"\n`);
    const problems: string[] = [];
    interface Cmd {
      args: string[];
      via?: 'db' | 'env' | 'dotenv' | 'config' | 'none';
      exits?: number[];
      before?: () => Promise<void>;
    }
    // a user moved out of the way makes the owner-deleted monitor check alert; moved back after the monitors
    let moved: number | undefined;
    const plantViolation = () =>
      withDb(name, async (db) => {
        moved = Number((await db.query<{ id: number }>(`SELECT min("userId")::int AS id FROM "EventType" WHERE "userId" IS NOT NULL`)).rows[0]!.id);
        await db.query(`UPDATE users SET id = -id WHERE id = $1`, [moved]);
      });
    const undoViolation = () =>
      withDb(name, async (db) => {
        if (moved !== undefined) await db.query(`UPDATE users SET id = -id WHERE id = $1`, [-moved]);
      });
    const commands: Cmd[] = [
      { args: ['check', FLAGSHIP] },
      { args: ['runbook', FLAGSHIP, '-o', path.join(work.dir, 'runbook.md')] },
      { args: ['plan', FLAGSHIP, '-o', path.join(work.dir, 'plan.json')], via: 'config' },
      { args: ['apply', path.join(work.dir, 'plan.json'), '--backup-dir', backupDir], via: 'config' },
      { args: ['status'], via: 'env' },
      { args: ['--json', 'status'], via: 'dotenv' },
      { args: ['verify', '1'] },
      // a violation the window sees: the alert goes to two webhooks, one that answers and one that does not
      { args: ['monitor', '1', '--once', '--webhook', hook.url()], exits: [7], before: plantViolation },
      { args: ['--json', 'monitor', '1', '--once', '--webhook', hook.url(1)], exits: [7] },
      { args: ['monitor', '1', '--once', '--webhook', hook.url().replace(`${HOOK_PASS}@`, `${HOOK_PASS}%zz@`)], exits: [2] },
      { args: ['report', '1', '--format', 'html', '-o', path.join(work.dir, 'report.html')] },
      { args: ['report', '1', '--format', 'json'], before: undoViolation },
      { args: ['report', '1', '--format', 'md', '-o', path.join(work.dir, 'report.md')] },
      { args: ['backups', 'list'] },
      { args: ['rollback', '1'], exits: [0, 11] },
      { args: ['--json', 'apply', FLAGSHIP, '--batch-size', String(batch)] },
      { args: ['rollback', '2', '--sql', '-o', path.join(work.dir, 'rollback.sql')] },
      { args: ['dry-run', FLAGSHIP], via: 'config', exits: [0, 8] },
      ...shapes.map((s) => ({ args: ['status', '--db', s.url], via: 'none' as const, exits: [s.exit] })),
      ...shapes.slice(0, 3).map((s) => ({ args: ['status'], via: 'none' as const, exits: [s.exit], env: s.url })),
      { args: ['status', '--db', ` ${url}\n`], via: 'none' },
    ];
    // the short version keeps what writes files and state rows and what prints URLs back: apply with
    // --backup-dir through a named environment, status from DATABASE_URL and .env, the monitor's webhooks,
    // a JSON report, a rollback, and every malformed URL
    const keep = opts.short ? new Set([2, 3, 4, 5, 7, 8, 9, 11, 14]) : undefined;
    let ran = 0;
    try {
      for (const [i, c] of commands.entries()) {
        if (keep && i < 18 && !keep.has(i)) continue;
        await c.before?.();
        const via = c.via ?? 'db';
        const env: Record<string, string> = { BELAY_REL_SECRET_URL: url };
        const fromEnv = (c as { env?: string }).env;
        if (via === 'env') env.DATABASE_URL = encUrl;
        if (fromEnv) env.DATABASE_URL = fromEnv;
        const args = via === 'db' ? [...c.args, '--db', url] : via === 'config' ? [...c.args, '--env', 'staging'] : c.args;
        // .env is read only from the working directory: the other commands run from the repository
        const r = await runBelay(args, { cwd: via === 'dotenv' || via === 'config' ? work.dir : undefined, env });
        ran++;
        const label = `belay ${c.args.join(' ')}${via !== 'db' ? ` (URL from ${via})` : ''}`;
        for (const s of planted)
          if (`${r.stdout}${r.stderr}`.includes(s)) problems.push(`${label}: a planted secret (${s.slice(0, 6)}…) appears in its output`);
        const ok = c.exits ?? [0];
        if (r.code === null || !ok.includes(r.code)) problems.push(`${label} exited ${r.code}, expected ${ok.join(' or ')}: ${r.stderr.trim().slice(0, 300)}`);
      }
      const got = hook.requests.filter((q) => q.path.includes(HOOK_PATH_TOKEN));
      if (got.length === 0) problems.push('the webhook that answers received no alert');
      else if (!got.every((q) => q.auth === `Basic ${Buffer.from(`${HOOK_USER}:${HOOK_PASS}`).toString('base64')}`))
        problems.push("the webhook's credentials were not sent as an Authorization header");
      const inputs = new Set(['.env', 'belay.config.json'].map((f) => path.join(work.dir, f)));
      for (const f of filesUnder(work.dir).filter((x) => !inputs.has(x))) {
        const st = statSync(f);
        const bytes = readFileSync(f);
        for (const s of planted) if (bytes.includes(s)) problems.push(`file ${path.relative(work.dir, f)} holds a planted secret (${s.slice(0, 6)}…)`);
        if (f.startsWith(backupDir) && (st.mode & 0o077) !== 0)
          problems.push(`backup file ${path.relative(work.dir, f)} has mode ${(st.mode & 0o777).toString(8)}, expected 600`);
      }
      if (!filesUnder(work.dir).some((f) => f.endsWith('belay-ledger.jsonl'))) problems.push('no ledger was written to check');
      await withDb(name, async (db) => {
        const tables = await db.query<{ s: string; t: string }>(
          `SELECT n.nspname AS s, c.relname AS t FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname IN ('belay', $1) AND c.relkind = 'r'`,
          [BACKUP_SCHEMA],
        );
        if (!tables.rows.some((x) => x.s === BACKUP_SCHEMA)) problems.push('no in-database backup was found to check');
        const alerts = await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM belay.verifications WHERE alerts IS NOT NULL AND jsonb_array_length(alerts) > 0`,
        );
        if (alerts.rows[0]!.n < 2) problems.push(`belay.verifications holds ${alerts.rows[0]!.n} round(s) with alerts, expected 2 to check`);
        for (const { s, t } of tables.rows) {
          const q = `${ident(s)}.${ident(t)}`;
          // every byte of every row, as text
          const dump = await db.query<{ d: string | null }>(`SELECT string_agg(x::text, E'\\n') AS d FROM ${q} x`);
          for (const sec of planted) if ((dump.rows[0]!.d ?? '').includes(sec)) problems.push(`${q}: a row holds a planted secret (${sec.slice(0, 6)}…)`);
          const acl = await db.query<{ pub: boolean; ro: boolean }>(
            `SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1::regclass AND a.grantee = 0) AS pub,
                    has_table_privilege($2, $1::regclass, 'SELECT') AS ro`,
            [q, RO_ROLE],
          );
          if (acl.rows[0]!.pub) problems.push(`${q}: PUBLIC holds a privilege`);
          if (acl.rows[0]!.ro) problems.push(`${q}: readable by a role without grants`);
        }
        const schemas = await db.query<{ s: string; usage: boolean }>(
          `SELECT nspname AS s, has_schema_privilege($1, oid, 'USAGE') AS usage FROM pg_namespace WHERE nspname IN ('belay', $2)`,
          [RO_ROLE, BACKUP_SCHEMA],
        );
        for (const x of schemas.rows) if (x.usage) problems.push(`schema ${x.s}: usable by a role without grants`);
      });
    } finally {
      await hook.close();
      work.remove();
      await dropDb(name);
    }
    return [
      outcome(
        'secrets',
        `${ran} commands with planted secrets (db password, ${shapes.length} malformed URL shapes, .env, belay.config.json, webhook credentials and tokens); outputs, files, belay's rows, privileges`,
        [problems.length ? { trial: 'all commands', seed: opts.seed, problems } : null],
        `${planted.length} secrets never shown; belay tables and backups not PUBLIC; files 0600`,
      ),
    ];
  },
};
