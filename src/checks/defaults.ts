// The checks' defaults, in a module of their own: the command line shows them in its help without loading the checks.

/**
 * Each check is one query on one core; the flagship's two heavy ones (classification, unique-after)
 * take seconds each at 1M rows, so two sessions about halve the wall time on a server with a core to spare.
 */
export const DEFAULT_CHECK_JOBS = 2;
