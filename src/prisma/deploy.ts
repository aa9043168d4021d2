// belay prisma deploy: what `prisma migrate deploy` does, the safe way. Under Prisma's own advisory lock, it
// checks the pending migrations first and stops on a predicted failure; then each migration runs as its plan
// (rewrite.ts): index builds CONCURRENTLY before, the file and its `_prisma_migrations` row (written exactly
// as Prisma writes it) in one transaction with lock_timeout and retries, validations after. A failure before
// the commit rolls back and undoes the index builds: no failed row is ever left (no P3009). A large UPDATE
// that opens a file runs first through belay's own apply (batched-update.ts), and is rolled back by belay
// when the rest of the file fails; the runner comes from run/prisma-deploy.ts, the layer that knows the stages.
import { DEFAULT_BATCH_OVER, DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_LOCK_WAIT_MS, DEFAULT_RETRIES } from './defaults.ts';
import { randomUUID } from 'node:crypto';
import type { RunResult } from '../contract.ts';
import type { Db } from '../db/connection.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { deleteHazard, runDelete, startDelete, undoDelete } from './batched-delete.ts';
import { batchedMigration } from './batched-update.ts';
import { BelayError, DbError, isRetryable, serverFields } from '../errors.ts';
import { checkInSnapshot, type PrismaCheckOptions, type PrismaCheckReport } from './check.ts';
import { schemaHasTables, prismaSchema } from './history.ts';
import { listMigrations, DEFAULT_MIGRATIONS_DIR } from './migrations-dir.ts';
import { parseFile } from './parse.ts';
import {
  CREATE_MIGRATIONS_TABLE_SQL,
  INDEX_VALID_SQL,
  MIGRATIONS_TABLE_EXISTS_SQL,
  recordFinishedSql,
  recordStartedSql,
  recordStepSql,
  RESET_LOCK_TIMEOUT_SQL,
  restoreSearchPathSql,
  setLockTimeoutSql,
  setSearchPathSql,
  SHOW_SEARCH_PATH_SQL,
  SNAPSHOT_SQL,
  TRY_LOCK_SQL,
  UNLOCK_SQL,
} from './prisma-sql.ts';
import { type DeployStep, type MigrationPlan, planMigration } from './rewrite.ts';

export interface PrismaDeployOptions extends PrismaCheckOptions {
  /** Return the plan without running anything. */
  plan?: boolean;
  /** lock_timeout of every step, ms (default 5000): a step waits at most this long for a lock, then retries. */
  lockTimeoutMs?: number;
  /** Attempts after the first for a step that timed out on a lock or hit a deadlock (default 5). */
  retries?: number;
  /** How long to wait for Prisma's advisory lock, ms (default 10000, as Prisma). */
  lockWaitMs?: number;
  /** Rewrite for concurrency (default: on a server, not on PGlite). */
  rewrite?: boolean;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Runs an UPDATE that opens a file as a belay batched step; without it every UPDATE runs in the file's transaction. */
  batches?: BatchedRunner;
  /** Rows (the planner's estimate) from which such an UPDATE runs batched (default 100,000). */
  batchOver?: number;
}

/** belay's apply and rollback, for the UPDATEs deploy runs in batches. */
export interface BatchedRunner {
  apply(m: LoadedMigration): Promise<RunResult>;
  /** Undoes a run's committed batches; returns how many rows the application changed since, left as they are. */
  rollback(runId: number): Promise<{ conflicts: number }>;
}

export interface AppliedMigration {
  name: string;
  /** The `_prisma_migrations` row id. */
  id: string;
  durationMs: number;
  /** Attempts of the transaction (1 when no lock wait timed out). */
  attempts: number;
  /** belay runs that wrote its batched UPDATEs (belay report <run>, belay rollback <run>). */
  belayRuns: number[];
  /** Undo tables holding every row its batched DELETEs deleted (drop them once the rows are no longer needed). */
  deletedRowsKept: string[];
}

export interface PrismaDeployResult {
  check: PrismaCheckReport;
  plans: MigrationPlan[];
  applied: AppliedMigration[];
  /** Set with plan: true: nothing ran. */
  planOnly: boolean;
  durationMs: number;
}

export { DEFAULT_BATCH_OVER, DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_LOCK_WAIT_MS, DEFAULT_RETRIES };

