// belay rehearse: apply for real (batched), run the spec's verifications, roll back, then prove that every
// touched table has exactly its pre-run content (order-independent checksum and row count). Pass or fail,
// with the evidence per table. Meant for a copy of production (staging), never for production itself.
import type { Db } from '../db/connection.ts';
import { checksumTable, type TableChecksum } from '../db/checksum.ts';
import { qualified } from '../db/sql.ts';
import { BelayError, StateError } from '../errors.ts';
import { apply, type ApplyOptions, asBelayError } from '../execute/apply.ts';
import { rollback, type RollbackResult } from '../rollback/rollback.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { latestRun } from '../state/runs.ts';
import { ensureState } from '../state/schema.ts';
import { type Ledger, recordLedger } from '../config/environments.ts';
import { recordTrial } from '../state/trials.ts';
import type { RunResult } from '../contract.ts';

export interface RehearseOptions {
  /** Passed on to apply (events, batch size, hooks such as the pre-flight). */
  apply?: ApplyOptions;
  ledger?: Ledger;
  /** Rehearsing writes (then undoes): on a protected environment it needs a reason. */
  override?: string;
}

export interface TableEvidence {
  table: string;
  before: TableChecksum;
  after: TableChecksum | null;
  same: boolean;
}

export interface RehearseResult {
  migrationId: string;
  checksum: string;
  pass: boolean;
  /** What failed first, one sentence; undefined when the rehearsal passed. */
  reason?: string;
  runId: number | null;
  apply: RunResult | null;
  verify: Array<{ name: string; rows: number; sample: unknown[] }>;
  rollback: RollbackResult | null;
  tables: TableEvidence[];
  durationMs: number;
}

async function checksums(db: Db, tables: readonly string[]): Promise<Map<string, TableChecksum>> {
  const out = new Map<string, TableChecksum>();
  for (const t of tables) out.set(t, await checksumTable(db, qualified(t)));
  return out;
}

export async function rehearse(db: Db, m: LoadedMigration, opts: RehearseOptions = {}): Promise<RehearseResult> {
  const t0 = performance.now();
  if (opts.ledger?.protected && !opts.override) {
    // a rehearsal writes to the tables for a while: not on a protected environment without a reason
    throw new StateError('BELAY_PROTECTED', `environment "${opts.ledger.environment}" is protected: a rehearsal writes to its tables before undoing`, {
      fix: 'Rehearse on a copy of it (staging), or pass --override "<reason>" (recorded in the ledger).',
    });
  }
  await ensureState(db);
  // the rehearsal's apply would resume that run, or be refused by it, and its rollback would then undo a real run
  const last = await latestRun(db, m.spec.id);
  if (last && last.status !== 'rolled_back' && last.status !== 'abandoned') {
    throw new StateError(
      'BELAY_REHEARSE_LIVE_RUN',
      `migration "${m.spec.id}" already has run ${last.id} (${last.status}) here: a rehearsal applies and rolls back a run of its own`,
      {
        details: { runId: last.id, status: last.status },
        fix: `Rehearse on a copy where it has not run (staging), or roll run ${last.id} back first (belay rollback ${last.id}). Nothing was changed.`,
      },
    );
  }
  const tables = m.spec.tables;
  const before = await checksums(db, tables);
  const res: RehearseResult = {
    migrationId: m.spec.id,
    checksum: m.checksum,
    pass: false,
    runId: null,
    apply: null,
    verify: [],
    rollback: null,
    tables: [],
    durationMs: 0,
  };
  try {
    // a migration applied and rolled back before starts a new run by itself (apply: rolled_back → new run)
    const a = await apply(db, m, { ...opts.apply, mode: 'batched' });
    res.apply = a;
    res.runId = a.runId;
    if (a.status !== 'completed') res.reason = `apply ended ${a.status}${a.error ? `: ${a.error.message}` : ''}`;
    if (a.status === 'completed') {
      for (const v of m.spec.verify) {
        const r = await db.query(`SELECT * FROM (${v.sql}) AS violation LIMIT 20`);
        const n = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${v.sql}) AS violation`);
        res.verify.push({ name: v.name, rows: n.rows[0]!.n, sample: r.rows });
      }
      const failed = res.verify.filter((v) => v.rows > 0);
      if (failed.length > 0) res.reason = `verification ${failed.map((v) => `${v.name} (${v.rows} rows)`).join(', ')} failed`;
    }
    // refused: nothing of this rehearsal ran (another apply holds the lock), so there is nothing of its own to undo
    if (a.status !== 'rolled_back' && a.status !== 'refused') res.rollback = await rollback(db, a.runId);
    if (res.rollback && res.rollback.conflictCount > 0) res.reason ??= `rollback left ${res.rollback.conflictCount} conflicting row(s) alone`;
  } catch (err) {
    res.reason ??= asBelayError(err).message;
  }
  const after = await checksums(db, tables).catch(() => new Map<string, TableChecksum>());
  res.tables = tables.map((t) => {
    const b = before.get(t)!;
    const a = after.get(t) ?? null;
    return { table: t, before: b, after: a, same: !!a && a.rows === b.rows && a.checksum === b.checksum };
  });
  const changed = res.tables.filter((t) => !t.same);
  if (changed.length > 0)
    res.reason ??= `after the rollback ${changed.map((t) => qualified(t.table)).join(', ')} differ${changed.length === 1 ? 's' : ''} from before the run`;
  else if (res.reason === undefined && !res.rollback) res.reason = 'nothing was rolled back';
  res.pass = res.reason === undefined && changed.length === 0;
  res.durationMs = performance.now() - t0;
  const summary = {
    runId: res.runId,
    reason: res.reason ?? null,
    tables: res.tables.map((t) => ({ table: t.table, before: t.before, after: t.after, same: t.same })),
  };
  await recordTrial(db, { kind: 'rehearse', migrationId: m.spec.id, checksum: m.checksum, pass: res.pass, summary }).catch((e: unknown) => {
    if (!(e instanceof BelayError)) throw e;
  });
  if (opts.ledger)
    recordLedger(opts.ledger, {
      migrationId: m.spec.id,
      checksum: m.checksum,
      database: db.label,
      command: 'rehearse',
      result: res.pass ? 'pass' : 'fail',
      runId: res.runId ?? undefined,
      override: opts.override,
      detail: res.reason,
    });
  return res;
}
