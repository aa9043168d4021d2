import { trialSeed } from './prng.ts';
// The suite's small contract: a scenario runs its trials and returns one outcome per row of the table.

export interface SuiteOptions {
  /** The suite seed: every trial's seed derives from it (lib/prng.ts trialSeed). */
  seed: number;
  /** Overrides each scenario's trial count. */
  trials?: number;
  /** The CI version: few trials, small databases. */
  short: boolean;
  /** Run only trial seeds in this list (replay), when given. */
  replay?: number[];
  /** Trials run side by side (crash trials). */
  parallel: number;
  log: (line: string) => void;
}

export interface Failure {
  /** Which trial: e.g. "apply #17". */
  trial: string;
  /** Replay with: npm run reliability -- --only <scenario> --replay <seed>. */
  seed: number;
  problems: string[];
}

export interface Outcome {
  scenario: string;
  /** What was tried, one line. */
  tried: string;
  trials: number;
  held: number;
  failures: Failure[];
  /** Measured figures worth quoting (durations, counts, kill moments). */
  figures: string;
}

export interface Scenario {
  name: string;
  run(opts: SuiteOptions): Promise<Outcome[]>;
}

/** Runs fn over the items with at most `parallel` at a time, keeping the results in order. */
export async function pool<T, R>(items: readonly T[], parallel: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
  return out;
}

export function outcome(scenario: string, tried: string, results: Array<Failure | null>, figures: string): Outcome {
  const failures = results.filter((r): r is Failure => r !== null);
  return { scenario, tried, trials: results.length, held: results.length - failures.length, failures, figures };
}

/** The seeds of a scenario's trials: derived from the suite seed, or exactly those being replayed. */
export function trialSeeds(opts: SuiteOptions, scenario: string, n: number): number[] {
  if (opts.replay) return opts.replay;
  return Array.from({ length: n }, (_, i) => trialSeed(opts.seed, scenario, i));
}
