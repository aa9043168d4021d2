// All SQL of planning and calibration, in one place.
// Identifiers arrive quoted; values are parameters.

/** Estimated rows (reltuples, -1 = never analysed), heap and index bytes of one table ($1 = regclass text). */
export const TABLE_SIZE_SQL = `SELECT c.reltuples::float8 AS estimate,
       pg_table_size(c.oid)::float8 AS "tableBytes",
       pg_indexes_size(c.oid)::float8 AS "indexBytes"
  FROM pg_class c WHERE c.oid = to_regclass($1)`;

export function exactCountSql(table: string): string {
  return `SELECT count(*)::float8 AS n FROM ${table}`;
}

/** Every index definition of a table ($1 = oid), for the definition fingerprint. */
export const INDEX_DEFS_SQL = `SELECT i.relname AS name, pg_get_indexdef(x.indexrelid) AS def
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
 WHERE x.indrelid = $1 ORDER BY i.relname`;

/** Every constraint definition of a table ($1 = oid): a new CHECK or FK changes the plan too. */
export const CONSTRAINT_DEFS_SQL = `SELECT conname AS name, pg_get_constraintdef(oid) AS def
  FROM pg_constraint WHERE conrelid = $1 ORDER BY conname`;

/** The leading column of every valid index of a table ($1 = regclass text); expression indexes lead with none. */
export const LEADING_INDEX_COLUMNS_SQL = `SELECT c.relname::text AS index, a.attname::text AS "column"
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
 WHERE i.indrelid = to_regclass($1) AND i.indisvalid
 ORDER BY i.indisprimary DESC, c.relname`;
