// A few error classes with stable codes; each code's exit code comes from the registry (error-codes.ts).
// Every error keeps what the server said (SQLSTATE, detail, constraint, table) and the original cause.
import { EXIT, type ErrorCode, type ExitCode, exitCodeOf } from './error-codes.ts';

export { EXIT, type ErrorCode, type ExitCode };

export interface ServerFields {
  sqlstate?: string;
  detail?: string;
  hint?: string;
  constraint?: string;
  table?: string;
  column?: string;
  position?: number;
}

export class BelayError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly details: Record<string, unknown>;
  /** What the user can do about it, one sentence. */
  readonly fix?: string;
  constructor(code: ErrorCode, message: string, opts: { details?: Record<string, unknown>; fix?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = exitCodeOf(code);
    this.details = opts.details ?? {};
    this.fix = opts.fix;
  }
  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, fix: this.fix, details: this.details };
  }
}

/** Bad command-line usage. */
export class UsageError extends BelayError {
  constructor(message: string, fix?: string) {
    super('BELAY_USAGE', message, { fix });
  }
}

/** A migration spec that cannot be loaded or does not validate. Nothing was touched. */
export class SpecError extends BelayError {
  constructor(message: string, opts: { file?: string; field?: string; expected?: string; fix?: string; cause?: unknown } = {}) {
    super('BELAY_SPEC', message, {
      details: { file: opts.file, field: opts.field, expected: opts.expected },
      fix: opts.fix ?? 'Correct the migration file and run the command again.',
      cause: opts.cause,
    });
  }
}

/** The database cannot be reached or the URL is wrong. */
export class ConnectionError extends BelayError {
  constructor(message: string, opts: { cause?: unknown; fix?: string } = {}) {
    super('BELAY_CONNECTION', message, { cause: opts.cause, fix: opts.fix });
  }
}

/** Another run of the same migration holds its advisory lock. */
export class LockedError extends BelayError {
  constructor(migrationId: string) {
    super('BELAY_LOCKED', `another belay run of migration "${migrationId}" is in progress`, {
      details: { migrationId },
      fix: 'Wait for it to finish (belay status), or pass --wait to queue behind it.',
    });
  }
}

/** Pre-flight checks with severity error found offending rows. */
export class ChecksFailedError extends BelayError {
  constructor(message: string, details: Record<string, unknown>) {
    super('BELAY_CHECKS', message, {
      details,
      fix: 'Fix the offending rows or the migration, then run belay check again.',
    });
  }
}

/** An in-batch or post-run verification returned rows. */
export class VerificationError extends BelayError {
  constructor(message: string, details: Record<string, unknown>) {
    super('BELAY_VERIFY', message, { details });
  }
}

/** belay's own state forbids the operation (changed spec on resume, unknown run, already applied). */
export class StateError extends BelayError {
  constructor(code: ErrorCode, message: string, opts: { details?: Record<string, unknown>; fix?: string } = {}) {
    super(code, message, opts);
  }
}

/** A run stopped by an abort trigger (or by a signal: BELAY_INTERRUPTED); details.decision says pause or rollback. */
export class AbortedError extends BelayError {
  constructor(message: string, details: Record<string, unknown>, opts: { code?: 'BELAY_ABORTED' | 'BELAY_INTERRUPTED'; fix?: string } = {}) {
    super(opts.code ?? 'BELAY_ABORTED', message, { details, fix: opts.fix });
  }
}

/** The statement was cancelled (pg_cancel_backend, statement_timeout): SQLSTATE 57014. */
export function isCancelled(err: unknown): boolean {
  return serverFields(err).sqlstate === '57014';
}

/** SQL that failed on the server, with the server's fields kept. */
export class DbError extends BelayError {
  readonly server: ServerFields;
  constructor(
    message: string,
    server: ServerFields,
    opts: { context?: string; sql?: string; cause?: unknown; code?: ErrorCode; fix?: string; details?: Record<string, unknown> } = {},
  ) {
    super(opts.code ?? 'BELAY_DB', opts.context ? `${opts.context}: ${message}` : message, {
      details: { ...server, context: opts.context, sql: opts.sql, ...opts.details },
      cause: opts.cause,
      fix: opts.fix,
    });
    this.server = server;
  }
}

/** Pulls the server's fields out of an error thrown by pg or PGlite. */
export function serverFields(err: unknown): ServerFields {
  // a DbError keeps the server's fields; its own code is BELAY_DB, not the SQLSTATE
  if (err instanceof DbError) return err.server;
  if (!err || typeof err !== 'object') return {};
  const e = err as Record<string, unknown>;
  const str = (v: unknown) => (typeof v === 'string' && v.length > 0 ? v : undefined);
  const pos = e.position === undefined ? undefined : Number(e.position);
  return {
    sqlstate: str(e.code),
    detail: str(e.detail),
    hint: str(e.hint),
    constraint: str(e.constraint),
    table: str(e.table),
    column: str(e.column),
    position: Number.isFinite(pos) ? pos : undefined,
  };
}

export function isRetryable(err: unknown): boolean {
  const state = serverFields(err).sqlstate;
  // lock_not_available, serialization_failure, deadlock_detected
  return state === '55P03' || state === '40001' || state === '40P01';
}
