import { isRetryable, serverFields } from '../errors.ts';

export const DEFAULT_BACKOFF_MS = 50;
export const MAX_BACKOFF_MS = 5_000;

/** Exponential backoff with jitter: 50, 100, 200 … ms, capped. */
export function backoffMs(attempt: number): number {
  const base = Math.min(MAX_BACKOFF_MS, DEFAULT_BACKOFF_MS * 2 ** (attempt - 1));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * Runs fn until it succeeds, retrying only lock timeouts, serialization failures and deadlocks
 * (55P03, 40001, 40P01). fn must leave nothing behind when it throws (it rolls its transaction back).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  opts: { maxRetries: number; onRetry?: (attempt: number, sqlstate: string, waitMs: number) => void },
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!isRetryable(err) || attempt > opts.maxRetries) throw err;
      const wait = backoffMs(attempt);
      opts.onRetry?.(attempt, serverFields(err).sqlstate ?? '', wait);
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
