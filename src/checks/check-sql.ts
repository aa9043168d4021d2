// All SQL of the pre-flight stage, in one place. Identifiers go through ident()/qualified().
// Offending-row queries are plain SELECTs; runChecks wraps each in FINDING_SQL inside a READ ONLY
// transaction that is rolled back, so a check can never change the database.
import { hasRow, type KeyShape, keyOrder, keyValue, noRow, sameKey } from '../db/key-sql.ts';
import { ident, literal } from '../db/sql.ts';

/** One snapshot for every check, and the server refuses any write. Always ended with ROLLBACK. */
export const READ_ONLY_BEGIN_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY';
/** When plain-SQL steps run first (rolled back with the checks): read-only is set once they ran. */
export const READ_WRITE_BEGIN_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ';

/** Text before the offending-rows query in findingSql(): an error position inside it is shifted by its length. */
export const FINDING_PREFIX = 'WITH f AS (\n';

/** Count and a bounded sample of a check's offending rows, in one statement (one pass over them). */
export function findingSql(offending: string, limit: number): string {
  return `${FINDING_PREFIX}${offending}
)
SELECT (SELECT count(*) FROM f)::int AS n,
       (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Math.max(0, Math.floor(limit))}) s) AS sample`;
}

/** The whole key range of a table, as text (passed to a projection as $1 and $2, like a batch's bounds). */
export function keyRangeSql(table: string, key: KeyShape): string {
  // ORDER BY … LIMIT 1, not min()/max(): PostgreSQL 15 has no min(uuid); the key's index answers either way
  const k = keyValue(key, '');
  return `SELECT (SELECT ${k} FROM ${table} ORDER BY ${keyOrder(key, '')} LIMIT 1)::text AS lo, (SELECT ${k} FROM ${table} ORDER BY ${keyOrder(key, '', true)} LIMIT 1)::text AS hi`;
}

/** Rows of child.column whose value is missing from parent.column (NULL references nothing). */
export function orphansSql(child: string, column: string, parent: string, parentColumn: string): string {
  return `SELECT c.* FROM ${child} c
 WHERE c.${ident(column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${parent} p WHERE p.${ident(parentColumn)} = c.${ident(column)})`;
}

/** Text before the projection in projected queries: error positions inside the projection are shifted by it. */
export const PROJECTION_PREFIX = 'WITH p AS (\n';

/** One key term of a unique index, as the unique-after prediction compares it. */
export interface UniqueTerm {
  /** Its name in a finding's rows: the column, or the expression's text. */
  name: string;
  /** SQL over the table's unqualified columns: the quoted column or the expression, with the index's own COLLATE. */
  sql: string;
}

export interface UniqueAfterShape extends KeyShape {
  /** Quoted, qualified table. */
  table: string;
  /** Columns the step writes (their new values come from p). */
  writes: readonly string[];
  /** The index's key terms, in order: columns or expressions. */
  terms: readonly UniqueTerm[];
  /** Partial-index predicate over unqualified column names, or null. */
  predicate: string | null;
  nullsNotDistinct: boolean;
  /** Every column the index reads (keys, expressions, predicate). */
  reads: readonly string[];
  /** Valid, ready and not deferrable: the server refuses a duplicate at the write itself (23505). */
  enforced: boolean;
}

/** Index rows: a NULL term keeps a row out of a plain unique index; a partial index holds the rows of its predicate. */
function indexedWhere(s: UniqueAfterShape): string {
  const conds = [...(s.nullsNotDistinct ? [] : s.terms.map((t) => `(${t.sql}) IS NOT NULL`)), ...(s.predicate ? [`(${s.predicate})`] : [])];
  return conds.length ? conds.join(' AND ') : 'true';
}

/** The key and every term's value (belay_0, belay_1, …) of the rows of `from`, whose columns have the table's names. */
function indexedRows(s: UniqueAfterShape, from: string, extra = ''): string {
  return `SELECT ${keyValue(s, '')} AS belay_key, ${keyParts(s)}${s.terms.map((t, i) => `${t.sql} AS belay_${i}`).join(', ')}${extra} FROM ${from} WHERE ${indexedWhere(s)}`;
}

