// Every finding `belay prisma check` reports, with a stable code, its severity, the SQLSTATE the statement
// would fail with and the fix. docs/prisma.md lists the same codes with an example each.
import type { Severity } from '../types.ts';

export interface FindingKind {
  severity: Severity;
  /** What the statement would do, one sentence. */
  title: string;
  sqlstate?: string;
  fix: string;
}

export const FINDINGS = Object.freeze({
  PRISMA_DUPLICATE_KEYS: {
    severity: 'error',
    sqlstate: '23505',
    title: 'a new unique index or constraint would find duplicate keys',
    fix: 'Remove or merge the duplicate rows in an earlier migration (or before deploying), or make the index non-unique or partial.',
  },
  PRISMA_NULLS_IN_NOT_NULL: {
    severity: 'error',
    sqlstate: '23502',
    title: 'SET NOT NULL (or a primary key) on a column that holds NULLs',
    fix: 'Fill the NULLs first: an UPDATE in the same migration before the statement, or give the column a default.',
  },
  PRISMA_REQUIRED_COLUMN_ROWS: {
    severity: 'error',
    sqlstate: '23502',
    title: 'a NOT NULL column without a default is added to a table that has rows',
    fix: 'Add the column nullable, fill it with an UPDATE, then SET NOT NULL; or give it a DEFAULT (@default in the Prisma schema).',
  },
  PRISMA_FK_ORPHANS: {
    severity: 'error',
    sqlstate: '23503',
    title: 'a foreign key would find rows whose parent does not exist',
    fix: 'Delete the orphans or set their column to NULL in an earlier statement, or add the constraint NOT VALID and clean up before VALIDATE.',
  },
  PRISMA_ENUM_VALUES: {
    severity: 'error',
    sqlstate: '22P02',
    title: 'rows hold values that the rebuilt enum no longer has',
    fix: 'Map the removed values to kept ones with an UPDATE before the enum is rebuilt (in the same migration, before its BEGIN).',
  },
  PRISMA_CAST_FAILS: {
    severity: 'error',
    sqlstate: '22000',
    title: 'ALTER COLUMN TYPE: rows whose value cannot be converted to the new type',
    fix: 'Fix or convert those values with an UPDATE before the type change, or give the change a USING expression that handles them.',
  },
  PRISMA_CHECK_VIOLATIONS: {
    severity: 'error',
    sqlstate: '23514',
    title: 'a new CHECK constraint would find rows that violate it',
    fix: 'Fix the rows in an earlier statement, or add the constraint NOT VALID and validate it once they are fixed.',
  },
  PRISMA_STATEMENT_FAILS: {
    severity: 'error',
    title: 'a data statement (UPDATE, INSERT, DELETE) fails on the live rows',
    fix: 'Read the error: the expressions of the statement fail for some rows. Guard them (CASE, NULLIF, a WHERE) or fix the data first.',
  },
  PRISMA_MISSING_TABLE: {
    severity: 'error',
    sqlstate: '42P01',
    title: 'the statement names a table that neither exists nor is created by an earlier pending statement',
    fix: 'The database has drifted from the migration history: compare it with `prisma migrate diff`, or create the table in an earlier migration.',
  },
  PRISMA_ALREADY_EXISTS: {
    severity: 'error',
    sqlstate: '42P07',
    title: 'the statement creates an object whose name is already taken',
    fix: 'The database has drifted from the migration history: drop the stray object, or mark this migration applied with `prisma migrate resolve --applied` if it already ran.',
  },
  PRISMA_INVALID_INDEX: {
    severity: 'error',
    sqlstate: '42P07',
    title: 'an INVALID index of that name is left over from a failed CREATE INDEX CONCURRENTLY',
    fix: 'Drop the leftover first: DROP INDEX CONCURRENTLY "<name>"; then deploy again.',
  },
  PRISMA_CONCURRENTLY_IN_TRANSACTION: {
    severity: 'error',
    sqlstate: '25001',
    title: 'CREATE/DROP INDEX CONCURRENTLY (or another statement that cannot run in a transaction) in a file with other statements',
    fix: 'Put the statement alone in its own migration, or deploy with `belay prisma deploy`, which runs it outside the transaction.',
  },
  PRISMA_ENUM_VALUE_IN_SAME_TRANSACTION: {
    severity: 'error',
    sqlstate: '55P04',
    title: 'a value added with ALTER TYPE … ADD VALUE is used in the same transaction',
    fix: 'Move ALTER TYPE … ADD VALUE to its own migration before the one that uses the value.',
  },
  PRISMA_AFTER_COMMIT: {
    severity: 'warning',
    title: 'statements after an explicit COMMIT run in a second transaction: if one fails, the file is left half applied',
    fix: 'Split the file at the COMMIT into two migrations, or deploy with `belay prisma deploy`, which runs the whole file in one transaction.',
  },
  PRISMA_DROP_COLUMN_DATA: {
    severity: 'warning',
    title: 'a dropped column still holds data',
    fix: 'Copy the values elsewhere first if they are needed; belay cannot bring them back after the migration.',
  },
  PRISMA_DROP_TABLE_DATA: {
    severity: 'warning',
    title: 'a dropped table still holds rows',
    fix: 'Back the table up first (belay backups) if the rows are needed.',
  },
  PRISMA_LONG_LOCK: {
    severity: 'warning',
    title: 'a lock that blocks writes (or reads) would be held long',
    fix: 'Deploy with `belay prisma deploy`, which builds indexes CONCURRENTLY and validates constraints without blocking writes; or split the migration.',
  },
  PRISMA_INDEX_NOT_CONCURRENT: {
    severity: 'warning',
    title: 'an index is built on an existing table without CONCURRENTLY: writes to the table wait for the whole build',
    fix: 'Deploy with `belay prisma deploy` (it builds the index CONCURRENTLY), or put CREATE INDEX CONCURRENTLY alone in its own migration.',
  },
  PRISMA_BLOCKED_NOW: {
    severity: 'warning',
    title: 'sessions hold locks right now that the migration would wait for',
    fix: 'Wait for those transactions to end (or end them); belay prisma deploy waits at most --lock-timeout per attempt and retries.',
  },
  PRISMA_FAILED_MIGRATION: {
    severity: 'error',
    title: 'a migration is recorded as failed: prisma migrate deploy refuses to run (P3009)',
    fix: 'Find out what the failed migration left, fix it, then `prisma migrate resolve --rolled-back <name>` (or --applied).',
  },
  PRISMA_CHANGED_MIGRATION: {
    severity: 'warning',
    title: 'an applied migration file was edited after it ran',
    fix: 'Restore the file as it was applied; put new changes in a new migration.',
  },
  PRISMA_MISSING_MIGRATION: {
    severity: 'warning',
    title: 'a migration recorded as applied has no folder here',
    fix: 'Check that the migrations directory is the right one and complete (git pull).',
  },
  PRISMA_BASELINE_REQUIRED: {
    severity: 'error',
    title: 'the database has tables but no `_prisma_migrations`: prisma migrate deploy refuses (P3005)',
    fix: 'Baseline it: `prisma migrate resolve --applied <name>` for the migrations it already contains.',
  },
  PRISMA_SYNTAX_ERROR: { severity: 'error', sqlstate: '42601', title: 'the migration does not parse', fix: 'Correct the SQL at the position shown.' },
  PRISMA_NOT_PREDICTED: {
    severity: 'info',
    title: 'belay could not predict this statement from the data',
    fix: 'Review it by hand; the message says why it could not be predicted.',
  },
} satisfies Record<string, FindingKind>);

export type FindingCode = keyof typeof FINDINGS;
