// belay prisma's defaults, in a module of their own: the command line shows them in its help without loading the checks.

/** Sample rows per finding. */
export const DEFAULT_SAMPLE = 20;
export const DEFAULT_LOCK_TIMEOUT_MS = 5000;
export const DEFAULT_RETRIES = 5;
export const DEFAULT_LOCK_WAIT_MS = 10_000;
/** belay prisma deploy: an UPDATE that opens a file runs as belay batched steps from this many rows of its table. */
export const DEFAULT_BATCH_OVER = 100_000;