/** A composite key's columns as belay_k0, belay_k1, … (a guard joins the written rows on them, through the index). */
function keyParts(s: UniqueAfterShape): string {
  return s.keyColumns.length > 1 ? s.keyColumns.map((c, i) => `${ident(c)} AS belay_k${i}, `).join('') : '';
}

/** Row x of indexedRows() is the written row w. */
function isWritten(s: UniqueAfterShape, x: string): string {
  if (s.keyColumns.length === 1) return `${x}.belay_key = w.${ident(s.key)}`;
  return s.keyColumns.map((c, i) => `${x}.belay_k${i} = w.${ident(c)}`).join(' AND ');
}

function sameIndexValue(s: UniqueAfterShape, a: string, b: string): string {
  // NULLS NOT DISTINCT indexes treat NULL = NULL as a collision; plain ones never do (and hash-join on =)
  return s.terms
    .map((_, i) => (s.nullsNotDistinct ? `${b}.belay_${i} IS NOT DISTINCT FROM ${a}.belay_${i}` : `${b}.belay_${i} = ${a}.belay_${i}`))
    .join(' AND ');
}

/** The terms of a row under their own names; a term that is the key is left out (the key is shown as such). */
function termColumns(s: UniqueAfterShape, alias: string): string[] {
  const seen = new Set([s.key]);
  const out: string[] = [];
  for (const [i, t] of s.terms.entries()) {
    if (seen.has(t.name)) continue;
    seen.add(t.name);
    out.push(`${alias}.belay_${i} AS ${ident(t.name)}`);
  }
  return out;
}

/**
 * Rows that would violate a unique index after a projected step, over the whole table, without a
 * write. One pass gives every row its value after the step (the projected value for rows the
 * projection returns, the current one for the others) and the index's terms over it (so expressions,
 * partial predicates and collations are evaluated on the row as it will be), and groups the indexed
 * rows by index value: a group of two or more with a changed row in it is a collision, wherever both
 * rows are in the key order (so collisions between rows of different batches are found). A row counts
 * as changed only when a written column the index reads gets another value (the batches write only
 * rows whose values change). The current rows already satisfy the index, so every collision involves
 * a changed row, and only the few rows of colliding groups are paired up. A hash join from the table
 * to the projection and a hash aggregate: no look-up per row (the planner estimates a projection at a
 * few rows, and paired 580,000 projected rows with the table by index probes at 1M rows).
 * $1/$2 = the table's whole key range.
 */
export function uniqueAfterSql(s: UniqueAfterShape, projection: string): string {
  const k = ident(s.key);
  const cols = [...new Set([...s.keyColumns, ...s.reads])];
  const written = (c: string) => s.writes.includes(c) && !s.keyColumns.includes(c);
  const after = cols
    .map((c) => `${written(c) ? `CASE WHEN ${noRow(s, 'p')} THEN t.${ident(c)} ELSE p.${ident(c)} END` : `t.${ident(c)}`} AS ${ident(c)}`)
    .join(', ');
  const changes = s.reads.filter(written).map((c) => `t.${ident(c)} IS DISTINCT FROM p.${ident(c)}`);
  const changed = changes.length ? `${hasRow(s, 'p')} AND (${changes.join(' OR ')})` : 'false';
  const groupBy = s.terms.map((_, i) => `belay_${i}`).join(', ');
  return `${PROJECTION_PREFIX}${projection}
), a AS (
  ${indexedRows(s, `(SELECT ${after}, ${changed} AS belay_changed FROM ${s.table} t LEFT JOIN p ON ${sameKey(s, 'p', 't')}) v`, ', belay_changed')}
), g AS (
  SELECT ${groupBy} FROM a GROUP BY ${groupBy} HAVING count(*) > 1 AND bool_or(a.belay_changed)
), m AS (
  SELECT a.* FROM a JOIN g ON ${sameIndexValue(s, 'g', 'a')}
), hit AS (
  SELECT x.belay_key AS key, o.belay_key AS other, o.belay_changed AS other_changed
    FROM m x JOIN m o ON ${sameIndexValue(s, 'x', 'o')} AND o.belay_key <> x.belay_key
   WHERE x.belay_changed
), per_row AS (
  SELECT key, array_agg(other ORDER BY other) AS others, array_agg(other_changed ORDER BY other) AS changed
    FROM hit WHERE $1::${s.keyType} IS NOT NULL OR $2::${s.keyType} IS NULL GROUP BY key
)
SELECT DISTINCT ON (x.belay_key) ${[`x.belay_key AS ${k}`, ...termColumns(s, 'x')].join(', ')}, r.others[1] AS "collidesWith", r.changed[1] AS "collidesWithChanged", r.others AS "collidesWithAll"
  FROM per_row r JOIN m x ON x.belay_key = r.key AND x.belay_changed ORDER BY x.belay_key`;
}

