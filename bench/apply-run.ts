// One belay apply, broken down from what the run itself says: its typed events (the CLI's --json lines,
// stamped by the process that ran it) and its state (belay.events, belay.decisions, belay.batches, stamped
// by the server's clock on the same machine). Nothing here times belay from outside but the process.
import type { Db } from '../src/db/connection.ts';
import type { BelayEvent, EventOf } from '../src/state/events.ts';

export interface ApplyRun {
  /** Process start to exit: what a user waits for. */
  commandMs: number;
  /** The batched step alone: decision + batches + catch-up. */
  stepMs: number;
  decisionMs: number;
  /** Node, loading the migration, planning the step, the run record: process start to run-started. */
  startupMs: number;
  /** The rest of the decision's snapshot: the pre-flight checks, reading the decision. */
  checksMs: number;
  backupMs: number;
  /** Temporary indexes, the schema snapshot, the baseline checksums of the columns the run does not write. */
  setupMs: number;
  /** step-started to the last batch's COMMIT: the write fence, then every batch. */
  batchesMs: number;
  /** The last COMMIT to step-finished: the rule again, for rows that qualify now but were not decided. */
  catchUpMs: number;
  catchUpRounds: number;
  /** The post-run verification, the schema snapshot after, the counts: step-finished to run-finished. */
  verifyMs: number;
  /** run-finished to the process's exit. */
  exitMs: number;
  batches: number;
  changed: number;
  /** The longest a committed batch held its row locks (BEGIN to COMMIT returned), and how many went over the target. */
  maxHeldMs: number;
  p95HeldMs: number;
  heldOver: number;
  /** Decided rows per committed batch, on average (the sizer grows the size to its target from 100). */
  meanBatchRows: number;
  /** The longest batch as belay.batches records it (BEGIN to the end of its checks). */
  maxRecordedMs: number;
  /** Attempts cancelled at the ceiling, rolled back and split (they held their locks up to the ceiling). */
  overCeiling: number;
  maxOverCeilingMs: number;
  peakRssMb: number;
  /** With --profile: the statements that took longest in all (sessions in parallel overlap). */
  statements?: Array<{ sql: string; calls: number; ms: number; maxMs: number }>;
}

type Line = BelayEvent & { at?: string } & Record<string, unknown>;

export async function readApplyRun(
  db: Db,
  child: { lines: Array<Record<string, unknown>>; spawnedAt: number; exitedAt: number },
  targetMs = 200,
): Promise<ApplyRun> {
  const lines = child.lines as Line[];
  const end = lines.find((l) => (l.type as string) === 'bench-child') as { exitCode: number; maxRssMb: number } | undefined;
  const result = lines.find((l) => (l.type as string) === 'result') as { status?: string; error?: { message?: string } } | undefined;
  if (end?.exitCode !== 0 || result?.status !== 'completed') {
    throw new Error(`belay apply did not complete (exit ${end?.exitCode}, ${result?.status}): ${result?.error?.message ?? JSON.stringify(lines.slice(-3))}`);
  }
  const at = (l: Line | undefined, what: string) => {
    if (!l?.at) throw new Error(`belay apply emitted no ${what} event`);
    return Date.parse(l.at);
  };
  const all = <T extends BelayEvent['type']>(type: T) => lines.filter((l) => l.type === type) as unknown as Array<EventOf<T> & { at: string }>;
  const one = (type: BelayEvent['type']) => lines.find((l) => l.type === type);

  const run = (
    await db.query<{ started: Date; decided: Date }>(`SELECT (SELECT at FROM belay.events WHERE type = 'run-started' ORDER BY id LIMIT 1) AS started,
       (SELECT decided_at FROM belay.decisions WHERE step_no = 0) AS decided`)
  ).rows[0]!;
  const b = (
    await db.query<{ n: number; changed: number; max: number }>(`SELECT count(*)::int AS n, coalesce(sum(rows_changed), 0)::int AS changed,
       coalesce(max(duration_ms), 0)::float8 AS max FROM belay.batches WHERE run_id = (SELECT max(id) FROM belay.runs)`)
  ).rows[0]!;

  const committed = all('batch-committed');
  const over = all('batch-over-ceiling');
  const held = committed.map((e) => e.heldMs).sort((x, y) => x - y);
  const started = at(one('run-started'), 'run-started');
  const checked = at(one('checks-finished'), 'checks-finished');
  const backedUp = one('backups-verified') ? at(one('backups-verified'), 'backups-verified') : checked;
  const stepStarted = at(one('step-started'), 'step-started');
  const lastCommit = at(committed[committed.length - 1], 'batch-committed');
  const stepFinished = at(one('step-finished'), 'step-finished');
  const finished = at(one('run-finished'), 'run-finished');
  // the decision is made before the pre-flight, in its snapshot; its end is recorded by the server
  const decisionMs = run.decided.getTime() - run.started.getTime();
  // one partition of the command's time, in the order of the run (pipeline.ts)
  const phases = {
    startupMs: started - child.spawnedAt,
    decisionMs,
    checksMs: checked - started - decisionMs,
    backupMs: backedUp - checked,
    setupMs: stepStarted - backedUp,
    batchesMs: lastCommit - stepStarted,
    catchUpMs: stepFinished - lastCommit,
    verifyMs: finished - stepFinished,
    exitMs: child.exitedAt - finished,
  };
  return {
    commandMs: child.exitedAt - child.spawnedAt,
    stepMs: decisionMs + (stepFinished - stepStarted),
    ...phases,
    catchUpRounds: all('catch-up').length,
    batches: b.n,
    changed: b.changed,
    maxHeldMs: Math.max(0, ...committed.map((e) => e.heldMs)),
    p95HeldMs: held[Math.min(held.length - 1, Math.floor(held.length * 0.95))] ?? 0,
    meanBatchRows: committed.length ? committed.reduce((n, e) => n + e.rowsInRange, 0) / committed.length : 0,
    heldOver: committed.filter((e) => e.heldMs > targetMs).length,
    maxRecordedMs: b.max,
    overCeiling: over.length,
    maxOverCeilingMs: Math.max(0, ...over.map((e) => e.elapsedMs)),
    peakRssMb: end.maxRssMb,
    statements: (lines.find((l) => (l.type as string) === 'bench-statements') as { top?: ApplyRun['statements'] } | undefined)?.top,
  };
}
