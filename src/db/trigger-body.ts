// What a trigger's function does, read from its source with the real PL/pgSQL parser (libpg-query):
// which tables its static SQL writes, which columns of NEW it assigns (a BEFORE trigger changing the row
// a step writes), which non-built-in functions it calls and whether it runs dynamic SQL. What cannot be
// known before the trigger runs is said so, never guessed.
import { parse, parsePlPgSQL, scan } from 'libpg-query';

export interface TriggerBody {
  /** Tables the body's static SQL inserts into, updates, deletes from, merges into, truncates or copies into, as written ("audit_log", "s.log"). */
  writesTables: string[];
  /** Columns of NEW the body assigns; "*" when it assigns NEW as a whole. */
  setsNew: string[];
  /** Functions the body calls that are not built in (schema-qualified when written so): they may write anything. */
  calls: string[];
  /** The body runs dynamic SQL (EXECUTE): what it writes is known only when it runs. */
  dynamicSql: boolean;
  /** Why the body could not be read (a language other than PL/pgSQL, a parse error), or null. */
  unreadable: string | null;
}

/** C functions of pg_catalog used as triggers, by name: what they are documented to do. */
const KNOWN_BUILTINS: Readonly<Record<string, (args: readonly string[]) => Pick<TriggerBody, 'setsNew'>>> = {
  suppress_redundant_updates_trigger: () => ({ setsNew: [] }),
  tsvector_update_trigger: (args) => ({ setsNew: args.slice(0, 1) }),
  tsvector_update_trigger_column: (args) => ({ setsNew: args.slice(0, 1) }),
};

type Node = Record<string, unknown>;

/**
 * Reads a trigger function. source: pg_get_functiondef() of a PL/pgSQL function (null for other
 * languages). isBuiltin: which of the called names are functions of pg_catalog (resolved by the caller
 * in the database, since a body may call any function).
 */
export async function readTriggerBody(
  fn: { schema: string; name: string; language: string; source: string | null; args: readonly string[] },
  isBuiltin: (names: string[]) => Promise<Set<string>>,
): Promise<TriggerBody> {
  const empty: TriggerBody = { writesTables: [], setsNew: [], calls: [], dynamicSql: false, unreadable: null };
  if (fn.language !== 'plpgsql' || fn.source === null) {
    const known = fn.schema === 'pg_catalog' ? KNOWN_BUILTINS[fn.name] : undefined;
    return known
      ? { ...empty, ...known(fn.args) }
      : { ...empty, unreadable: `function ${fn.schema}.${fn.name} is written in ${fn.language}, which belay cannot read` };
  }
  let func: Node;
  try {
    const tree = (await parsePlPgSQL(fn.source)) as { plpgsql_funcs?: Array<{ PLpgSQL_function?: Node }> };
    func = tree.plpgsql_funcs?.[0]?.PLpgSQL_function ?? {};
  } catch (err) {
    return { ...empty, unreadable: `the body of ${fn.schema}.${fn.name} does not parse: ${(err as Error).message}` };
  }
  const datums = (func.datums as Node[] | undefined) ?? [];
  // protobuf leaves out zeros: NEW is datum 0 unless new_varno says otherwise
  const newNo = Number(func.new_varno ?? 0);
  const setsNew = new Set<string>();
  const target = (varno: number) => {
    const d = datums[varno];
    const field = d?.PLpgSQL_recfield as Node | undefined;
    if (varno === newNo) setsNew.add('*');
    else if (field && Number(field.recparentno ?? 0) === newNo) setsNew.add(String(field.fieldname));
  };
  const exprs: Array<{ query: string; mode: number }> = [];
  let dynamicSql = false;
  walk(func.action, (key, value) => {
    if (key === 'PLpgSQL_stmt_dynexecute' || key === 'PLpgSQL_stmt_dynfors' || (key === 'PLpgSQL_stmt_open' && (value as Node).dynquery)) dynamicSql = true;
    if (key === 'PLpgSQL_stmt_assign') target(Number((value as Node).varno ?? 0));
    if (key === 'PLpgSQL_row') for (const f of ((value as Node).fields as Node[] | undefined) ?? []) target(Number(f.varno ?? 0));
    if (key === 'PLpgSQL_expr') exprs.push({ query: String((value as Node).query ?? ''), mode: Number((value as Node).parseMode ?? 0) });
  });
  const writes = new Set<string>();
  const calls = new Map<string, string>();
  for (const e of exprs) {
    let sql: string | undefined;
    try {
      sql = e.mode === 0 ? e.query : e.mode === 2 ? `SELECT ${e.query}` : `SELECT ${await assignedValue(e.query)}`;
      walk(await parse(sql), (key, value) => {
        const v = value as Node;
        if (key === 'InsertStmt' || key === 'UpdateStmt' || key === 'DeleteStmt' || key === 'MergeStmt') writes.add(relName(v.relation as Node));
        if (key === 'CopyStmt' && v.is_from) writes.add(relName(v.relation as Node));
        if (key === 'TruncateStmt') for (const r of (v.relations as Node[] | undefined) ?? []) writes.add(relName(r.RangeVar as Node));
        if (key === 'FuncCall') {
          const parts = ((v.funcname as Node[] | undefined) ?? []).map((p) => String((p.String as Node | undefined)?.sval ?? ''));
          calls.set(parts.join('.'), parts[parts.length - 1]!);
        }
      });
    } catch (err) {
      return { ...empty, unreadable: `a statement of ${fn.schema}.${fn.name} does not parse (${e.query}): ${(err as Error).message}` };
    }
  }
  // unqualified or pg_catalog-qualified names that resolve to a built-in are no risk of their own
  const candidates = [...calls].filter(([full]) => !full.includes('.') || full.startsWith('pg_catalog.')).map(([, name]) => name);
  const builtin = candidates.length ? await isBuiltin(candidates) : new Set<string>();
  const userCalls = [...calls].filter(([full, name]) => !((!full.includes('.') || full.startsWith('pg_catalog.')) && builtin.has(name))).map(([full]) => full);
  return { writesTables: [...writes].sort(), setsNew: [...setsNew].sort(), calls: userCalls.sort(), dynamicSql, unreadable: null };
}

/** The value side of a PL/pgSQL assignment (`target := value` or `target = value`), found by the SQL scanner. */
async function assignedValue(query: string): Promise<string> {
  const { tokens } = (await scan(query)) as { tokens: Array<{ text: string; start: number; end: number }> };
  let depth = 0;
  for (const t of tokens) {
    if (t.text === '(' || t.text === '[') depth++;
    else if (t.text === ')' || t.text === ']') depth--;
    else if (depth === 0 && (t.text === ':=' || t.text === '=')) return query.slice(t.end);
  }
  return query;
}

function relName(r: Node | undefined): string {
  if (!r) return '?';
  return r.schemaname ? `${String(r.schemaname)}.${String(r.relname)}` : String(r.relname);
}

function walk(node: unknown, visit: (key: string, value: unknown) => void): void {
  if (Array.isArray(node)) {
    for (const x of node) walk(x, visit);
  } else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      visit(k, v);
      walk(v, visit);
    }
  }
}
