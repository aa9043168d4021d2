// The session settings of a batch's transaction, in one place (the statements on the decision and on
// belay's tables are in state/: decision-sql.ts and runs.ts).

/** lock_timeout and statement_timeout for this transaction only. */
export const SET_TIMEOUTS_SQL = `SELECT set_config('lock_timeout', $1, true), set_config('statement_timeout', $2, true)`;

/** Before each later statement of a batch under a ceiling: what is left of it. */
export const SET_STATEMENT_TIMEOUT_SQL = `SELECT set_config('statement_timeout', $1, true)`;
