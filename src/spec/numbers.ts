// Every number belay takes from a user, one zod schema each: the command line's options and the plan
// file's fields are checked by the same schema, so `--batch-size 0` and `"batchSize": 0` fail alike.
import { z } from 'zod';
import { UsageError } from '../errors.ts';
import { MAX_BATCH_SIZE } from './define.ts';

/** The longest batch target accepted: a batch holds its row locks this long (the default statement timeout). */
export const MAX_TARGET_BATCH_MS = 60_000;
/** Calibration batches per step, at most (each one is a rolled-back batch on the live table). */
export const MAX_SAMPLES = 100;

const NOT_A_NUMBER = 'must be a whole number written in decimal digits';

/** A whole number in [min, max], with messages that read the same after a flag name or a file field. */
export function wholeNumber(min: number, max = Number.MAX_SAFE_INTEGER) {
  return z
    .number({ error: NOT_A_NUMBER })
    .int({ error: NOT_A_NUMBER })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });
}

/** The numbers of the command line and of plan files. */
export const NUMBERS = Object.freeze({
  /** Rows per batch; a fixed size (--batch-size, a plan) has the adaptive size's ceiling. */
  batchSize: wholeNumber(1, MAX_BATCH_SIZE),
  /** The duration a batch aims under, in ms. */
  targetBatchMs: wholeNumber(1, MAX_TARGET_BATCH_MS),
  /** A run id, a backup id: bigserial values. */
  id: wholeNumber(1),
  positive: wholeNumber(1),
  count: wholeNumber(0),
  /** Catch-up rounds after the last batch (as options.catchUpRounds). */
  catchUpRounds: wholeNumber(0, 100),
  samples: wholeNumber(1, MAX_SAMPLES),
  /** Key-range workers of apply: each is one more connection, and one more batch at a time on the table. */
  workers: wholeNumber(1, 16),
  port: wholeNumber(0, 65_535),
  /** A percentage (--max-drift): decimals allowed. */
  percent: z
    .number({ error: 'must be a number written in decimal digits' })
    .min(0, { error: 'must be at least 0' })
    .max(1000, { error: 'must be at most 1000' }),
});

export type NumberSchema = z.ZodType<number>;

/**
 * Text to number, strictly: decimal digits only (no sign, no spaces, no exponent, no hex, no "_"), so
 * "1e12", "0x10", " 7 " and "" are refused instead of read as numbers; a fraction only where allowed.
 */
export function readNumber(text: string, fraction = false): number | undefined {
  return (fraction ? /^\d+(\.\d+)?$/ : /^\d+$/).test(text) ? Number(text) : undefined;
}

/** The first problem of a value against its schema, as "must be …", or undefined when it fits. */
export function numberProblem(schema: NumberSchema, value: unknown): string | undefined {
  const r = schema.safeParse(value);
  return r.success ? undefined : (r.error.issues[0]?.message ?? NOT_A_NUMBER);
}

/** A command-line number: `--batch-size "1e12" must be a whole number written in decimal digits`. */
export function parseNumber(flag: string, schema: NumberSchema, text: string, fix?: string): number {
  const fraction = schema === NUMBERS.percent;
  const n = readNumber(text, fraction);
  const problem = n === undefined ? (fraction ? 'must be a number written in decimal digits' : NOT_A_NUMBER) : numberProblem(schema, n);
  if (problem) throw new UsageError(`${flag} "${text}" ${problem}`, fix ?? `Write ${flag} followed by digits only, e.g. ${flag} ${example(schema)}.`);
  return n!;
}

/** A library option checked like its flag (safeApply({ batchSize: 0 }) fails as --batch-size 0 does). */
export function checkNumber(name: string, schema: NumberSchema, value: number | undefined): void {
  if (value === undefined) return;
  const problem = numberProblem(schema, value);
  if (problem) throw new UsageError(`${name} ${String(value)} ${problem}`, `Pass ${name} as a whole number in its range, e.g. ${example(schema)}.`);
}

function example(schema: NumberSchema): string {
  if (schema === NUMBERS.batchSize) return '5000';
  if (schema === NUMBERS.targetBatchMs) return '200';
  return '1';
}
