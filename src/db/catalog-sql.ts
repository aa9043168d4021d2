// All SQL that reads what pg_catalog knows about a table, in one place (catalog-facts.ts turns the rows
// into typed facts). Every query takes $1 = the table's oid; object ids travel as text (an oid can exceed
// int4) and lists as jsonb, which pg and PGlite both return parsed. Runs on PostgreSQL 15 and PGlite (18).
// Version-specific columns (the locale of a collation or of the database) are read through to_jsonb(row),
// so a column missing on one version is NULL instead of an error.

/** The table's schema and name, its kind and row security, the database's default collation. */
export const TABLE_SQL = `SELECT n.nspname::text AS schema, c.relname::text AS name, c.relkind::text AS kind,
       c.relrowsecurity AS "rowSecurity", current_setting('server_version_num')::int AS "serverVersion",
       d.datlocprovider::text AS "defaultProvider",
       coalesce(to_jsonb(d)->>'datlocale', to_jsonb(d)->>'daticulocale', d.datcollate::text) AS "defaultLocale"
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_database d ON d.datname = current_database()
 WHERE c.oid = $1`;

/** Every live column: type, NOT NULL, default, generated/identity, collation. */
export const COLUMNS_SQL = `SELECT a.attname::text AS name, a.attnum::int AS attnum, format_type(a.atttypid, a.atttypmod) AS type,
       a.atttypid::text AS "typeOid", a.attndims::int AS dims, a.attnotnull AS "notNull",
       pg_get_expr(d.adbin, d.adrelid) AS "default", nullif(a.attgenerated::text, '') AS generated,
       nullif(a.attidentity::text, '') AS identity,
       co.collname::text AS "collationName", cn.nspname::text AS "collationSchema", co.collprovider::text AS "collationProvider",
       co.collisdeterministic AS "collationDeterministic",
       coalesce(to_jsonb(co)->>'colllocale', to_jsonb(co)->>'colliculocale', co.collcollate::text) AS "collationLocale"
  FROM pg_attribute a
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
 WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum`;

/**
 * Every type the columns use, and the types those are made of (array elements, domain bases, transitively):
 * kind, enum labels in sort order, domain NOT NULL and CHECKs, composite attributes.
 */
export const TYPES_SQL = `WITH RECURSIVE used(oid) AS (
  SELECT a.atttypid FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
  UNION
  SELECT x.oid FROM used u JOIN pg_type t ON t.oid = u.oid
   CROSS JOIN LATERAL (VALUES (CASE WHEN t.typsubscript = 'pg_catalog.array_subscript_handler'::regproc THEN t.typelem END),
                              (nullif(t.typbasetype, 0))) x(oid)
   WHERE x.oid IS NOT NULL
)
SELECT t.oid::text AS oid, format_type(t.oid, NULL) AS name, n.nspname::text AS schema, t.typtype::text AS typtype,
       CASE WHEN t.typsubscript = 'pg_catalog.array_subscript_handler'::regproc THEN t.typelem::text END AS element,
       nullif(t.typbasetype, 0)::text AS base, format_type(t.typbasetype, t.typtypmod) AS "baseName", t.typnotnull AS "notNull",
       (SELECT jsonb_agg(e.enumlabel::text ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid) AS labels,
       (SELECT jsonb_agg(jsonb_build_object('name', c.conname::text, 'definition', pg_get_constraintdef(c.oid), 'validated', c.convalidated) ORDER BY c.conname)
          FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c') AS checks,
       (SELECT jsonb_agg(jsonb_build_object('name', a.attname::text, 'type', format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
          FROM pg_attribute a WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped) AS attributes
  FROM used u JOIN pg_type t ON t.oid = u.oid JOIN pg_namespace n ON n.oid = t.typnamespace`;

/**
 * Every index of the table, with its constraint (primary key, unique, exclusion) when it backs one. terms:
 * the key columns in order (column = NULL for an expression; sql = the column or the expression over the
 * table's unqualified columns; the collation it compares with and whether that is the column's own; the exclusion operator).
 * reads: every column the keys, expressions and predicate read (pg_depend records the expressions' and
 * the predicate's columns, indkey the plain ones). indkey and indcollation are 0-based vectors.
 */
export const INDEXES_SQL = `SELECT ic.relname::text AS name, i.indisunique AS "unique", i.indisprimary AS "primary",
       i.indisvalid AS valid, i.indisready AS ready, i.indnullsnotdistinct AS "nullsNotDistinct", am.amname::text AS method,
       pg_get_indexdef(i.indexrelid) AS definition, pg_get_expr(i.indpred, i.indrelid) AS predicate,
       con.conname::text AS "constraintName", con.contype::text AS "constraintType",
       coalesce(con.condeferrable, false) AS deferrable, coalesce(con.condeferred, false) AS "initiallyDeferred",
       (SELECT jsonb_agg(jsonb_build_object(
                 'column', a.attname::text,
                 'sql', pg_get_indexdef(i.indexrelid, k.ord::int, true),
                 'collation', (SELECT jsonb_build_object('schema', cn.nspname::text, 'name', co.collname::text) FROM pg_collation co
                                 JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = i.indcollation[k.ord - 1]),
                 'columnCollation', a.attcollation IS NOT DISTINCT FROM i.indcollation[k.ord - 1],
                 'operator', (SELECT o.oprname::text FROM pg_operator o WHERE o.oid = con.conexclop[k.ord]))
               ORDER BY k.ord)
          FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
          LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE k.ord <= i.indnkeyatts) AS terms,
       (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY k.ord), '[]')
          FROM unnest(i.indkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
         WHERE k.ord > i.indnkeyatts) AS include,
       (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY a.attnum), '[]') FROM pg_attribute a
         WHERE a.attrelid = i.indrelid AND (a.attnum = ANY (i.indkey::int2[])
            OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
                          AND d.refclassid = 'pg_class'::regclass AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum))) AS reads
  FROM pg_index i
  JOIN pg_class ic ON ic.oid = i.indexrelid
  JOIN pg_am am ON am.oid = ic.relam
  LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
 WHERE i.indrelid = $1
 ORDER BY ic.relname`;

