// belay prisma check: which pending migrations would fail, predicted from the live rows in one read-only
// REPEATABLE READ snapshot. Nothing is written; every probe runs in a savepoint of that snapshot.
import { DEFAULT_SAMPLE } from './defaults.ts';
import type { Db } from '../db/connection.ts';
import { analyzeMigrations, type MigrationAnalysis } from './analyze.ts';
import { statementFinding } from './context.ts';
import { migrationStatus, prismaSchema, readHistory, schemaHasTables } from './history.ts';
import type { Blocker } from './locks.ts';
import { DEFAULT_MIGRATIONS_DIR, listMigrations } from './migrations-dir.ts';
import { Model } from './model.ts';
import { HAS_INPUT_IS_VALID_SQL, PROBE_MEMORY_SQL, setSearchPathSql, SNAPSHOT_SQL } from './prisma-sql.ts';
import type { Finding, MigrationFile, MigrationStatus } from './types.ts';

export interface PrismaCheckOptions {
  /** The migrations folder (default prisma/migrations). */
  dir?: string;
  /** The schema Prisma uses (default: the URL's `schema` parameter, else public). */
  schema?: string;
  /** Sample rows per finding (default 20). */
  sample?: number;
  /** Report locks that block writes for longer than this estimate, ms (default 1000). */
  lockWarnMs?: number;
}

export interface PrismaCheckReport {
  /** No finding of severity error: `prisma migrate deploy` is predicted to succeed. */
  ok: boolean;
  dir: string;
  schema: string;
  status: Omit<MigrationStatus, 'pending'> & { pending: string[] };
  migrations: MigrationAnalysis[];
  findings: Finding[];
  blockers: Blocker[];
  durationMs: number;
}

export { DEFAULT_SAMPLE };
export const DEFAULT_LOCK_WARN_MS = 1000;

export async function prismaCheck(db: Db, opts: PrismaCheckOptions = {}): Promise<PrismaCheckReport> {
  const t0 = performance.now();
  const dir = opts.dir ?? DEFAULT_MIGRATIONS_DIR;
  const files = listMigrations(dir);
  const schema = opts.schema ?? prismaSchema(db.url);
  await db.query(SNAPSHOT_SQL);
  try {
    await db.query(setSearchPathSql(schema, true));
    const { pendingFiles: _files, ...r } = await checkInSnapshot(db, files, schema, opts);
    return { ...r, dir, durationMs: performance.now() - t0 };
  } finally {
    await db.query('ROLLBACK').catch(() => undefined);
  }
}

/** The check inside a snapshot the caller opened (deploy opens its own while holding Prisma's lock). */
export async function checkInSnapshot(db: Db, files: readonly MigrationFile[], schema: string, opts: PrismaCheckOptions) {
  const rows = await readHistory(db, schema);
  const status = migrationStatus(files, rows);
  const findings = historyFindings(status);
  if (!status.tableExists && status.pending.length && (await schemaHasTables(db, schema))) {
    findings.push(
      statementFinding('PRISMA_BASELINE_REQUIRED', null, null, {
        message: `schema "${schema}" has tables but no _prisma_migrations: prisma migrate deploy stops with P3005`,
      }),
    );
  }
  await db.query(PROBE_MEMORY_SQL);
  const inputIsValid = !!(await db.query<{ has: boolean }>(HAS_INPUT_IS_VALID_SQL)).rows[0]?.has;
  const model = new Model(db, schema);
  const a = await analyzeMigrations(db, model, status.pending, {
    sample: opts.sample ?? DEFAULT_SAMPLE,
    lockWarnMs: opts.lockWarnMs ?? DEFAULT_LOCK_WARN_MS,
    inputIsValid,
  });
  findings.push(...a.findings);
  return {
    ok: !findings.some((f) => f.severity === 'error'),
    schema,
    status: { ...status, pending: status.pending.map((f) => f.name) },
    migrations: a.migrations,
    findings,
    blockers: a.blockers,
    pendingFiles: status.pending,
  };
}

function historyFindings(s: MigrationStatus): Finding[] {
  return [
    ...s.failed.map((r) =>
      statementFinding('PRISMA_FAILED_MIGRATION', r.migration_name, null, {
        message: `${r.migration_name} started at ${String(r.started_at instanceof Date ? r.started_at.toISOString() : r.started_at)} and failed${r.logs?.trim() ? `: ${r.logs.trim().split('\n')[0]}` : ''}`,
        sample: r.logs ? [{ logs: r.logs }] : [],
      }),
    ),
    ...s.changed.map((c) =>
      statementFinding('PRISMA_CHANGED_MIGRATION', c.name, null, {
        message: `${c.name} was applied with checksum ${c.recorded.slice(0, 12)}…, the file now has ${c.local.slice(0, 12)}…`,
      }),
    ),
    ...s.missingLocally.map((n) =>
      statementFinding('PRISMA_MISSING_MIGRATION', n, null, { message: `${n} is applied but has no folder in the migrations directory` }),
    ),
  ];
}
