// A migration file parsed with the real PostgreSQL parser (libpg-query), statement by statement, with the
// transaction each statement runs in when the whole file is sent as one simple query (as Prisma sends it):
// everything up to an explicit COMMIT is one transaction, what follows is the next one.
import { loadModule, parsePlPgSQLSync, parseSync } from 'libpg-query';
import { SqlText } from './sql-text.ts';
import type { Statement } from './types.ts';

export interface ParsedFile {
  text: SqlText;
  statements: Statement[];
  /** Set when the file does not parse: the parser's message and the byte offset it points at. */
  error?: { message: string; offset: number };
}

interface RawStmt {
  stmt: Record<string, Record<string, unknown>>;
  stmt_location?: number;
  stmt_len?: number;
}

let loaded: Promise<void> | undefined;

export async function parseFile(script: string): Promise<ParsedFile> {
  loaded ??= loadModule();
  await loaded;
  const text = new SqlText(script);
  let raw: RawStmt[];
  try {
    raw = (parseSync(script) as { stmts?: RawStmt[] }).stmts ?? [];
  } catch (err) {
    const pos = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition ?? 0;
    return { text, statements: [], error: { message: (err as Error).message, offset: Buffer.byteLength(script.slice(0, pos)) } };
  }
  const statements: Statement[] = [];
  let txn = 0;
  for (const r of raw) {
    const start = r.stmt_location ?? 0;
    const end = r.stmt_len ? start + r.stmt_len : text.byteLength;
    const kind = Object.keys(r.stmt)[0]!;
    const node = r.stmt[kind]!;
    const first = text.tokens(start, end)[0];
    const at = first?.start ?? start;
    const { line, column } = text.lineCol(at);
    statements.push({
      index: statements.length + 1,
      text: text.slice(at, end),
      start: at,
      end,
      line,
      column,
      kind,
      node,
      txn,
      inner: kind === 'DoStmt' ? doBlockSql(text.slice(at, end)) : [],
    });
    if (kind === 'TransactionStmt' && ['TRANS_STMT_COMMIT', 'TRANS_STMT_ROLLBACK'].includes(String(node.kind))) txn++;
  }
  return { text, statements };
}

/** The static SQL statements of a DO block's PL/pgSQL body (EXECUTE of a computed string is not seen). */
function doBlockSql(sql: string): string[] {
  const out: string[] = [];
  try {
    collect(parsePlPgSQLSync(sql), out);
  } catch {
    // a body in another language, or one PL/pgSQL cannot parse: the DO block stays opaque
  }
  return out;
}

function collect(node: unknown, out: string[]): void {
  if (Array.isArray(node)) {
    for (const n of node) collect(n, out);
    return;
  }
  if (!node || typeof node !== 'object') return;
  const o = node as Record<string, unknown>;
  const exec = o.PLpgSQL_stmt_execsql as { sqlstmt?: { PLpgSQL_expr?: { query?: string } } } | undefined;
  const q = exec?.sqlstmt?.PLpgSQL_expr?.query;
  if (q) out.push(q);
  for (const v of Object.values(o)) collect(v, out);
}

/** The tables a piece of SQL writes or alters (for the locks of DO blocks): best effort, by parsing it. */
export function innerTargets(sql: string): Array<{ schemaname?: string; relname: string; kind: string }> {
  try {
    const stmts = (parseSync(sql) as { stmts?: RawStmt[] }).stmts ?? [];
    return stmts.flatMap((s) => {
      const kind = Object.keys(s.stmt)[0]!;
      const rel = (s.stmt[kind] as { relation?: { schemaname?: string; relname?: string } }).relation;
      return rel?.relname ? [{ schemaname: rel.schemaname, relname: rel.relname, kind }] : [];
    });
  } catch {
    return [];
  }
}
