// The run contract: all a stage sees of a run. Stages import this (and db/, spec/, state/), never one
// another; only run/pipeline.ts knows their order.
import type { Db } from '../db/connection.ts';
import type { BelayError } from '../errors.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import type { StepTarget } from '../spec/resolve.ts';
import type { EventSink } from '../state/events.ts';

/** One run of one migration, as every stage gets it. */
export interface RunContext {
  db: Db;
  /** The run's row in belay.runs; the same across a resume. */
  runId: number;
  migration: LoadedMigration;
  /** True when this process continues a run that stopped part-way. */
  resumed: boolean;
  /** Where the stage's typed events go (progress, logs, reports); never throws. */
  emit: EventSink;
}

/** A stage: work before the first write, a say in every batch, work after the last (all optional). */
export interface Stage {
  readonly name: string;
  /** Before the first write, in pipeline order; throwing stops the run before anything is written. */
  before?(ctx: RunContext): Promise<void>;
  batches?: BatchController;
  /** After the last step committed, in reverse pipeline order (a stack unwinding); throwing ends the run failed. */
  after?(ctx: RunContext): Promise<void>;
}

/** After a batch: go on, stop resumable (pause), or undo every committed batch (rollback). */
export type BatchDecision = 'continue' | 'pause' | 'rollback';

/** An in-batch check: SQL that may read `written` (the batch's rows after the write) and returns no rows. */
export interface Guard {
  name: string;
  sql: string;
}

/** Hooks around every batch; each member is optional. */
export interface BatchController {
  /** Awaited before each batch, outside its transaction (a throttle waits here). */
  beforeBatch?(ctx: RunContext, step: BatchedStep): Promise<void>;
  /** Extra in-batch checks, run after the write like the step's own verify. */
  guards?(ctx: RunContext, step: BatchedStep, target: StepTarget): readonly Guard[];
  /** The next batch's size, from the last one's. */
  nextBatchSize?(current: number, last: BatchRecord): number;
  /** The longest a batch may hold its locks (ms, server only): past it the batch is rolled back and split. */
  batchCeilingMs?: number;
  /** After each committed batch. */
  afterBatch?(ctx: RunContext, batch: BatchRecord): Promise<BatchDecision>;
  /** When the run stops on an error: may replace it (an AbortedError with details.decision pauses or undoes). */
  onError?(ctx: RunContext, err: BelayError): Promise<BelayError | undefined>;
}

/** One committed batch; lo and hi: its key range of decided rows (round `round`), inclusive, as text. */
export interface BatchRecord {
  runId: number;
  stepNo: number;
  step: string;
  batchNo: number;
  round: number;
  lo: string;
  hi: string;
  /** Decided rows in the range; written (rowsChanged) or skipped because someone changed them since. */
  rowsInRange: number;
  rowsChanged: number;
  rowsSkipped: number;
  /** The batch transaction's id: the row version it wrote (xid8 as text). */
  xid: string;
  /** BEGIN to the end of the write and its checks: what the batch size scales. */
  durationMs: number;
  attempts: number;
  batchSize: number;
}

export interface StepResult {
  name: string;
  kind: 'batched' | 'sql';
  status: string;
  /** Rows decided (batched), all rounds. */
  rowsTotal: number | null;
  rowsDone: number;
  rowsChanged: number;
  /** Decided rows not written: changed by someone since the decision, or rejected by an in-batch check. */
  rowsSkipped: number;
  batches: number;
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
