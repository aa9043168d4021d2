// Parallel key-range workers (apply --workers N). A round of a step's decision is split once into N disjoint
// key ranges of as many decided rows each, stored in belay.ranges before the first of their batches; each
// range is walked by its own walker on its own connection, every batch still one transaction with its
// checkpoint (the batch row and the range's last key). The throttle asks on each worker's connection; the
// run's connection keeps the advisory lock and serves what runs after a batch (control, abort triggers), one
// batch at a time. A resume finds the stored split and goes on from each range's last key. See docs/workers.md.
import { type Db, openDb, transaction } from '../db/connection.ts';
import { UsageError } from '../errors.ts';
import type { DecisionTarget } from '../state/decision-sql.ts';
import { splitRangesSql } from '../state/decision-sql.ts';
import { tell } from '../state/events.ts';
import { INSERT_RANGE_SQL, type KeyRange, RANGES_SQL } from '../state/runs.ts';
import type { BatchJob } from './batch.ts';
import { type StepRun, walk, walker } from './walk.ts';

/** --workers N needs a server (PGlite is one session) and a transaction per batch (not --single). */
export function assertWorkers(db: Db, workers: number | undefined, mode: string): void {
  if (workers === undefined || workers <= 1) return;
  if (db.kind === 'pglite') {
    throw new UsageError(
      `--workers ${workers}: PGlite is a single session, so its batches cannot run on several connections; nothing was written`,
      'Run with --workers 1 (the default) on PGlite, or apply on a PostgreSQL server.',
    );
  }
  if (mode === 'single') {
    throw new UsageError(`--workers ${workers} with --single: a single-transaction run has one connection; nothing was written`, 'Drop one of them.');
  }
}

/**
 * The round's split: the stored one (a resume keeps it, so every range's checkpoint holds), else a new one of what is left
 * after `after` into `workers` ranges; undefined when the round is walked by the single walker.
 */
export async function roundRanges(db: Db, d: DecisionTarget, s: StepRun, workers: number, after: string | null): Promise<KeyRange[] | undefined> {
  const { runId } = s.ctx;
  const stored = (await db.query<KeyRange>(RANGES_SQL, [runId, s.stepNo, s.round])).rows;
  if (stored.length > 0) return stored;
  if (workers <= 1) return undefined;
  const his = (await db.query<{ hi: string }>(splitRangesSql(d), [s.round, after, workers])).rows.map((r) => r.hi);
  if (his.length <= 1) return undefined;
  const ranges = his.map((hi, i) => ({
    worker: i,
    afterKey: i === 0 ? after : his[i - 1]!,
    upperKey: i === his.length - 1 ? null : hi,
    lastKey: null,
    done: false,
  }));
  // stored before any of their batches: a crash from here on resumes this split
  await transaction(db, async () => {
    for (const r of ranges) await db.query(INSERT_RANGE_SQL, [runId, s.stepNo, s.round, r.worker, r.afterKey, r.upperKey]);
  });
  return ranges;
}

/** Connections of a step's workers, opened on first use; close() ends them all. */
export function workerPool(db: Db): { get(i: number): Promise<Db>; close(): Promise<void> } {
  const open = new Map<number, Promise<Db>>();
  return {
    get: (i) => open.get(i) ?? open.set(i, openDb(db.url, { applicationName: `belay worker ${i + 1}` })).get(i)!,
    async close() {
      for (const p of open.values()) await (await p.catch(() => undefined))?.close();
      open.clear();
    },
  };
}

/**
 * Walks the ranges not done yet on `workers` connections at once (a stored split resumed with fewer workers:
 * some connections walk several ranges, one after the other), until every range is done or one walker
 * fails: the others then stop after the batch they are in (committed, with its checkpoint), and the first
 * error is thrown.
 */
export async function walkRanges(
  s: StepRun,
  job: BatchJob,
  ranges: readonly KeyRange[],
  pool: ReturnType<typeof workerPool>,
  at: { workers: number; size: number },
): Promise<void> {
  const left = ranges.filter((r) => !r.done);
  const lanes = Math.max(1, Math.min(at.workers, left.length));
  const own = s.serial;
  s.serial = serialized();
  await tell(s.ctx.db, s.ctx.emit, { type: 'workers-started', runId: s.ctx.runId, step: s.step.name, round: s.round, workers: lanes, ranges: ranges.length });
  const lane = async (i: number) => {
    const db = await pool.get(i);
    let size = at.size;
    for (const r of left.filter((_, j) => j % lanes === i)) {
      if (s.stop.error !== undefined) return;
      const w = walker({ ...job, db }, { last: r.lastKey ?? r.afterKey, upper: r.upperKey, worker: r.worker, size });
      await walk(s, w);
      size = w.size;
    }
  };
  try {
    await Promise.all(
      Array.from({ length: lanes }, (_, i) =>
        lane(i).catch((err: unknown) => {
          s.stop.error ??= err;
        }),
      ),
    );
  } finally {
    s.serial = own;
  }
  if (s.stop.error !== undefined) throw s.stop.error;
}

/** One hook at a time: the controllers share the run's connection and their tallies. */
export function serialized(): StepRun['serial'] {
  let chain: Promise<unknown> = Promise.resolve();
  return (fn) => {
    const r = chain.then(fn);
    chain = r.catch(() => undefined);
    return r;
  };
}
