// Named environments (belay.config.json) and the ledger (belay-ledger.jsonl): every dry run, rehearsal
// and apply, with the migration's checksum, so that a protected environment only takes a version that
// was rehearsed elsewhere and dry-run there. Both files live in the project directory and are committed.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { redactText, redactUrl, scrubKnown } from '../db/redact.ts';
import { BelayError, StateError } from '../errors.ts';
import { configSchema, DEFAULT_MIGRATIONS_DIR } from './config-schema.ts';

export const CONFIG_FILE = 'belay.config.json';
export const LEDGER_FILE = 'belay-ledger.jsonl';

export interface Environment {
  /** postgres://… or pglite:…; `env:NAME` or `${NAME}` reads it from the process environment (keep passwords out of the file). */
  url: string;
  /** An apply needs a passed rehearsal elsewhere and a passed dry run here (or --override). */
  protected?: boolean;
}

export interface ProjectConfig {
  /** The folder holding belay.config.json (or the current folder): the ledger is written there. */
  dir: string;
  /** The config file found, or null: without one, nothing is recorded (no ledger appears in random folders). */
  file: string | null;
  /** The absolute folder of the migrations: migrationsDir of the file, else ./migrations. */
  migrationsDir: string;
  environments: Record<string, Environment>;
}

export interface LedgerEntry {
  at: string;
  migrationId: string;
  checksum: string;
  /** The environment's name, or null when the database was given by --db / DATABASE_URL. */
  environment: string | null;
  /** Password-free database label. */
  database: string;
  command: 'dry-run' | 'rehearse' | 'apply';
  result: 'pass' | 'fail';
  runId?: number;
  /** --override: the reason given for skipping the protected-environment rule. */
  override?: string;
  detail?: string;
}

function configError(message: string, file: string, field?: string): BelayError {
  return new BelayError('BELAY_CONFIG', message, {
    details: { file, ...(field ? { field } : {}) },
    fix: `Fix ${field ? `${field} in ` : ''}${file} (its JSON Schema: schemas/belay.config.schema.json of belay-pg), e.g. {"migrationsDir": "migrations", "environments": {"production": {"url": "env:PRODUCTION_DATABASE_URL", "protected": true}}}.`,
  });
}

/** Finds belay.config.json in `from` or a parent folder; none = no environments, the ledger and ./migrations in `from`. */
export function loadProjectConfig(from = process.cwd()): ProjectConfig {
  let dir = path.resolve(from);
  for (;;) {
    const file = path.join(dir, CONFIG_FILE);
    if (existsSync(file)) return parseConfig(file);
    const up = path.dirname(dir);
    if (up === dir) {
      const here = path.resolve(from);
      return { dir: here, file: null, migrationsDir: path.join(here, DEFAULT_MIGRATIONS_DIR), environments: {} };
    }
    dir = up;
  }
}

/** Reads and validates a config file; an error names the file and the field. */
export function parseConfig(file: string): ProjectConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw configError(`cannot read ${file}: ${(err as Error).message}`, file);
  }
  const r = configSchema.safeParse(raw);
  if (!r.success) {
    const first = r.error.issues[0]!;
    const field = first.path.join('.') || '(root)';
    const lines = r.error.issues.slice(0, 5).map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
    throw configError(`invalid ${file}:\n${lines.join('\n')}`, file, field);
  }
  const dir = path.dirname(file);
  return { dir, file, migrationsDir: path.resolve(dir, r.data.migrationsDir), environments: r.data.environments };
}

/** The named environment with its URL resolved (env:NAME / ${NAME} read from the process environment). */
export function resolveEnvironment(cfg: ProjectConfig, name: string): Environment & { name: string } {
  const e = cfg.environments[name];
  if (!e) {
    const known = Object.keys(cfg.environments);
    throw new BelayError('BELAY_CONFIG', `unknown environment "${name}"`, {
      fix: known.length > 0 ? `Use one of: ${known.join(', ')}.` : `Name environments in ${CONFIG_FILE} in the project directory.`,
    });
  }
  const m = /^(?:env:([A-Za-z_][A-Za-z0-9_]*)|\$\{([A-Za-z_][A-Za-z0-9_]*)\})$/.exec(e.url);
  const varName = m?.[1] ?? m?.[2];
  if (varName) {
    const v = process.env[varName];
    if (!v) throw new BelayError('BELAY_CONFIG', `environment "${name}" reads its URL from $${varName}, which is not set`, { fix: `Set ${varName}.` });
    return { name, url: v, protected: e.protected };
  }
  return { name, url: e.url, protected: e.protected };
}

// --- the ledger -----------------------------------------------------------------------------------

export interface Ledger {
  /** The ledger file (belay-ledger.jsonl in the project directory). */
  file: string;
  /** The environment the command runs against, or null for a bare --db. */
  environment: string | null;
  protected: boolean;
}

/** The ledger of a configured project (undefined without belay.config.json: nothing is recorded). */
export function ledgerFor(cfg: ProjectConfig, environment: string | null): Ledger | undefined {
  if (!cfg.file) return undefined;
  return { file: path.join(cfg.dir, LEDGER_FILE), environment, protected: environment ? !!cfg.environments[environment]?.protected : false };
}

/** Appends one entry (one JSON line). The database label never holds a password. */
export function recordLedger(ledger: Ledger, e: Omit<LedgerEntry, 'at' | 'environment'>): LedgerEntry {
  const entry: LedgerEntry = {
    at: new Date().toISOString(),
    ...e,
    environment: ledger.environment,
    database: redactUrl(e.database),
    ...(e.detail === undefined ? {} : { detail: scrubKnown(redactText(e.detail)) }),
  };
  appendFileSync(ledger.file, `${JSON.stringify(entry)}\n`);
  return entry;
}

export function readLedger(file: string): LedgerEntry[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LedgerEntry];
      } catch {
        return []; // a torn last line (crash while appending) is skipped, not fatal
      }
    });
}

/**
 * On a protected environment, an apply needs this exact checksum to have passed a rehearsal in another
 * environment and a dry run in this one. `override` (a reason) skips the rule; it is recorded by the caller.
 */
export function assertApplyAllowed(ledger: Ledger, migrationId: string, checksum: string, override?: string): void {
  if (!ledger.protected || override) return;
  const entries = readLedger(ledger.file).filter((e) => e.migrationId === migrationId && e.checksum === checksum && e.result === 'pass');
  const rehearsed = entries.some((e) => e.command === 'rehearse' && e.environment !== ledger.environment);
  const dryRun = entries.some((e) => e.command === 'dry-run' && e.environment === ledger.environment);
  if (rehearsed && dryRun) return;
  const missing = [...(rehearsed ? [] : ['a passed rehearsal in another environment']), ...(dryRun ? [] : [`a passed dry run on "${ledger.environment}"`])];
  throw new StateError(
    'BELAY_PROTECTED',
    `environment "${ledger.environment}" is protected: this version of "${migrationId}" (checksum ${checksum.slice(0, 12)}) lacks ${missing.join(' and ')}`,
    {
      details: { environment: ledger.environment, checksum, missing, ledger: ledger.file },
      fix: `Run belay rehearse on staging and belay dry-run --env ${ledger.environment}, or pass --override "<reason>" (recorded in the ledger).`,
    },
  );
}