/** NULLs in `column` once the step wrote its projected values ($1/$2 = the whole key range). */
export function notNullAfterSql(table: string, key: KeyShape, column: string, projection: string): string {
  const c = ident(column);
  return `${PROJECTION_PREFIX}${projection}
)
SELECT t.*, (${hasRow(key, 'p')}) AS "changedByStep" FROM ${table} t LEFT JOIN p ON ${sameKey(key, 'p', 't')}
 WHERE CASE WHEN ${hasRow(key, 'p')} THEN p.${c} ELSE t.${c} END IS NULL
   AND ($1::${key.keyType} IS NOT NULL OR $2::${key.keyType} IS NULL)
 ORDER BY ${keyOrder(key, 't')}`;
}

/** NULLs in `column` as the table is now. */
export function notNullNowSql(table: string, column: string): string {
  return `SELECT t.* FROM ${table} t WHERE t.${ident(column)} IS NULL`;
}

// ---- in-batch guards: run by apply inside each batch's transaction, after the write; `written`
// ---- holds the rows this batch wrote (key and written columns, after-image). No rows = pass.

/** A written row whose index value (as now in the table) equals another row's. */
export function uniqueGuardSql(s: UniqueAfterShape): string {
  // plain subqueries, not a CTE read twice: the planner pulls them up and probes the index itself
  const rows = `(${indexedRows(s, `${s.table} t`)})`;
  return `SELECT ${[`${keyValue(s, 'w')} AS key`, 'o.belay_key AS "collidesWith"', ...termColumns(s, 'x')].join(', ')}
  FROM written w
  JOIN ${rows} x ON ${isWritten(s, 'x')}
  JOIN ${rows} o ON ${sameIndexValue(s, 'x', 'o')} AND o.belay_key <> x.belay_key`;
}

/** A written value whose parent row does not exist. */
export function parentGuardSql(key: KeyShape, column: string, parent: string, parentColumn: string): string {
  return `SELECT ${keyValue(key, 'w')} AS key, w.${ident(column)} AS value FROM written w
 WHERE w.${ident(column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${parent} p WHERE p.${ident(parentColumn)} = w.${ident(column)})`;
}

// ---- state: the results of the pre-flight an apply ran, with its run id (state schema version 3).

// The table is created by state schema version 3 (src/state/schema.ts).

// ---- constraints predicted from the catalog on the rows a step writes (FK, CHECK, domain, NOT NULL)

/** The rows a step writes, as the row-rule SQL reads them. */
export interface WrittenRowsShape extends KeyShape {
  /** Quoted, qualified table. */
  table: string;
  /** Written columns and the type the column stores them as (a domain's base type: a domain's checks are rules of their own). */
  writes: ReadonlyArray<{ name: string; type: string }>;
  /** Other columns the rules read, as they are now. */
  reads: readonly string[];
}

/** A row-level rule: `violated` reads v (the row after the step; written columns also as v.belay_old_<i>). */
export interface RowRule {
  violated: string;
  /** The columns a reported row shows: name → SQL over v. */
  show: ReadonlyArray<readonly [string, string]>;
}

/** v's name for the value a written column holds now. */
export function oldOf(i: number): string {
  return `belay_old_${i}`;
}

/**
 * Per rule: how many rows the step writes violate it, and the first `limit` of them in key order. One
 * pass: the projection joined to the table once (only rows whose written values change: the rows the
 * batches write), materialized, then every rule over it. $1/$2 = the table's whole key range.
 */