export async function deployMigrations(db: Db, opts: PrismaDeployOptions = {}): Promise<PrismaDeployResult> {
  const t0 = performance.now();
  const dir = opts.dir ?? DEFAULT_MIGRATIONS_DIR;
  const files = listMigrations(dir);
  const schema = opts.schema ?? prismaSchema(db.url);
  const log = opts.log ?? (() => undefined);
  const path = (await db.query<{ path: string }>(SHOW_SEARCH_PATH_SQL)).rows[0]!.path;
  await db.query(setSearchPathSql(schema, false));
  await takePrismaLock(db, opts.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS);
  try {
    await db.query(SNAPSHOT_SQL);
    let checked: Awaited<ReturnType<typeof checkInSnapshot>>;
    try {
      checked = await checkInSnapshot(db, files, schema, opts);
    } finally {
      await db.query('ROLLBACK');
    }
    const { pendingFiles, ...rest } = checked;
    const check: PrismaCheckReport = { ...rest, dir, durationMs: performance.now() - t0 };
    refuseOn(check);
    const rewrite = opts.rewrite ?? db.kind === 'postgres';
    const plans: MigrationPlan[] = [];
    const deleteHazards = new Map<string, string>();
    if (opts.batches && rewrite) {
      for (const a of check.migrations.flatMap((m) => m.statements.flatMap((s) => s.actions))) {
        const name = `${a.schema}.${a.table}`;
        if (a.kind === 'DeleteStmt' && a.live && a.schema && a.table && !deleteHazards.has(name))
          deleteHazards.set(name, await deleteHazard(db, a.schema, a.table));
      }
    }
    for (const f of pendingFiles) {
      const infos = check.migrations.find((m) => m.name === f.name)?.statements ?? [];
      plans.push(
        planMigration(f, await parseFile(f.script), infos, {
          rewrite,
          schema,
          ...(opts.batches ? { batchOver: opts.batchOver ?? DEFAULT_BATCH_OVER, deleteHazards } : {}),
        }),
      );
    }
    const result: PrismaDeployResult = { check, plans, applied: [], planOnly: !!opts.plan, durationMs: 0 };
    if (opts.plan || plans.length === 0) return { ...result, durationMs: performance.now() - t0 };
    await ensureHistoryTable(db, schema);
    for (const p of plans) {
      log(`applying ${p.name}`);
      result.applied.push(await runMigration(db, p, schema, opts, log));
      log(`applied ${p.name}`);
    }
    return { ...result, durationMs: performance.now() - t0 };
  } finally {
    await db.query(UNLOCK_SQL).catch(() => undefined);
    await db.query(restoreSearchPathSql(path)).catch(() => undefined);
  }
}

