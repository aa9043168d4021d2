// An explicit COMMIT inside a file (Prisma writes BEGIN … COMMIT around an enum rebuild): what follows runs
// in a second transaction, so a failure there leaves the first part applied and the migration failed.
import { statementFinding } from '../context.ts';
import type { Finding, Statement } from '../types.ts';

export function afterCommitHazards(migration: string, statements: readonly Statement[]): Finding[] {
  const after = statements.find((s) => s.txn > 0 && s.kind !== 'TransactionStmt');
  if (!after) return [];
  const commit = statements.filter((s) => s.kind === 'TransactionStmt' && s.index < after.index).pop();
  return [
    statementFinding('PRISMA_AFTER_COMMIT', migration, after, {
      deployFixes: true,
      message: `statement ${after.index} and the ${statements.filter((s) => s.index >= after.index && s.kind !== 'TransactionStmt').length - 1} after it run after the COMMIT of statement ${commit?.index}: a failure from here on leaves the statements before it applied`,
    }),
  ];
}