export function rowRulesSql(s: WrittenRowsShape, projection: string, rules: readonly RowRule[], limit: number): string {
  const isKey = (c: string) => s.keyColumns.includes(c);
  const cols = [
    ...s.keyColumns.map((c) => `t.${ident(c)} AS ${ident(c)}`),
    ...s.writes.filter((w) => !isKey(w.name)).map((w) => `CAST(p.${ident(w.name)} AS ${w.type}) AS ${ident(w.name)}`),
    ...s.writes.map((w, i) => `t.${ident(w.name)} AS ${oldOf(i)}`),
    ...s.reads.filter((c) => !isKey(c) && !s.writes.some((w) => w.name === c)).map((c) => `t.${ident(c)}`),
  ];
  const changed = s.writes.map((w) => `t.${ident(w.name)} IS DISTINCT FROM p.${ident(w.name)}`).join(' OR ');
  const hits = rules
    .map(
      (
        r,
        i,
      ) => `  SELECT ${i} AS belay_rule, ${keyValue(s, 'v')} AS belay_key, jsonb_build_object(${r.show.map(([n, sql]) => `${literal(n)}, ${sql}`).join(', ')}) AS belay_row
    FROM v WHERE ${r.violated}`,
    )
    .join('\n  UNION ALL\n');
  return `${PROJECTION_PREFIX}${projection}
), v AS MATERIALIZED (
  SELECT ${cols.join(', ')}
    FROM p JOIN ${s.table} t ON ${sameKey(s, 't', 'p')}
   WHERE (${changed}) AND ($1::${s.keyType} IS NOT NULL OR $2::${s.keyType} IS NULL)
), hit AS (
${hits}
), ranked AS (
  SELECT h.*, row_number() OVER (PARTITION BY h.belay_rule ORDER BY h.belay_key) AS belay_n FROM hit h
)
SELECT belay_rule AS rule, count(*)::int AS n,
       coalesce(jsonb_agg(belay_row ORDER BY belay_key) FILTER (WHERE belay_n <= ${Math.max(0, Math.floor(limit))}), '[]') AS sample
  FROM ranked GROUP BY belay_rule`;
}

/** One key term of an exclusion constraint: SQL over unqualified columns, and the operator that must not hold. */
export interface ExclusionShape extends KeyShape {
  table: string;
  writes: readonly string[];
  terms: ReadonlyArray<{ name: string; sql: string; operator: string }>;
  predicate: string | null;
  /** Every column the terms and the predicate read. */
  reads: readonly string[];
}

/**
 * Rows that would violate an exclusion constraint after a projected step: a changed row (a written column
 * the constraint reads gets another value) whose terms, as they will be, meet another row's under every
 * operator: the other rows as they are now (through the constraint's own index) and the other changed
 * rows as they will be. NULL terms never conflict. $1/$2 = the table's whole key range.
 */
export function exclusionAfterSql(s: ExclusionShape, projection: string): string {
  const k = ident(s.key);
  const key = keyValue(s, '');
  const cols = [...new Set([...s.keyColumns, ...s.reads])];
  const written = (c: string) => s.writes.includes(c) && !s.keyColumns.includes(c);
  const after = cols.map((c) => `${written(c) ? `p.${ident(c)}` : `t.${ident(c)}`} AS ${ident(c)}`).join(', ');
  const changes = s.reads.filter(written).map((c) => `t.${ident(c)} IS DISTINCT FROM p.${ident(c)}`);
  const terms = s.terms.map((t, i) => `${t.sql} AS belay_${i}`).join(', ');
  const where = s.predicate ? ` WHERE (${s.predicate})` : '';
  const meets = (a: string, b: string) => s.terms.map((t, i) => `${a}.belay_${i} ${t.operator} ${b}.belay_${i}`).join(' AND ');
  const shown = s.terms.map((t, i) => `x.belay_${i} AS ${ident(t.name)}`).filter((_, i) => s.terms[i]!.name !== s.key);
  return `${PROJECTION_PREFIX}${projection}
), a AS MATERIALIZED (
  SELECT ${key} AS belay_key, ${terms} FROM (
    SELECT ${after} FROM p JOIN ${s.table} t ON ${sameKey(s, 't', 'p')}
     WHERE (${changes.length ? changes.join(' OR ') : 'false'}) AND ($1::${s.keyType} IS NOT NULL OR $2::${s.keyType} IS NULL)
  ) v${where}
), hit AS (
  SELECT x.belay_key AS key, o.belay_key AS other, false AS other_changed
    FROM a x JOIN (SELECT ${key} AS belay_key, ${terms} FROM ${s.table}${where}) o ON ${meets('x', 'o')} AND o.belay_key <> x.belay_key
   WHERE NOT EXISTS (SELECT 1 FROM a c WHERE c.belay_key = o.belay_key)
  UNION ALL
  SELECT x.belay_key, y.belay_key, true FROM a x JOIN a y ON ${meets('x', 'y')} AND y.belay_key <> x.belay_key
), per_row AS (
  SELECT key, array_agg(other ORDER BY other) AS others, array_agg(other_changed ORDER BY other) AS changed FROM hit GROUP BY key
)
SELECT x.belay_key AS ${k}${shown.length ? `, ${shown.join(', ')}` : ''}, r.others[1] AS "collidesWith", r.changed[1] AS "collidesWithChanged", r.others AS "collidesWithAll"
  FROM per_row r JOIN a x ON x.belay_key = r.key ORDER BY x.belay_key`;
}

