// Every SQL the runbook and the report read, in one place. All of it is read-only.

/** $1 = table oid. Columns in order, with their type, NOT NULL and default. */
export const SNAPSHOT_COLUMNS_SQL = `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
       pg_get_expr(d.adbin, d.adrelid) AS "default"
  FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`;

/** $1 = table oid. Every index with its full definition. */
export const SNAPSHOT_INDEXES_SQL = `SELECT c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition, i.indisunique AS "unique", i.indisprimary AS "primary"
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
 WHERE i.indrelid = $1 ORDER BY c.relname`;

/** $1 = table oid. Every constraint (p, u, f, c, x; NOT NULL is shown on the column). */
export const SNAPSHOT_CONSTRAINTS_SQL = `SELECT conname AS name, contype::text AS type, pg_get_constraintdef(oid) AS definition
  FROM pg_constraint WHERE conrelid = $1 AND contype <> 'n' ORDER BY conname`;

/** $1 = quoted table name. Its oid, or NULL when it does not exist. */
export const TABLE_OID_SQL = `SELECT to_regclass($1)::oid::int AS oid`;

/** $1 = table oid. Estimated rows (reltuples, -1 when never analyzed) and total size on disk. */
export const TABLE_SIZE_SQL = `SELECT c.reltuples::float8 AS estimate, pg_total_relation_size(c.oid)::float8 AS bytes
  FROM pg_class c WHERE c.oid = $1`;

/** $1 = qualified name: true when the relation exists (state tables other stages may add). */
export const RELATION_EXISTS_SQL = `SELECT to_regclass($1) IS NOT NULL AS exists`;

/** A state table of another stage, read generically: $1 = run id. The table name is a fixed identifier. */
export function rowsOfRunSql(qualifiedTable: string): string {
  return `SELECT to_jsonb(t) AS row FROM ${qualifiedTable} t WHERE t.run_id = $1`;
}

/** Does a belay state table have a run_id column (so it can be read per run)? $1 = schema, $2 = table. */
export const HAS_RUN_ID_SQL = `SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND column_name = 'run_id') AS has`;
