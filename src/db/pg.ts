import pg from 'pg';
import { ConnectionError } from '../errors.ts';
import { type Db, type OpenOptions, wrapDbError } from './connection.ts';
import { passwordOf, redactUrl, scrub } from './redact.ts';

// int8 and numeric come back as strings from pg; belay casts in SQL where it needs numbers.
export async function openPg(url: string, opts: OpenOptions): Promise<Db> {
  const label = redactUrl(url);
  const client = new pg.Client({
    connectionString: url,
    application_name: opts.applicationName ?? 'belay',
    connectionTimeoutMillis: 10_000,
  });
  // A backend killed by the server emits 'error' on the idle client; the next query reports it.
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    const msg = scrub(err instanceof Error ? err.message : String(err), [passwordOf(url) ?? '']);
    throw new ConnectionError(`cannot connect to ${label}: ${msg}`, {
      cause: err,
      fix: 'Check that the server is running and that the URL (host, port, database, user) is right.',
    });
  }
  return {
    kind: 'postgres',
    label,
    url,
    async query(sql, params) {
      try {
        const r = await client.query(sql, params as unknown[] | undefined);
        return { rows: r.rows, rowCount: r.rowCount ?? r.rows.length };
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    async exec(sql) {
      try {
        await client.query(sql);
      } catch (err) {
        throw wrapDbError(err, sql, url);
      }
    },
    async close() {
      await client.end().catch(() => undefined);
    },
  };
}
