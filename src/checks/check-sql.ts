// All SQL of the pre-flight stage, in one place. Identifiers go through ident()/qualified().
// Offending-row queries are plain SELECTs; runChecks wraps each in FINDING_SQL inside a READ ONLY
// transaction that is rolled back, so a check can never change the database.
import { ident } from '../db/sql.ts';

/** One snapshot for every check, and the server refuses any write. Always ended with ROLLBACK. */
export const READ_ONLY_BEGIN_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY';
/** The same snapshot, writable at first: the decisions are made in it as temporary tables, then it turns read-only. */
export const SNAPSHOT_BEGIN_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ';

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
export function keyRangeSql(table: string, key: string): string {
  return `SELECT min(${ident(key)})::text AS lo, max(${ident(key)})::text AS hi FROM ${table}`;
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

export interface UniqueAfterShape {
  /** Quoted, qualified table. */
  table: string;
  key: string;
  keyType: string;
  /** Columns the step writes (their new values come from p). */
  writes: readonly string[];
  /** The index's key terms, in order: columns or expressions. */
  terms: readonly UniqueTerm[];
  /** Partial-index predicate over unqualified column names, or null. */
  predicate: string | null;
  nullsNotDistinct: boolean;
  /** Every column the index reads (keys, expressions, predicate). */
  reads: readonly string[];
}

/** Index rows: a NULL term keeps a row out of a plain unique index; a partial index holds the rows of its predicate. */
function indexedWhere(s: UniqueAfterShape): string {
  const conds = [
    ...(s.nullsNotDistinct ? [] : s.terms.map((t) => `(${t.sql}) IS NOT NULL`)),
    ...(s.predicate ? [`(${s.predicate})`] : []),
  ];
  return conds.length ? conds.join(' AND ') : 'true';
}

/** The key and every term's value (belay_0, belay_1, …) of the rows of `from`, whose columns have the table's names. */
function indexedRows(s: UniqueAfterShape, from: string, extra = ''): string {
  return `SELECT ${ident(s.key)} AS belay_key, ${s.terms.map((t, i) => `${t.sql} AS belay_${i}`).join(', ')}${extra} FROM ${from} WHERE ${indexedWhere(s)}`;
}

function sameIndexValue(s: UniqueAfterShape, a: string, b: string): string {
  // NULLS NOT DISTINCT indexes treat NULL = NULL as a collision; plain ones never do (and hash-join on =)
  return s.terms.map((_, i) => (s.nullsNotDistinct ? `${b}.belay_${i} IS NOT DISTINCT FROM ${a}.belay_${i}` : `${b}.belay_${i} = ${a}.belay_${i}`)).join(' AND ');
}

/** The terms of a row under their own names; a term that is the key is left out (the key is shown as such). */
function termColumns(s: UniqueAfterShape, alias: string): string[] {
  const seen = new Set([s.key]);
  return s.terms.flatMap((t, i) => (seen.has(t.name) ? [] : (seen.add(t.name), [`${alias}.belay_${i} AS ${ident(t.name)}`])));
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
  const cols = [...new Set([s.key, ...s.reads])];
  const written = (c: string) => s.writes.includes(c) && c !== s.key;
  const after = cols.map((c) => (written(c) ? `CASE WHEN p.${k} IS NULL THEN t.${ident(c)} ELSE p.${ident(c)} END` : `t.${ident(c)}`) + ` AS ${ident(c)}`).join(', ');
  const changes = s.reads.filter(written).map((c) => `t.${ident(c)} IS DISTINCT FROM p.${ident(c)}`);
  const changed = changes.length ? `p.${k} IS NOT NULL AND (${changes.join(' OR ')})` : 'false';
  const groupBy = s.terms.map((_, i) => `belay_${i}`).join(', ');
  return `${PROJECTION_PREFIX}${projection}
), a AS (
  ${indexedRows(s, `(SELECT ${after}, ${changed} AS belay_changed FROM ${s.table} t LEFT JOIN p ON p.${k} = t.${k}) v`, ', belay_changed')}
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
export function notNullAfterSql(table: string, key: string, keyType: string, column: string, projection: string): string {
  const k = ident(key);
  const c = ident(column);
  return `${PROJECTION_PREFIX}${projection}
)
SELECT t.*, (p.${k} IS NOT NULL) AS "changedByStep" FROM ${table} t LEFT JOIN p ON p.${k} = t.${k}
 WHERE CASE WHEN p.${k} IS NOT NULL THEN p.${c} ELSE t.${c} END IS NULL
   AND ($1::${keyType} IS NOT NULL OR $2::${keyType} IS NULL)
 ORDER BY t.${k}`;
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
  return `SELECT ${[`w.${ident(s.key)} AS key`, 'o.belay_key AS "collidesWith"', ...termColumns(s, 'x')].join(', ')}
  FROM written w
  JOIN ${rows} x ON x.belay_key = w.${ident(s.key)}
  JOIN ${rows} o ON ${sameIndexValue(s, 'x', 'o')} AND o.belay_key <> x.belay_key`;
}

/** A written value whose parent row does not exist. */
export function parentGuardSql(key: string, column: string, parent: string, parentColumn: string): string {
  return `SELECT w.${ident(key)} AS key, w.${ident(column)} AS value FROM written w
 WHERE w.${ident(column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${parent} p WHERE p.${ident(parentColumn)} = w.${ident(column)})`;
}

// ---- state: the results of the pre-flight an apply ran, with its run id (state schema version 3).

// The table is created by state schema version 3 (src/state/schema.ts).
