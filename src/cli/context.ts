// What every command shares: where the database is, how to print, how errors become exit codes.
import { type Db, openDb } from '../db/connection.ts';
import { redactText, scrubKnown, scrubValue } from '../db/redact.ts';
import { BelayError, EXIT, UsageError } from '../errors.ts';
import { loadEnvFiles } from '../config/env-file.ts';
import { loadProjectConfig, resolveEnvironment } from '../config/environments.ts';
import type { MigrationParams } from '../spec/define.ts';
import { NUMBERS, type NumberSchema, parseNumber } from '../spec/numbers.ts';

export interface GlobalOptions {
  db?: string;
  /** A named environment of belay.config.json (src/config/environments.ts); gives the URL. */
  env?: string;
  json?: boolean;
  param?: string[];
}

/** --db, else DATABASE_URL from the environment, ./.env or prisma/.env (as Prisma reads them). */
export function resolveDbUrl(opt?: string): string {
  if (opt) return opt;
  loadEnvFiles();
  if (process.env.DATABASE_URL) return process.env.DATABASE_URL;
  throw new UsageError(
    'no database given',
    'Pass --db postgres://user@host/db (or pglite:<dir>), or set DATABASE_URL in the environment, in .env or in prisma/.env.',
  );
}

/** The URL a command connects to: --env's (belay.config.json), else resolveDbUrl's. */
export function databaseUrl(opts: GlobalOptions): string {
  if (opts.env && opts.db) throw new UsageError('both --env and --db given', 'Pass one: --env <name> names a database of belay.config.json.');
  if (!opts.env) return resolveDbUrl(opts.db);
  loadEnvFiles();
  return resolveEnvironment(loadProjectConfig(), opts.env).url;
}

/** A command's migration: a path, or a folder name or id in the project's migrations folder. */
export async function locate(target: string): Promise<string> {
  // imported when a command needs it: the loader brings the SQL parser, which --help never needs
  const { findMigration } = await import('../run/migrations.ts');
  return findMigration(target, loadProjectConfig());
}

export async function connect(opts: GlobalOptions): Promise<Db> {
  return openDb(databaseUrl(opts), { applicationName: 'belay' });
}

export function parseParams(list: string[] = []): MigrationParams {
  const out: Record<string, string> = {};
  for (const p of list) {
    const eq = p.indexOf('=');
    if (eq <= 0) throw new UsageError(`--param "${p}" is not key=value`, 'Write --param ambiguous=lowest.');
    out[p.slice(0, eq)] = p.slice(eq + 1);
  }
  return out;
}

/** A run id: digits only ("1e3", "0x10", " 7 " are refused), checked by the schema plan files use too. */
export function parseRunId(s: string): number {
  return parseNumber('run id', NUMBERS.id, s, 'Give the run id as belay status lists it, e.g. belay report 1.');
}

/** A flag's number, checked by its schema (spec/numbers.ts); default: a whole number of at least 1. */
export function parsePositiveInt(name: string, schema: NumberSchema = NUMBERS.positive) {
  return (s: string): number => parseNumber(name, schema, s);
}

// everything printed is scrubbed of the secrets this process was given (db/redact.ts), behind the masking
// every label and message already does by shape
export const out = {
  line(s = ''): void {
    process.stdout.write(`${scrubKnown(s)}\n`);
  },
  err(s: string): void {
    process.stderr.write(`${scrubKnown(s)}\n`);
  },
  json(v: unknown): void {
    process.stdout.write(`${JSON.stringify(scrubValue(v))}\n`);
  },
  /** Text as it is (a report, a script), scrubbed like every line. */
  raw(s: string): boolean {
    return process.stdout.write(scrubKnown(s));
  },
};

/** Prints an error (what, where, what to do) and returns its documented exit code. */
export function reportError(err: unknown, json: boolean): number {
  if (err instanceof BelayError) {
    if (json) out.json({ type: 'error', ...err.toJSON(), message: redactText(err.message) });
    out.err(`error [${err.code}]: ${redactText(err.message)}`);
    const d = err.details;
    if (typeof d.sqlstate === 'string')
      out.err(`  server: SQLSTATE ${d.sqlstate}${d.detail ? `, ${d.detail}` : ''}${d.constraint ? `, constraint ${d.constraint}` : ''}`);
    if (err.fix) out.err(`  what to do: ${err.fix}`);
    return err.exitCode;
  }
  const e = err as Error;
  out.err(`error [BELAY_INTERNAL]: ${redactText(e?.message ?? String(err))}`);
  if (process.env.BELAY_DEBUG) out.err(e?.stack ?? '');
  return EXIT.unexpected;
}
