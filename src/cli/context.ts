// What every command shares: where the database is, how to print, how errors become exit codes.
import { type Db, openDb } from '../db/connection.ts';
import { redactText, scrubKnown, scrubValue } from '../db/redact.ts';
import { BelayError, EXIT, UsageError } from '../errors.ts';
import { loadEnvFiles } from '../config/env-file.ts';
import { errorCodeInfo } from '../error-codes.ts';
// the lines' schema: schemas/events.schema.json (npm run schemas)
import { JSON_VERSION } from '../state/events.ts';
import type { MigrationParams } from '../spec/define.ts';
import { paint } from './style.ts';
import type { NUMBERS } from '../spec/numbers.ts';

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
  const { resolveEnvironment, loadProjectConfig } = loaded().config;
  return resolveEnvironment(loadProjectConfig(), opts.env).url;
}

/** A command's migration: a path, or a folder name or id in the project's migrations folder. */
export async function locate(target: string): Promise<string> {
  // imported when a command needs it: the loader brings the SQL parser, which --help never needs
  const { findMigration } = await import('../run/migrations.ts');
  return findMigration(target, loaded().config.loadProjectConfig());
}

/** applicationName: how the session shows in pg_stat_activity, and in who asked for a command (belay watch). */
export async function connect(opts: GlobalOptions, applicationName = 'belay'): Promise<Db> {
  return openDb(databaseUrl(opts), { applicationName });
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

// the flags' number schemas and belay.config.json's are zod's: loaded once a command runs (main's preSubcommand
// hook), not for --help or --version
let modules: { numbers: typeof import('../spec/numbers.ts'); config: typeof import('../config/environments.ts') } | undefined;

/** Loads what a command needs before its flags are parsed: the number schemas, the project config's reader. */
export async function prepareCommand(): Promise<void> {
  modules ??= { numbers: await import('../spec/numbers.ts'), config: await import('../config/environments.ts') };
}

function loaded(): NonNullable<typeof modules> {
  if (!modules) throw new Error('belay: a command ran before prepareCommand()');
  return modules;
}

/** A number schema of spec/numbers.ts, by name. */
export type NumberName = keyof typeof NUMBERS;

/** A number from the command line, checked by its schema (spec/numbers.ts) as plan files are. */
export function parseFlagNumber(flag: string, schema: NumberName, text: string, fix?: string): number {
  const { numbers } = loaded();
  return numbers.parseNumber(flag, numbers.NUMBERS[schema], text, fix);
}

/** A run id: digits only ("1e3", "0x10", " 7 " are refused), checked by the schema plan files use too. */
export function parseRunId(s: string): number {
  return parseFlagNumber('run id', 'id', s, 'Give the run id as belay status lists it, e.g. belay report 1.');
}

/** A flag's number, checked by its schema (spec/numbers.ts); default: a whole number of at least 1. */
export function parsePositiveInt(name: string, schema: NumberName = 'positive') {
  return (s: string): number => parseFlagNumber(name, schema, s);
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
  /** One --json line: its type first, then the version, then the rest. */
  json<T extends { type: string }>(value: T): void {
    const line = Object.assign({ type: value.type, v: JSON_VERSION }, value, { v: JSON_VERSION });
    process.stdout.write(`${JSON.stringify(scrubValue(line))}\n`);
  },
  /** Text as it is (a report, a script), scrubbed like every line. */
  raw(s: string): boolean {
    return process.stdout.write(scrubKnown(s));
  },
};

/** An error as --json prints it: its code, the exit code, the message and what to do (the registry's words when it has none of its own). */
export function errorJson(err: BelayError): { code: string; exitCode: number; message: string; fix: string; details: Record<string, unknown> } {
  return {
    code: err.code,
    exitCode: err.exitCode,
    message: redactText(err.message),
    fix: err.fix ?? errorCodeInfo(err.code)?.whatToDo ?? '',
    details: err.details,
  };
}

/** Prints an error (what, where, what to do) and returns its documented exit code; with json also as an error line on stdout. */
export function reportError(err: unknown, json: boolean): number {
  if (json) out.json({ type: 'error', ...errorJson(asBelay(err)) });
  const p = paint(process.stderr);
  if (err instanceof BelayError) {
    out.err(`${p.red(`error [${err.code}]`)}: ${redactText(err.message)}`);
    const d = err.details;
    if (typeof d.sqlstate === 'string')
      out.err(`  server: SQLSTATE ${d.sqlstate}${d.detail ? `, ${d.detail}` : ''}${d.constraint ? `, constraint ${d.constraint}` : ''}`);
    if (err.fix) out.err(`  ${p.bold('what to do:')} ${err.fix}`);
    return err.exitCode;
  }
  const e = err as Error;
  out.err(`${p.red('error [BELAY_INTERNAL]')}: ${redactText(e?.message ?? String(err))}`);
  if (process.env.BELAY_DEBUG) out.err(e?.stack ?? '');
  return EXIT.unexpected;
}

function asBelay(err: unknown): BelayError {
  return err instanceof BelayError ? err : new BelayError('BELAY_INTERNAL', err instanceof Error ? err.message : String(err));
}
