// What the database looks like after the pending statements read so far, without running them: each
// table's columns and its rows as one SELECT over the live rows (see prisma-sql.ts), the enums and their
// labels, and which names are taken. Loaded lazily from the catalog inside the check's snapshot.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { COLUMNS_SQL, emptyRowsSql, liveRowsSql, PRIMARY_KEY_SQL, RELATIONS_SQL, TYPES_SQL } from './prisma-sql.ts';

export interface Column {
  name: string;
  /** SQL type usable in a cast: the catalog's format_type, or the file's text; enums the files create are text. */
  type: string;
  notNull: boolean;
  /** Default expression (SQL) or null. */
  default: string | null;
}

export interface TableState {
  schema: string;
  /** The name the files use now (after renames). */
  name: string;
  /** The table in the snapshot the rows come from; null for a table the files create. */
  live: { oid: string; sql: string } | null;
  columns: Column[];
  primaryKey: string[];
  /** SELECT yielding "__rid", "__rel" and every column: the rows after the statements so far. */
  rows: string;
  /** Known to hold no rows (created by the files and never filled). */
  empty: boolean;
  /** Rows or columns differ from the live table (or its name does). */
  changed: boolean;
  /** Why later predictions on this table are only approximate, or null. */
  approx: string | null;
  /** An earlier statement fails on this table's rows: later predictions on it are skipped. */
  broken: string | null;
  /** Statement indexes (per migration) that wrote or altered it: `${migration}#${index}`. */
  touched: string[];
}

export interface EnumState {
  schema: string;
  name: string;
  /** The type in the snapshot (quoted, qualified), or null for an enum the files create. */
  live: string | null;
  labels: string[];
}

interface RelationEntry {
  kind: string;
  /** For an index: false when INVALID. */
  valid: boolean | null;
  /** For an index: key of its table. */
  table: string | null;
  live: boolean;
}

const key = (schema: string, name: string) => `${schema}\u0000${name}`;

export class Model {
  readonly tables = new Map<string, TableState>();
  readonly enums = new Map<string, EnumState>();
  readonly relations = new Map<string, RelationEntry>();
  readonly types = new Map<string, { kind: string; live: boolean }>();
  private loadedSchemas = new Set<string>();
  /** Live tables dropped or renamed away by the files: their name no longer resolves to the snapshot. */
  private gone = new Set<string>();

  constructor(
    readonly db: Db,
    readonly schema: string,
  ) {}

  async load(schema: string): Promise<void> {
    if (this.loadedSchemas.has(schema)) return;
    this.loadedSchemas.add(schema);
    const rels = await this.db.query<{ schema: string; name: string; kind: string; oid: string; valid: boolean | null; tableOid: string | null }>(
      RELATIONS_SQL,
      [[schema]],
    );
    const byOid = new Map(rels.rows.map((r) => [r.oid, key(r.schema, r.name)]));
    for (const r of rels.rows) {
      this.relations.set(key(r.schema, r.name), { kind: r.kind, valid: r.valid, table: r.tableOid ? (byOid.get(r.tableOid) ?? null) : null, live: true });
    }
    const types = await this.db.query<{ schema: string; name: string; kind: string; labels: string[] | null }>(TYPES_SQL, [[schema]]);
    for (const t of types.rows) {
      this.types.set(key(t.schema, t.name), { kind: t.kind, live: true });
      if (t.kind === 'e') {
        this.enums.set(key(t.schema, t.name), { schema: t.schema, name: t.name, live: qualified([t.schema, t.name]), labels: t.labels ?? [] });
      }
    }
  }

  /** The schema a name of the files lives in: its own, or the one Prisma's search_path gives. */
  schemaOf(schemaname: string | undefined): string {
    return schemaname || this.schema;
  }

