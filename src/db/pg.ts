import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { ConnectionError } from '../errors.ts';
import type { Db, OpenOptions } from './connection.ts';
import { redactUrl, scrub, scrubKnown, secretsOfUrl, wrapDbError } from './redact.ts';
import { ident } from './sql.ts';

/**
 * A Prisma URL's `?schema=name` (which the driver ignores) taken out of the connection string: the session's
 * search_path is set to that schema alone, as Prisma's own engine sets it, so unqualified names resolve as
 * they do for the application.
 */
function splitSchemaParam(url: string): { connectionString: string; schema: string | null } {
  const q = url.indexOf('?');
  if (q < 0) return { connectionString: url, schema: null };
  const params = new URLSearchParams(url.slice(q + 1));
  const schema = params.get('schema');
  if (schema === null) return { connectionString: url, schema: null };
  params.delete('schema');
  const rest = params.toString();
  return { connectionString: url.slice(0, q) + (rest ? `?${rest}` : ''), schema: schema || 'public' };
}

// int8 and numeric come back as strings from pg; belay casts in SQL where it needs numbers.
export async function openPg(url: string, opts: OpenOptions): Promise<Db> {
  const label = redactUrl(url);
  const secrets = secretsOfUrl(url);
  const { connectionString, schema } = splitSchemaParam(url);
  let client: pg.Client;
  try {
    client = new pg.Client({
      connectionString,
      application_name: opts.applicationName ?? 'belay',
      connectionTimeoutMillis: 10_000,
    });
    // A backend killed by the server emits 'error' on the idle client; the next query reports it.
    client.on('error', () => undefined);
    await client.connect();
  } catch (err) {
    const msg = scrubKnown(scrub(err instanceof Error ? err.message : String(err), secrets));
    throw new ConnectionError(`cannot connect to ${label}: ${msg}`, {
      cause: err,
      fix: 'Check that the server is running and that the URL (host, port, database, user) is right.',
    });
  }
  // JIT compiles each large query afresh (0.3–0.4 s measured on the flagship's whole-table checks) and
  // belay runs each of those once: compilation costs more than it saves.
  await client.query('SET jit = off').catch(() => undefined);
  if (schema) await client.query(`SET search_path TO ${ident(schema)}`);
  // asked now: while a statement runs the session cannot answer, and a cancel comes from a second session
  const pid = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
  return {
    kind: 'postgres',
    label,
    url,
    async query(sql, params) {
      try {
        const r = await client.query(sql, params as unknown[] | undefined);
        return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
      } catch (err) {
        throw connectionLost(err, label, url) ?? wrapDbError(err, sql, url);
      }
    },
    async exec(sql) {
      try {
        await client.query(sql);
      } catch (err) {
        throw connectionLost(err, label, url) ?? wrapDbError(err, sql, url);
      }
    },
    async *copyOut(sql) {
      try {
        for await (const chunk of client.query(copyTo(sql))) yield chunk as Uint8Array;
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    async copyIn(sql, data) {
      try {
        await pipeline(Readable.from(data), client.query(copyFrom(sql)));
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    async cancel() {
      const other = new pg.Client({ connectionString, application_name: 'belay (cancel)', connectionTimeoutMillis: 10_000 });
      other.on('error', () => undefined);
      try {
        await other.connect();
        await other.query('SELECT pg_cancel_backend($1)', [pid]);
      } finally {
        await other.end().catch(() => undefined);
      }
    },
    async close() {
      await client.end().catch(() => undefined);
    },
  };
}

/**
 * The session is gone (the server ended the backend, restarted, or the socket dropped). belay does not
 * reconnect: its advisory lock and any open transaction died with the session. Every batch is one
 * transaction and its checkpoint commits with it, so the run is left resumable; the error says so.
 * See docs/reliability.md ("Lost connections").
 */
export function connectionLost(err: unknown, label: string, url: string): ConnectionError | undefined {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const lost =
    /^(57P0[123]|08)/.test(code) ||
    code === 'ECONNRESET' ||
    code === 'EPIPE' ||
    /Connection terminated|connection error and is not queryable|server closed the connection/i.test(message);
  if (!lost) return undefined;
  const msg = scrubKnown(scrub(message, secretsOfUrl(url)));
  return new ConnectionError(
    `lost the connection to ${label}${code ? ` (SQLSTATE ${code})` : ''}: ${msg}. The work in flight was rolled back with its transaction; committed batches and belay's state are kept, so the run can resume`,
    {
      cause: err,
      fix: 'Run the same command again once the server is reachable: it resumes from the last committed batch.',
    },
  );
}
