// Catalog look-ups shared by every stage: does a table exist, its key, its columns.
import { SpecError } from '../errors.ts';
import type { Db } from './connection.ts';
import { qualified } from './sql.ts';

export interface ColumnInfo {
  name: string;
  type: string;
  notNull: boolean;
  default: string | null;
}

export interface TableInfo {
  /** The quoted, qualified name used in SQL. */
  sqlName: string;
  name: string;
  oid: number;
  columns: ColumnInfo[];
  primaryKey: string[];
}

export async function tableInfo(db: Db, name: string): Promise<TableInfo> {
  const sqlName = qualified(name);
  const r = await db.query<{ oid: number | null }>(`SELECT to_regclass($1)::oid::int AS oid`, [sqlName]);
  const oid = r.rows[0]?.oid;
  if (!oid) {
    throw new SpecError(`table ${sqlName} does not exist in the database`, {
      field: 'tables',
      expected: 'an existing table',
      fix: 'Check the table name and its case (belay quotes every name: "EventType" is not eventtype), or create the schema first.',
    });
  }
  const cols = await db.query<ColumnInfo>(
    `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS "notNull",
            pg_get_expr(d.adbin, d.adrelid) AS default
       FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`,
    [oid],
  );
  const pk = await db.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i
       JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, ord) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1 AND i.indisprimary ORDER BY k.ord`,
    [oid],
  );
  return { sqlName, name, oid, columns: cols.rows, primaryKey: pk.rows.map((x) => x.name) };
}

export function column(info: TableInfo, name: string, field: string): ColumnInfo {
  const c = info.columns.find((x) => x.name === name);
  if (!c) {
    throw new SpecError(`column "${name}" does not exist in table ${info.sqlName}`, {
      field,
      expected: `one of: ${info.columns.map((x) => x.name).join(', ')}`,
      fix: 'Check the column name and its case; belay quotes every identifier.',
    });
  }
  return c;
}
