// All SQL of the pre-flight stage, in one place. Identifiers go through ident()/qualified().
// Offending-row queries are plain SELECTs; runChecks wraps each in FINDING_SQL inside a READ ONLY
// transaction that is rolled back, so a check can never change the database.
import { ident } from '../db/sql.ts';

/** One snapshot for every check, and the server refuses any write. Always ended with ROLLBACK. */
export const READ_ONLY_BEGIN_SQL = 'BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY';

/** Text before the offending-rows query in findingSql(): an error position inside it is shifted by its length. */
export const FINDING_PREFIX = 'WITH f AS (\n';

/** Count and a bounded sample of a check's offending rows, in one statement (one pass over them). */
export function findingSql(offending: string, limit: number): string {
  return `${FINDING_PREFIX}${offending}
)
SELECT (SELECT count(*) FROM f)::int AS n,
       (SELECT jsonb_agg(to_jsonb(s)) FROM (SELECT * FROM f LIMIT ${Math.max(0, Math.floor(limit))}) s) AS sample`;
}

/** The definition of a named index of a table: key columns in order, partial predicate, NULL semantics. */
export const INDEX_DEFINITION_SQL = `SELECT c.relname::text AS name, i.indisunique AS "unique",
       i.indnullsnotdistinct AS "nullsNotDistinct", pg_get_expr(i.indpred, i.indrelid) AS predicate,
       i.indexprs IS NOT NULL AS "hasExpressions",
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
          FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE k.ord <= i.indnkeyatts) AS columns
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1 AND c.relname = $2`;

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

export interface UniqueAfterShape {
  /** Quoted, qualified table. */
  table: string;
  key: string;
  keyType: string;
  /** Columns the step writes (their new values come from p). */
  writes: readonly string[];
  /** The index's key columns, in order. */
  columns: readonly string[];
  /** Partial-index predicate over unqualified column names, or null. */
  predicate: string | null;
  nullsNotDistinct: boolean;
  /** Every column of the table (needed when a predicate may read any of them). */
  allColumns: readonly string[];
}

function indexedRows(s: UniqueAfterShape): { cols: string[]; where: string } {
  const cols = [...new Set([s.key, ...s.columns, ...(s.predicate ? s.allColumns : [])])];
  const conds = [
    ...(s.nullsNotDistinct ? [] : s.columns.map((c) => `${ident(c)} IS NOT NULL`)),
    ...(s.predicate ? [`(${s.predicate})`] : []),
  ];
  return { cols, where: conds.length ? conds.join(' AND ') : 'true' };
}

function sameIndexValue(s: UniqueAfterShape, a: string, b: string): string {
  // NULLS NOT DISTINCT indexes treat NULL = NULL as a collision; plain ones never do (and hash-join on =)
  return s.columns.map((c) => (s.nullsNotDistinct ? `${b}.${ident(c)} IS NOT DISTINCT FROM ${a}.${ident(c)}` : `${b}.${ident(c)} = ${a}.${ident(c)}`)).join(' AND ');
}

/**
 * Rows that would violate a unique index after a projected step, over the whole table, without a
 * write. One pass gives every row its value after the step (`a`: the projected value for rows the
 * projection returns, the current one for the others) and groups the indexed rows by index value: a
 * group of two or more with a projected row in it is a collision, wherever both rows are in the key
 * order (so collisions between rows of different batches are found). The current rows already satisfy
 * the index, so every collision involves a projected row, and only the few rows of colliding groups are
 * paired up. A hash join from the table to the projection and a hash aggregate: no look-up per row
 * (the planner estimates a projection at a few rows, and paired 580,000 projected rows with the table
 * by index probes at 1M rows). $1/$2 = the table's whole key range.
 */
export function uniqueAfterSql(s: UniqueAfterShape, projection: string): string {
  const k = ident(s.key);
  const { cols, where } = indexedRows(s);
  const after = cols.map((c) => (s.writes.includes(c) && c !== s.key ? `CASE WHEN p.${k} IS NULL THEN t.${ident(c)} ELSE p.${ident(c)} END` : `t.${ident(c)}`) + ` AS ${ident(c)}`).join(', ');
  const indexCols = s.columns.map((c) => ident(c)).join(', ');
  const out = [s.key, ...s.columns.filter((c) => c !== s.key)].map((c) => `x.${ident(c)}`).join(', ');
  return `${PROJECTION_PREFIX}${projection}
), a AS (
  SELECT * FROM (SELECT ${after}, p.${k} IS NOT NULL AS belay_projected FROM ${s.table} t LEFT JOIN p ON p.${k} = t.${k}) v WHERE ${where}
), g AS (
  SELECT ${indexCols} FROM a GROUP BY ${indexCols} HAVING count(*) > 1 AND bool_or(a.belay_projected)
), m AS (
  SELECT a.* FROM a JOIN g ON ${sameIndexValue(s, 'g', 'a')}
), hit AS (
  SELECT x.${k} AS key, o.${k} AS other, o.belay_projected AS other_changed
    FROM m x JOIN m o ON ${sameIndexValue(s, 'x', 'o')} AND o.${k} <> x.${k}
   WHERE x.belay_projected
), per_row AS (
  SELECT key, array_agg(other ORDER BY other) AS others, array_agg(other_changed ORDER BY other) AS changed
    FROM hit WHERE $1::${s.keyType} IS NOT NULL OR $2::${s.keyType} IS NULL GROUP BY key
)
SELECT DISTINCT ON (x.${k}) ${out}, r.others[1] AS "collidesWith", r.changed[1] AS "collidesWithChanged", r.others AS "collidesWithAll"
  FROM per_row r JOIN m x ON x.${k} = r.key AND x.belay_projected ORDER BY x.${k}`;
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
  const k = ident(s.key);
  const { where } = indexedRows(s);
  const cols = s.columns.filter((c) => c !== s.key).map((c) => `t.${ident(c)}`).join(', ');
  return `SELECT w.${k} AS key, o.${k} AS "collidesWith"${cols ? `, ${cols}` : ''}
  FROM written w
  JOIN (SELECT * FROM ${s.table} WHERE ${where}) t ON t.${k} = w.${k}
  JOIN (SELECT * FROM ${s.table} WHERE ${where}) o ON ${sameIndexValue(s, 't', 'o')} AND o.${k} <> t.${k}`;
}

/** A written value whose parent row does not exist. */
export function parentGuardSql(key: string, column: string, parent: string, parentColumn: string): string {
  return `SELECT w.${ident(key)} AS key, w.${ident(column)} AS value FROM written w
 WHERE w.${ident(column)} IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM ${parent} p WHERE p.${ident(parentColumn)} = w.${ident(column)})`;
}

// ---- state: the results of the pre-flight an apply ran, with its run id (state schema version 3).

// The table is created by state schema version 3 (src/state/schema.ts).
