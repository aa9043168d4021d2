// ALTER TYPE … ADD VALUE, then the new value used in the same transaction: PostgreSQL refuses the use
// (55P04, unsafe use of new value) unless the enum itself was created in that transaction.
import { walk } from '../fragments.ts';
import { statementFinding } from '../context.ts';
import type { Finding, Statement } from '../types.ts';

export function enumValueHazards(migration: string, statements: readonly Statement[]): Finding[] {
  const out: Finding[] = [];
  const created = new Map<string, number>();
  const added: Array<{ label: string; type: string; txn: number; at: number }> = [];
  for (const s of statements) {
    const names = ((s.node.typeName as Array<{ String: { sval: string } }>) ?? []).map((x) => x.String.sval).join('.');
    if (s.kind === 'CreateEnumStmt') created.set(names, s.txn);
    if (s.kind === 'AlterEnumStmt' && s.node.newVal && !s.node.oldVal) {
      if (created.get(names) === s.txn) continue;
      added.push({ label: String(s.node.newVal), type: names, txn: s.txn, at: s.index });
      continue;
    }
    const used = added.filter((a) => a.txn === s.txn && a.at < s.index && constants(s).has(a.label));
    for (const u of used) {
      out.push(
        statementFinding('PRISMA_ENUM_VALUE_IN_SAME_TRANSACTION', migration, s, {
          message: `'${u.label}' is added to enum ${u.type} by statement ${u.at} and used here, in the same transaction`,
        }),
      );
    }
  }
  return out;
}

function constants(s: Statement): Set<string> {
  const out = new Set<string>();
  walk(s.node, (kind, node) => {
    const sval = (node as { sval?: { sval?: string } }).sval?.sval;
    if (kind === 'A_Const' && sval !== undefined) out.add(sval);
  });
  return out;
}
