// The run contract: all a stage sees of a run. Stages import this (and db/, spec/, state/), never one
// another; only run/pipeline.ts knows their order.
import type { Db } from './db/connection.ts';
import type { BelayError } from './errors.ts';
import type { BatchedStep } from './spec/define.ts';
import type { LoadedMigration } from './spec/load.ts';
import type { StepTarget } from './spec/resolve.ts';
import type { EventSink } from './state/events.ts';

/** One run of one migration; runId is the same across a resume, emit never throws. */
export interface RunContext {
  db: Db;
  runId: number;
  migration: LoadedMigration;
  /** This process continues a run that stopped part-way. */
  resumed: boolean;
  emit: EventSink;
  /** Aborted when the process is asked to stop (Ctrl-C, SIGTERM): waits end early, the run pauses after its current batch. */
  signal?: AbortSignal;
}

/** A stage: work before the first write (throwing stops the run unwritten), a say in every batch, work after the last. */
export interface Stage {
  readonly name: string;
  before?(ctx: RunContext): Promise<void>;
  batches?: BatchController;
  /** In reverse pipeline order (a stack unwinding); throwing ends the run failed. */
  after?(ctx: RunContext): Promise<void>;
}

/** After a batch: go on, stop resumable (pause), or undo every committed batch (rollback). */
export type BatchDecision = 'continue' | 'pause' | 'rollback';

/** An in-batch check: SQL that may read `written` (the batch's rows after the write) and returns no rows. */
export interface Guard {
  name: string;
  sql: string;
}

/** Hooks around every batch, each optional. */
export interface BatchController {
  /** Before each batch, outside its transaction (a throttle waits here); --workers: each at once, ctx.db its own connection. */
  beforeBatch?(ctx: RunContext, step: BatchedStep): Promise<void>;
  guards?(ctx: RunContext, step: BatchedStep, target: StepTarget): readonly Guard[];
  nextBatchSize?(current: number, last: BatchRecord): number;
  /** The longest a batch may hold its locks (ms, server only): past it the batch is rolled back and split. */
  batchCeilingMs?: number;
  afterBatch?(ctx: RunContext, batch: BatchRecord): Promise<BatchDecision>;
  /** When the run stops on an error: may replace it (an AbortedError with details.decision pauses or undoes). */
  onError?(ctx: RunContext, err: BelayError): Promise<BelayError | undefined>;
}

/**
 * One committed batch of decided rows (round `round`): lo/hi its key range as text; of rowsInRange, rowsChanged
 * were written and rowsSkipped changed by someone since the decision; xid the row version it wrote;
 * durationMs BEGIN to the end of its write and checks, heldMs BEGIN to COMMIT returned (its locks' time);
 * worker: with --workers, the key range's worker that ran it (each sizes its own batches).
 */
// biome-ignore format: a record read as one row
export interface BatchRecord {
  runId: number; stepNo: number; step: string; batchNo: number; round: number; lo: string; hi: string; worker?: number;
  rowsInRange: number; rowsChanged: number; rowsSkipped: number; xid: string; durationMs: number; heldMs: number; attempts: number; batchSize: number;
}

/** A step's outcome: rowsTotal decided (all rounds; null for SQL), rowsSkipped changed since or rejected by a check. */
// biome-ignore format: a record read as one row
export interface StepResult {
  name: string; kind: 'batched' | 'sql'; status: string; rowsTotal: number | null; rowsDone: number; rowsChanged: number; rowsSkipped: number; batches: number;
}

/** What a run did; an expected failure is in `error`, never thrown (refused: nothing ran, runId is 0 or the blocking run). */
export interface RunResult {
  runId: number;
  migrationId: string;
  status: 'completed' | 'failed' | 'paused' | 'rolled_back' | 'refused';
  resumed: boolean;
  durationMs: number;
  steps: StepResult[];
  /** Row counts of every touched table before the run (as first started) and after. */
  counts: { before: Record<string, number>; after: Record<string, number> };
  error?: BelayError;
}