// ---- a projection's mistakes, found before anything runs: planned (EXPLAIN), never executed. Every
// ---- statement references $1/$2 (the key range, typed as the key) whether or not the projection does.

/** Text before the user's SQL in the EXPLAIN statements below: positions inside it are shifted by its length. */
export const EXPLAIN_PREFIX = `EXPLAIN ${PROJECTION_PREFIX}`;

function rangeUsed(keyType: string): string {
  return `($1::${keyType} IS NOT NULL OR $2::${keyType} IS NULL)`;
}

/** The projection planned as a query of its own. */
export function explainProjectionSql(projection: string, keyType: string): string {
  return `${EXPLAIN_PREFIX}${projection}
) SELECT * FROM p WHERE ${rangeUsed(keyType)}`;
}

/**
 * The projection's output columns, in order, without running it: a LIMIT 0 of it outer-joined to one
 * row yields one row of NULLs whose JSON has every column's name (duplicates kept) and pg_typeof their types.
 */
export function projectionColumnsSql(projection: string, keyType: string): string {
  return `${PROJECTION_PREFIX}${projection}
), r AS (
  SELECT x.* FROM (SELECT 1) o LEFT JOIN (SELECT * FROM p LIMIT 0) x ON true WHERE ${rangeUsed(keyType)}
)
SELECT k AS name FROM r, json_object_keys(to_json(r)) k`;
}

/** The type of one output column of the projection. */
export function projectionTypeSql(projection: string, keyType: string, column: string): string {
  return `${PROJECTION_PREFIX}${projection}
)
SELECT pg_typeof(x.${ident(column)})::text AS type FROM (SELECT 1) o LEFT JOIN (SELECT * FROM p LIMIT 0) x ON true WHERE ${rangeUsed(keyType)}`;
}

/**
 * The write of one projected column, planned: the server's own assignment rules (types, generated
 * columns), allowed in a read-only transaction because it never runs. column null: the key's join alone.
 */
export function explainWriteSql(table: string, key: KeyShape, projection: string, column: string | null): string {
  const on = sameKey(key, 't', 'p');
  const body =
    column === null
      ? `SELECT 1 FROM ${table} t JOIN p ON ${on} WHERE ${rangeUsed(key.keyType)}`
      : // compared as the batches compare it (only rows whose value changes are written), then assigned
        `UPDATE ${table} t SET ${ident(column)} = p.${ident(column)} FROM p WHERE ${on} AND t.${ident(column)} IS DISTINCT FROM p.${ident(column)} AND ${rangeUsed(key.keyType)}`;
  return `${EXPLAIN_PREFIX}${projection}
) ${body}`;
}

/** A step's in-batch verification planned with `written` shaped as the table's rows. */
export function explainVerifySql(table: string, verify: string, keyType: string): string {
  return `EXPLAIN WITH written AS (SELECT w.* FROM ${table} w WHERE false)
SELECT * FROM (
${verify}
) v WHERE ${rangeUsed(keyType)}`;
}

/** Text before the user's SQL in explainVerifySql. */
export function explainVerifyPrefix(table: string): string {
  return `EXPLAIN WITH written AS (SELECT w.* FROM ${table} w WHERE false)\nSELECT * FROM (\n`;
}

/** A post-run verification planned. */
export const EXPLAIN_QUERY_PREFIX = 'EXPLAIN SELECT * FROM (\n';
export function explainQuerySql(sql: string): string {
  return `${EXPLAIN_QUERY_PREFIX}${sql}
) v`;
}