/**
 * Foreign keys from the table and into it (a self-reference is both). childIndexed: a valid, non-partial
 * index on the child whose leading columns are the referencing columns, in any order (what a cascade or a
 * parent's delete needs to find the children without scanning the child).
 */
export const FOREIGN_KEYS_SQL = `SELECT c.conname::text AS name, c.conrelid = $1 AS "fromTable", c.confrelid = $1 AS "intoTable",
       cn.nspname::text AS "childSchema", cr.relname::text AS "childName", pn.nspname::text AS "parentSchema", pr.relname::text AS "parentName",
       (SELECT jsonb_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS "childColumns",
       (SELECT jsonb_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS "parentColumns",
       (SELECT jsonb_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.confdelsetcols) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS "onDeleteSetColumns",
       c.confupdtype::text AS "onUpdate", c.confdeltype::text AS "onDelete", c.confmatchtype::text AS "match",
       c.condeferrable AS deferrable, c.condeferred AS "initiallyDeferred", c.convalidated AS validated,
       EXISTS (SELECT 1 FROM pg_index x WHERE x.indrelid = c.conrelid AND x.indisvalid AND x.indpred IS NULL
                  AND (SELECT array_agg(k.attnum) FROM unnest(x.indkey) WITH ORDINALITY k(attnum, ord) WHERE k.ord <= cardinality(c.conkey))
                      OPERATOR(pg_catalog.@>) c.conkey
                  AND cardinality(c.conkey) <= x.indnkeyatts) AS "childIndexed"
  FROM pg_constraint c
  JOIN pg_class cr ON cr.oid = c.conrelid JOIN pg_namespace cn ON cn.oid = cr.relnamespace
  JOIN pg_class pr ON pr.oid = c.confrelid JOIN pg_namespace pn ON pn.oid = pr.relnamespace
 WHERE c.contype = 'f' AND (c.conrelid = $1 OR c.confrelid = $1)
 ORDER BY c.conname`;

/** CHECK constraints of the table with the columns they read (not the NOT NULL constraints of PG 18). */
export const CHECKS_SQL = `SELECT c.conname::text AS name, pg_get_constraintdef(c.oid) AS definition, pg_get_expr(c.conbin, c.conrelid) AS expression,
       c.convalidated AS validated, c.connoinherit AS "noInherit",
       (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY a.attnum), '[]') FROM pg_attribute a
         WHERE a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)) AS reads
  FROM pg_constraint c
 WHERE c.conrelid = $1 AND c.contype = 'c'
 ORDER BY c.conname`;

/**
 * User triggers of the table (not the internal ones that enforce foreign keys): tgtype bits, enabled state,
 * UPDATE OF columns, the definition (for its WHEN clause), the function and, for PL/pgSQL, its source.
 * args: the trigger's arguments as hex, NUL-terminated.
 */
export const TRIGGERS_SQL = `SELECT t.tgname::text AS name, t.tgtype::int AS type, t.tgenabled::text AS enabled,
       (SELECT coalesce(jsonb_agg(a.attname::text ORDER BY k.ord), '[]') FROM unnest(t.tgattr) WITH ORDINALITY k(attnum, ord)
          JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = k.attnum) AS "updateOf",
       pg_get_triggerdef(t.oid) AS definition, t.tgconstraint <> 0 AS "isConstraint",
       t.tgdeferrable AS deferrable, t.tginitdeferred AS "initiallyDeferred", encode(t.tgargs, 'hex') AS args,
       pn.nspname::text AS "functionSchema", p.proname::text AS "functionName", p.oid::regprocedure::text AS signature,
       l.lanname::text AS language, p.prosecdef AS "securityDefiner",
       CASE WHEN l.lanname = 'plpgsql' THEN pg_get_functiondef(p.oid) END AS source
  FROM pg_trigger t
  JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE t.tgrelid = $1 AND NOT t.tgisinternal
   -- belay's own write fences (state/decision-sql.ts: a trigger function in schema belay) are not the user's
   AND NOT (pn.nspname = 'belay' AND t.tgname LIKE 'belay\\_fence\\_r%')
 ORDER BY t.tgname`;

/** Which of the function names a trigger body calls are built in (pg_catalog): the others may write anything. */
export const BUILTIN_FUNCTIONS_SQL = `SELECT DISTINCT p.proname::text AS name FROM pg_proc p
 WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname = ANY ($1::text[])`;

/** The session's role may set session_replication_role (a superuser, or GRANT SET ON PARAMETER, PG 15+). */
export const ROLE_MAY_DISABLE_TRIGGERS_SQL = `SELECT has_parameter_privilege('session_replication_role', 'SET') AS may`;
