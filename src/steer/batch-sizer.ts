// The batch size while a step runs. The target duration is a ceiling, not an average: a batch holds its
// row locks for its whole duration, so what users of the table feel is the longest batch, not the mean.
// Aiming every batch at the target itself puts half of them above it and every noisy one far above it
// (measured on the flagship at 1M rows: mean 195 ms, longest 490 ms at a 200 ms target). So the sizer
// aims below the target by a headroom learnt from the run itself: how much costlier per row a batch
// turned out than the sizer predicted (the largest such surprise of the last two minutes). A steady workload
// earns a small headroom and large batches; a noisy one (checkpoints, full-page writes, a busy
// machine) gets smaller batches, so that even its surprises stay under the target.
import { INITIAL_HEADROOM, MAX_BATCH_SIZE, MIN_BATCH_SIZE } from '../spec/define.ts';

export { INITIAL_HEADROOM };

/**
 * Bounds of the learnt headroom. At least 1.4: a steady stretch says nothing about the next checkpoint
 * or competing query, and one-off batches 1.5–1.8× costlier than the batch before were seen on the
 * flagship after dozens of steady ones; with 1.4 a 1.4× surprise still ends under the target and a
 * 1.75× one under 1.25 × target. At most 3: never aim below a third of the target.
 */
export const MIN_HEADROOM = 1.4;
export const MAX_HEADROOM = 3;
/**
 * The headroom is the largest surprise (actual ÷ predicted cost per row) of the batches of the last two
 * minutes: the largest, not a percentile, because the longest batch is what counts; by time, not by
 * count, because what causes surprises recurs on a clock (a busy disk stalling WAL writes for 100–150 ms
 * every 30–90 s on the test machine, checkpoints every few minutes); recent, because a storm passes and
 * so should its caution. Smaller batches cost little: a COMMIT, a checkpoint row and the throttle
 * checks, about 10 ms each on the flagship.
 */
export const HEADROOM_WINDOW_MS = 120_000;
/** Surprises needed before the learnt headroom may go below INITIAL_HEADROOM. */
export const CALIBRATED_AFTER = 10;
/** Weight of the newest batch in the smoothed cost per row. */
export const COST_SMOOTHING = 0.3;
/** At most this growth from one batch to the next: a cheap batch is often luck. */
export const MAX_GROWTH = 1.5;

/**
 * Without a plan nothing is known of the cost per row, and a spec's batch size (10,000 by default) can take
 * seconds on a slow projection: an adaptive run starts at this many rows (or the declared size, if
 * smaller) and grows ×MAX_GROWTH a batch. The small first batches cost a few ms each.
 */
export const UNMEASURED_START_SIZE = 100;

/** The first batch of an adaptive run without a plan: the smallest of the declared sizes and UNMEASURED_START_SIZE. */
export function unmeasuredStartSize(...declared: Array<number | undefined>): number {
  return Math.min(UNMEASURED_START_SIZE, ...declared.filter((n): n is number => n !== undefined));
}

/** What a committed batch tells the sizer. */
export interface BatchSample {
  durationMs: number;
  rowsInRange: number;
}

/** One per step: learns the cost per row of that step's batches and picks the next size. */
export class BatchSizer {
  /** Smoothed cost per row (ms), null before the first full batch. */
  private costMs: number | null = null;
  /** The cost per row the last chosen size was predicted from. */
  private predicted: number | null = null;
  /** actual ÷ predicted cost per row and when (clock ms), newest last, the last HEADROOM_WINDOW_MS. */
  private readonly surprises: Array<{ at: number; ratio: number }> = [];

  /** clock: ms, monotonic (a simulation passes its own). */
  /** targetMs: the batch duration aimed under; `belay tune` may change it while the run goes on. */
  constructor(
    public targetMs: number,
    private readonly clock: () => number = () => performance.now(),
  ) {}

  /** How far below the target the sizer aims: target ÷ headroom is the duration a batch is sized for. */
  get headroom(): number {
    if (this.surprises.length === 0) return INITIAL_HEADROOM;
    const largest = Math.max(...this.surprises.map((x) => x.ratio));
    const learnt = this.surprises.length < CALIBRATED_AFTER ? Math.max(largest, INITIAL_HEADROOM) : largest;
    return Math.min(MAX_HEADROOM, Math.max(MIN_HEADROOM, learnt));
  }

  /** The duration the next batch is sized for (ms). */
  get setPointMs(): number {
    return this.targetMs / this.headroom;
  }

  /** The size of the next batch, after a batch of `current` rows that took `last`. */
  next(current: number, last: BatchSample): number {
    // a short batch (the end of the range) or an unmeasured one says little about the next
    if (last.rowsInRange < current || last.rowsInRange <= 0 || last.durationMs <= 0) return current;
    const cost = last.durationMs / last.rowsInRange;
    // the first batch's size came from elsewhere (plan, spec, user), not from a prediction of ours
    if (this.predicted !== null) {
      const now = this.clock();
      this.surprises.push({ at: now, ratio: cost / this.predicted });
      while (this.surprises.length > CALIBRATED_AFTER && this.surprises[0]!.at < now - HEADROOM_WINDOW_MS) this.surprises.shift();
    }
    this.costMs = this.costMs === null ? cost : this.costMs + COST_SMOOTHING * (cost - this.costMs);
    // costly batches come in runs (a checkpoint's full-page writes, a competing query): after one,
    // assume the next costs as much; a cheap one only lowers the smoothed cost a little
    this.predicted = Math.max(this.costMs, cost);
    const next = Math.min(this.setPointMs / this.predicted, current * MAX_GROWTH);
    return Math.round(Math.min(MAX_BATCH_SIZE, Math.max(MIN_BATCH_SIZE, next)));
  }
}