async function takePrismaLock(db: Db, waitMs: number): Promise<void> {
  const until = Date.now() + waitMs;
  for (;;) {
    if ((await db.query<{ got: boolean }>(TRY_LOCK_SQL)).rows[0]?.got) return;
    if (Date.now() >= until) {
      throw new BelayError('BELAY_PRISMA_LOCKED', `another session holds Prisma's migration lock (pg_advisory_lock(72707369)) after ${waitMs} ms`, {
        fix: 'A `prisma migrate deploy` (or another belay prisma deploy) is running: wait for it to finish, or raise --lock-wait.',
      });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Refuses what `prisma migrate deploy` would refuse, and predicted failures that no rewrite avoids. */
function refuseOn(check: PrismaCheckReport): void {
  const failed = check.findings.filter((f) => f.code === 'PRISMA_FAILED_MIGRATION');
  if (failed.length) {
    throw new BelayError(
      'BELAY_PRISMA_FAILED_MIGRATION',
      `${failed.length} migration(s) are recorded as failed: ${failed.map((f) => f.migration).join(', ')}`,
      {
        details: { findings: failed },
        fix: 'Repair what the failed migration left, then `prisma migrate resolve --rolled-back <name>` (or --applied), and deploy again.',
      },
    );
  }
  if (check.findings.some((f) => f.code === 'PRISMA_BASELINE_REQUIRED')) {
    throw new BelayError('BELAY_PRISMA_BASELINE', `schema "${check.schema}" has tables but no _prisma_migrations`, {
      fix: 'Baseline the database first: `prisma migrate resolve --applied <name>` for the migrations it already has.',
    });
  }
  const blocking = check.findings.filter((f) => f.severity === 'error' && !f.deployFixes);
  if (blocking.length) {
    throw new BelayError(
      'BELAY_PRISMA_PREDICTED_FAILURE',
      `the check predicts ${blocking.length} failing statement(s); nothing was run: ${blocking.map((f) => `${f.code} in ${f.migration ?? '-'}${f.line ? ` line ${f.line}` : ''}`).join('; ')}`,
      {
        details: { findings: blocking },
        fix: 'Run belay prisma check for the rows and fixes, correct the data or the migration, then deploy again.',
      },
    );
  }
}

async function ensureHistoryTable(db: Db, schema: string): Promise<void> {
  if ((await db.query<{ exists: boolean }>(MIGRATIONS_TABLE_EXISTS_SQL, [schema])).rows[0]?.exists) return;
  if (await schemaHasTables(db, schema)) {
    throw new BelayError('BELAY_PRISMA_BASELINE', `schema "${schema}" has tables but no _prisma_migrations`, {
      fix: 'Baseline the database first: `prisma migrate resolve --applied <name>` for the migrations it already has.',
    });
  }
  await db.exec(CREATE_MIGRATIONS_TABLE_SQL);
}

async function withRetries<T>(
  opts: PrismaDeployOptions,
  log: (l: string) => void,
  what: string,
  fn: () => Promise<T>,
): Promise<{ value: T; attempts: number }> {
  const retries = opts.retries ?? DEFAULT_RETRIES;
  for (let attempt = 1; ; attempt++) {
    try {
      return { value: await fn(), attempts: attempt };
    } catch (err) {
      if (!isRetryable(err) || attempt > retries) throw err;
      const wait = Math.min(10_000, 250 * 2 ** (attempt - 1));
      log(`  ${what}: ${(err as Error).message} (SQLSTATE ${serverFields(err).sqlstate}); retrying in ${wait} ms`);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

async function runStep(db: Db, s: DeployStep, lockTimeoutMs: number): Promise<void> {
  await db.query(setLockTimeoutSql(lockTimeoutMs, false));
  try {
    await db.exec(s.sql);
    if (s.index && !(await db.query<{ valid: boolean }>(INDEX_VALID_SQL, [s.index])).rows[0]?.valid) {
      throw new BelayError('BELAY_PRISMA_DEPLOY_FAILED', `index ${s.index} was built but is not valid`, {});
    }
  } catch (err) {
    if (s.undo) await db.exec(s.undo).catch(() => undefined); // an interrupted CONCURRENTLY build leaves an INVALID index
    throw err;
  } finally {
    await db.query(RESET_LOCK_TIMEOUT_SQL);
  }
}

async function runMigration(db: Db, p: MigrationPlan, schema: string, opts: PrismaDeployOptions, log: (l: string) => void): Promise<AppliedMigration> {
  const t0 = performance.now();
  const lockTimeout = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  const done: DeployStep[] = [];
  const runs = new Map<DeployStep, number>();
  const deletes: DeployStep[] = [];
  let current: DeployStep | undefined;
  const undo = async () => {
    for (const s of done.reverse()) if (s.undo) await db.exec(s.undo).catch(() => undefined);
    // the batched statements, last first
    for (const s of p.steps.filter((x) => x.phase === 'batched').reverse()) {
      if (s.deleted && deletes.includes(s)) {
        await undoDelete(db, s.deleted);
        log(`  the rows statement ${s.statement} deleted in batches were put back`);
      }
      const id = runs.get(s);
      if (id === undefined) continue;
      const { conflicts } = await opts.batches!.rollback(id);
      if (conflicts) log(`  belay run ${id} rolled back; ${conflicts} row(s) the application changed since were left as they are`);
    }
  };
  try {
    for (const s of p.steps.filter((x) => x.phase === 'batched')) {
      current = s;
      if (s.deleted) {
        const d = s.deleted;
        log(
          `  in batches: statement ${s.statement}, DELETE from ${d.table} (about ${Math.round(d.rows).toLocaleString('en-US')} rows), deleted rows kept in ${d.undo}`,
        );
        await startDelete(db, d);
        deletes.push(s);
        const n = await runDelete(db, d, lockTimeout, (what, fn) => withRetries(opts, log, what, fn).then((r) => r.value));
        log(`  ${n} rows deleted`);
        continue;
      }
      const u = s.batched!;
      log(`  in batches: statement ${s.statement}, UPDATE of ${u.table} (about ${Math.round(u.rows).toLocaleString('en-US')} rows)`);
      const r = await opts.batches!.apply(batchedMigration(u, p.name, s.statement!, `${p.name}/migration.sql`));
      // a refused run wrote nothing (its runId may be another run's): nothing of it to undo
      if (r.status !== 'refused') runs.set(s, r.runId);
      if (r.status !== 'completed') {
        throw r.error ?? new BelayError('BELAY_PRISMA_DEPLOY_FAILED', `the batched UPDATE ended ${r.status}`, {});
      }
      log(`  belay run ${r.runId}: ${r.steps[0]?.rowsChanged ?? 0} rows changed in ${r.steps[0]?.batches ?? 0} batches`);
    }
    for (const s of p.steps.filter((x) => x.phase === 'before')) {
      current = s;
      log(`  before the transaction: ${firstLine(s.sql)}`);
      await withRetries(opts, log, firstLine(s.sql), () => runStep(db, s, lockTimeout));
      done.push(s);
    }
    const id = randomUUID();
    const tx = await withRetries(opts, log, `transaction of ${p.name}`, async () => {
      await db.query('BEGIN');
      try {
        await db.query(setLockTimeoutSql(lockTimeout, true));
        await db.query(setSearchPathSql(schema, true));
        await db.query(recordStartedSql(schema), [id, p.checksum, new Date(), p.name]);
        for (const s of p.steps.filter((x) => x.phase === 'transaction')) {
          current = s;
          await db.exec(s.sql);
        }
        current = undefined;
        await db.query(recordStepSql(schema), [id]);
        await db.query(recordFinishedSql(schema), [id, new Date()]);
        await db.query('COMMIT');
      } catch (err) {
        await db.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    for (const s of p.steps.filter((x) => x.phase === 'after')) {
      current = s;
      log(`  after the commit: ${firstLine(s.sql)}`);
      try {
        await withRetries(opts, log, firstLine(s.sql), () => runStep(db, s, lockTimeout));
      } catch (err) {
        throw followUpError(p, s, err);
      }
    }
    return {
      name: p.name,
      id,
      durationMs: performance.now() - t0,
      attempts: tx.attempts,
      belayRuns: [...runs.values()],
      deletedRowsKept: deletes.map((s) => s.deleted!.undo),
    };
  } catch (err) {
    // applied and recorded: nothing to undo
    if (err instanceof BelayError && err.code === 'BELAY_PRISMA_FOLLOW_UP') throw err;
    // an earlier batched DELETE of this file waits for its rows: what this deploy did is undone, the message kept
    if (err instanceof BelayError && err.code === 'BELAY_PRISMA_DELETE_INTERRUPTED') {
      await undo();
      throw err;
    }
    try {
      await undo();
    } catch (undoErr) {
      throw new BelayError(
        'BELAY_PRISMA_DEPLOY_FAILED',
        `${p.name} failed (${(err as Error).message}), and undoing its batched UPDATE failed too: ${(undoErr as Error).message}. No _prisma_migrations row was written`,
        {
          cause: err,
          details: { migration: p.name, belayRuns: [...runs.values()], deletedRowsKept: deletes.map((s) => s.deleted!.undo) },
          fix: `Undo what is left once the cause is fixed (belay rollback ${[...runs.values()].join(' / ') || '-'}; the rows in ${deletes.map((s) => s.deleted!.undo).join(', ') || '-'} back into their table), then deploy again.`,
        },
      );
    }
    throw deployError(p, current, err);
  }
}

function deployError(p: MigrationPlan, s: DeployStep | undefined, err: unknown): BelayError {
  const server = serverFields(err);
  return new BelayError(
    'BELAY_PRISMA_DEPLOY_FAILED',
    `${p.name}${s?.statement ? `, statement ${s.statement}` : ''} failed: ${(err as Error).message}. It was rolled back and no _prisma_migrations row was written`,
    {
      cause: err,
      details: { migration: p.name, statement: s?.statement ?? null, sql: s?.sql, ...server },
      fix: 'Nothing of this migration is left in the database: fix the cause (belay prisma check shows what it can predict) and deploy again.',
    },
  );
}

function followUpError(p: MigrationPlan, s: DeployStep, err: unknown): BelayError {
  return new BelayError(
    'BELAY_PRISMA_FOLLOW_UP',
    `${p.name} is applied and recorded, but its follow-up step failed: ${firstLine(s.sql)}: ${(err as Error).message}`,
    {
      cause: err,
      details: { migration: p.name, statement: s.statement, sql: s.sql, ...(err instanceof DbError ? err.server : serverFields(err)) },
      fix: 'The constraint is in place as NOT VALID (new rows are checked). Fix the rows the error names, then run the SQL shown yourself.',
    },
  );
}

const firstLine = (sql: string) => sql.split('\n')[0]!.slice(0, 120);
