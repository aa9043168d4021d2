// One narrow interface over a PostgreSQL server (pg) and embedded PGlite.
// Both are a single session: belay's advisory lock, SET LOCAL and transactions rely on that.
import { ConnectionError } from '../errors.ts';
import { redactUrl, rememberSecrets, secretsOfUrl } from './redact.ts';

export type Row = Record<string, unknown>;

export interface QueryResult<R = Row> {
  rows: R[];
  /** Rows affected by INSERT/UPDATE/DELETE, or returned by SELECT. */
  rowCount: number;
}

export interface Db {
  /** 'postgres' for a server through pg, 'pglite' for embedded. */
  readonly kind: 'postgres' | 'pglite';
  /** The URL with any password replaced by ***; safe to print. */
  readonly label: string;
  /** One statement with $n parameters. Errors are DbError with the server's fields. */
  query<R = Row>(sql: string, params?: readonly unknown[]): Promise<QueryResult<R>>;
  /** Several statements, no parameters (schema scripts). */
  exec(sql: string): Promise<void>;
  /** The raw URL, which may hold a password: pass it on, never print it. */
  readonly url: string;
  /** `COPY … TO STDOUT` in this session, as a stream of bytes (file exports). */
  copyOut?(sql: string): AsyncIterable<Uint8Array>;
  /** `COPY … FROM STDIN` in this session, fed from bytes; resolves once the server has them all. */
  copyIn?(sql: string, data: AsyncIterable<Uint8Array>): Promise<void>;
  /** Server only: cancels the statement this session runs now (from a second session), as Ctrl-C in psql does. */
  cancel?(): Promise<void>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Application name shown in pg_stat_activity. */
  applicationName?: string;
  /** PGlite only: start from this dumped data folder (dumpDataDir) instead of running initdb. */
  pgliteTemplate?: Blob;
}

/**
 * Opens `postgres://…` / `postgresql://…` with pg, `pglite:<dir>` or `pglite:memory` with PGlite.
 * The returned Db never puts the password in an error message.
 */
export async function openDb(given: string, opts: OpenOptions = {}): Promise<Db> {
  // a URL pasted from a .env or a shell often carries a space or a newline at either end
  const url = (given ?? '').trim();
  rememberSecrets(secretsOfUrl(url));
  if (!url) {
    throw new ConnectionError('no database given', {
      fix: 'Pass --db postgres://user@host/db or pglite:<dir>, or set DATABASE_URL (also read from .env).',
    });
  }
  if (/^postgres(ql)?:\/\//i.test(url)) {
    assertParsable(url);
    const { openPg } = await import('./pg.ts');
    return openPg(url, opts);
  }
  if (/^pglite:/i.test(url)) {
    const { openPglite } = await import('./pglite.ts').catch((err: unknown) => {
      throw pgliteMissing(err) ?? err;
    });
    return openPglite(url, opts);
  }
  throw new ConnectionError(`unsupported database URL "${redactUrl(url)}"`, {
    fix: 'Use postgres://user@host:port/db for a server, or pglite:<dir> / pglite:memory for embedded PGlite.',
  });
}

/** PGlite is an optional peer dependency (27 MB a server user never needs): say how to add it. */
function pgliteMissing(err: unknown): ConnectionError | undefined {
  const e = err as NodeJS.ErrnoException;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('@electric-sql/pglite')) return undefined;
  return new ConnectionError('a pglite: URL needs the optional package @electric-sql/pglite, which is not installed', {
    cause: err,
    fix: 'Install it next to belay: npm install @electric-sql/pglite (or use a postgres:// URL).',
  });
}

/**
 * A server URL the driver would throw on with a bare TypeError or URIError (a port that is not a number,
 * a "%" not followed by two hex digits) is a connection error (exit 4) that says what is wrong, with the
 * password masked.
 */
function assertParsable(url: string): void {
  const fix =
    'Write the URL as postgres://user:password@host:port/database, with characters such as @ / : % in the password percent-encoded (%40 %2F %3A %25).';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    const port = /@[^/:?#]*:([^/?#]*)/.exec(url)?.[1];
    const why = port !== undefined && !/^\d*$/.test(port) ? `its port "${port}" is not a number` : 'it is not a valid URL';
    throw new ConnectionError(`database URL "${redactUrl(url)}" cannot be read: ${why}`, { fix });
  }
  for (const [part, v] of [
    ['user name', u.username],
    ['password', u.password],
    ['database name', u.pathname],
    ['parameters', u.search],
  ] as const) {
    try {
      decodeURIComponent(v.replace(/\+/g, ' '));
    } catch {
      throw new ConnectionError(`database URL "${redactUrl(url)}" cannot be read: its ${part} holds a "%" that is not followed by two hex digits`, { fix });
    }
  }
}

/** Runs fn inside BEGIN … COMMIT; ROLLBACK on any error, which is rethrown. */
export async function transaction<T>(db: Db, fn: () => Promise<T>): Promise<T> {
  await db.query('BEGIN');
  try {
    const out = await fn();
    await db.query('COMMIT');
    return out;
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
