// Durations on the command line: 30s, 5m, 24h, 7d (and 250ms). A bare number is refused: units are not guessed.
import { UsageError } from '../errors.ts';

const UNIT_MS: Readonly<Record<string, number>> = Object.freeze({ ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 });

/** Milliseconds of "24h", "5m", "30s", "7d", "1.5h"; UsageError naming the option otherwise. */
export function parseDuration(text: string, option = 'duration'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/i.exec(text);
  const ms = m ? Number(m[1]) * UNIT_MS[m[2]!.toLowerCase()]! : NaN;
  if (!Number.isFinite(ms) || ms <= 0) {
    throw new UsageError(`${option} "${text}" is not a duration`, `Write a number and a unit: 30s, 5m, 24h or 7d (${option} 5m).`);
  }
  return Math.round(ms);
}

/** 300000 -> "5m", for messages and the run's record. */
export function formatDuration(ms: number): string {
  for (const [u, f] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const)
    if (ms >= f && ms % f === 0) return `${ms / f}${u}`;
  return `${ms}ms`;
}
