// The data every part of the Prisma stage shares: migration files, history rows, statements, findings.
import type { Row } from '../db/connection.ts';
import type { FindingCode } from './predictors/registry.ts';

export type Severity = 'error' | 'warning' | 'info';

/** One folder of the migrations directory, as `prisma migrate deploy` reads it. */
export interface MigrationFile {
  /** The folder name, which is the migration's name in `_prisma_migrations`. */
  name: string;
  /** Path of its migration.sql. */
  file: string;
  /** The script as Prisma reads it (UTF-8 text). */
  script: string;
  /** Hex sha256 of the script's UTF-8 bytes: what Prisma writes to `checksum`. */
  checksum: string;
}

/** One row of `_prisma_migrations`. */
export interface HistoryRow {
  id: string;
  checksum: string;
  finished_at: Date | string | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | string | null;
  started_at: Date | string;
  applied_steps_count: number;
}

export interface MigrationStatus {
  /** `_prisma_migrations` exists in the schema Prisma uses. */
  tableExists: boolean;
  /** Names applied: finished_at set, rolled_back_at NULL. */
  applied: string[];
  /** Folders not applied yet, in the order deploy runs them. */
  pending: MigrationFile[];
  /** Rows that failed (finished_at and rolled_back_at NULL): deploy refuses them (P3009). */
  failed: HistoryRow[];
  /** Applied migrations whose file no longer has the recorded checksum. */
  changed: Array<{ name: string; recorded: string; local: string }>;
  /** Applied migrations with no folder here. */
  missingLocally: string[];
}

/** One statement of a migration file; offsets are byte offsets into the file's UTF-8 text. */
export interface Statement {
  /** 1-based position in the file. */
  index: number;
  /** The statement's text without the trailing semicolon. */
  text: string;
  start: number;
  end: number;
  /** 1-based line and column of its first token. */
  line: number;
  column: number;
  /** Node type name from libpg-query (AlterTableStmt, IndexStmt, …). */
  kind: string;
  /** The node itself (the value under `kind`). */
  node: Record<string, unknown>;
  /** Which transaction of the file runs it (a COMMIT in the file starts the next one). */
  txn: number;
  /** Static SQL inside a DO block's PL/pgSQL body, parsed. */
  inner: string[];
}

export interface Finding {
  code: FindingCode;
  severity: Severity;
  /** The migration folder, or null for findings about the history. */
  migration: string | null;
  /** 1-based statement index, line and column in migration.sql. */
  statement: number | null;
  line: number | null;
  column: number | null;
  /** The statement's first line. */
  sql: string | null;
  table?: string;
  /** Offending rows (or groups, for duplicates: see message); null when not counted. */
  count: number | null;
  /** Up to --sample offending rows. */
  sample: Row[];
  message: string;
  fix: string;
  /** The SQLSTATE the statement would fail with. */
  sqlstate?: string;
  /** belay prisma deploy runs this statement in a form that does not have the problem. */
  deployFixes?: boolean;
}