  /** The table a name of the files refers to now, loading a live one from the catalog; undefined if none. */
  async table(schemaname: string | undefined, name: string): Promise<TableState | undefined> {
    const schema = this.schemaOf(schemaname);
    await this.load(schema);
    const k = key(schema, name);
    const known = this.tables.get(k);
    if (known || this.gone.has(k)) return known;
    const rel = this.relations.get(k);
    if (!rel?.live || !['r', 'p'].includes(rel.kind)) return undefined;
    const oidRow = await this.db.query<{ oid: string }>(`SELECT to_regclass($1)::oid::int8::text AS oid`, [qualified([schema, name])]);
    const oid = oidRow.rows[0]?.oid;
    if (!oid) return undefined;
    const cols = await this.db.query<Column>(COLUMNS_SQL, [oid]);
    const pk = await this.db.query<{ name: string }>(PRIMARY_KEY_SQL, [oid]);
    const sql = qualified([schema, name]);
    const state: TableState = {
      schema,
      name,
      live: { oid, sql },
      columns: cols.rows,
      primaryKey: pk.rows.map((r) => r.name),
      rows: liveRowsSql(
        sql,
        cols.rows.map((c) => c.name),
      ),
      empty: false,
      changed: false,
      approx: null,
      broken: null,
      touched: [],
    };
    this.tables.set(k, state);
    return state;
  }

  /** The state of a table only if the files changed it (otherwise the live table can be read as it is). */
  changedTable(schemaname: string | undefined, name: string): TableState | undefined {
    const t = this.tables.get(key(this.schemaOf(schemaname), name));
    return t?.changed ? t : undefined;
  }

  createTable(schema: string, name: string, columns: Column[], primaryKey: string[]): TableState {
    const state: TableState = {
      schema,
      name,
      live: null,
      columns,
      primaryKey,
      rows: emptyRowsSql(columns),
      empty: true,
      changed: true,
      approx: null,
      broken: null,
      touched: [],
    };
    this.tables.set(key(schema, name), state);
    this.relations.set(key(schema, name), { kind: 'r', valid: null, table: null, live: false });
    return state;
  }

  dropTable(t: TableState): void {
    const k = key(t.schema, t.name);
    this.tables.delete(k);
    this.gone.add(k);
    this.relations.delete(k);
    for (const [rk, r] of this.relations) if (r.table === k) this.relations.delete(rk);
  }

  renameTable(t: TableState, to: string): void {
    const from = key(t.schema, t.name);
    this.tables.delete(from);
    this.gone.add(from);
    const rel = this.relations.get(from);
    this.relations.delete(from);
    t.name = to;
    t.changed = true;
    const k = key(t.schema, to);
    this.tables.set(k, t);
    this.gone.delete(k);
    if (rel) this.relations.set(k, rel);
    for (const r of this.relations.values()) if (r.table === from) r.table = k;
  }

  relation(schema: string, name: string): RelationEntry | undefined {
    return this.relations.get(key(schema, name));
  }

  addIndex(schema: string, name: string, table: TableState): void {
    this.relations.set(key(schema, name), { kind: 'i', valid: true, table: key(table.schema, table.name), live: false });
  }

  dropRelation(schema: string, name: string): void {
    this.relations.delete(key(schema, name));
  }

  renameRelation(schema: string, name: string, to: string): void {
    const r = this.relations.get(key(schema, name));
    if (!r) return;
    this.relations.delete(key(schema, name));
    this.relations.set(key(schema, to), r);
  }

  enumOf(schemaname: string | undefined, name: string): EnumState | undefined {
    return this.enums.get(key(this.schemaOf(schemaname), name));
  }

  typeTaken(schema: string, name: string): boolean {
    return this.types.has(key(schema, name));
  }

  createEnum(schema: string, name: string, labels: string[]): void {
    this.enums.set(key(schema, name), { schema, name, live: null, labels });
    this.types.set(key(schema, name), { kind: 'e', live: false });
  }

  renameType(schema: string, name: string, to: string): void {
    const e = this.enums.get(key(schema, name));
    const t = this.types.get(key(schema, name));
    this.enums.delete(key(schema, name));
    this.types.delete(key(schema, name));
    if (e) this.enums.set(key(schema, to), { ...e, name: to });
    if (t) this.types.set(key(schema, to), t);
  }

  dropType(schema: string, name: string): void {
    this.enums.delete(key(schema, name));
    this.types.delete(key(schema, name));
  }

  /**
   * How a type name of the files reads in the snapshot: an enum the files create is modelled as text, a
   * live enum renamed by the files by its live name; null when the name needs no change.
   */
  typeInSnapshot(names: readonly string[]): string | null {
    const [schemaname, name] = names.length > 1 ? [names[names.length - 2], names[names.length - 1]!] : [undefined, names[0]!];
    if (schemaname === 'pg_catalog') return null;
    const e = this.enumOf(schemaname, name);
    if (!e) return null;
    if (!e.live) return 'text';
    return e.live === qualified([e.schema, name]) ? null : e.live;
  }
}
