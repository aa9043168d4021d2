// Statements that cannot run inside a transaction block (CREATE/DROP INDEX CONCURRENTLY, REINDEX
// CONCURRENTLY, VACUUM, …) in a file with other statements: Prisma sends the file as one query string, which
// PostgreSQL runs as one implicit transaction, so the statement fails with 25001.
import type { Statement } from '../types.ts';
import { statementFinding } from '../context.ts';
import type { Finding } from '../types.ts';

export function outsideTransactionOnly(s: Statement): boolean {
  const n = s.node;
  if ((s.kind === 'IndexStmt' || s.kind === 'DropStmt') && n.concurrent) return true;
  if (s.kind === 'ReindexStmt') return JSON.stringify(n.params ?? []).includes('"concurrently"');
  return ['VacuumStmt', 'CreatedbStmt', 'DropdbStmt', 'AlterSystemStmt', 'CreateTableSpaceStmt', 'DropTableSpaceStmt'].includes(s.kind);
}

export function concurrentlyHazards(migration: string, statements: readonly Statement[]): Finding[] {
  if (statements.length < 2) return [];
  return statements.filter(outsideTransactionOnly).map((s) =>
    statementFinding('PRISMA_CONCURRENTLY_IN_TRANSACTION', migration, s, {
      deployFixes: s.kind === 'IndexStmt' || s.kind === 'DropStmt',
      message: `${s.text.split(/\s+/).slice(0, 4).join(' ')} cannot run inside a transaction block, and this file's ${statements.length} statements run as one`,
    }),
  );
}
