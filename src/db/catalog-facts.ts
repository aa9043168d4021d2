// What the database already knows about a table a step writes, read from pg_catalog once and returned
// as plain data: keys, unique indexes and exclusion constraints, foreign keys from and into the table
// with their actions, CHECKs and domains, NOT NULL, triggers and what their functions write, column
// types and collations. Checks, plan and runbook turn these facts into predictions and warnings.
import { scan } from 'libpg-query';
import { column, tableInfo } from './catalog.ts';
import { BUILTIN_FUNCTIONS_SQL, CHECKS_SQL, COLUMNS_SQL, FOREIGN_KEYS_SQL, INDEXES_SQL, TABLE_SQL, TRIGGERS_SQL, TYPES_SQL } from './catalog-sql.ts';
import type { Db } from './connection.ts';
import { ident } from './sql.ts';
import { readTriggerBody, type TriggerBody } from './trigger-body.ts';

export interface TableRef {
  schema: string;
  name: string;
  /** Quoted and qualified, for SQL. */
  sqlName: string;
}

export interface CollationFact {
  /** Quoted and qualified ("pg_catalog"."default", "public"."ci"). */
  sqlName: string;
  name: string;
  /** Who sorts and compares: the C library, ICU, PostgreSQL's builtin provider; default resolved to the database's. */
  provider: 'libc' | 'icu' | 'builtin';
  /** The locale (e.g. en-US-u-ks-level2, C.UTF-8); NULL when the catalog has none. */
  locale: string | null;
  /** false: equal values can differ in bytes (case-insensitive ICU): = is not byte equality. */
  deterministic: boolean;
}

export interface TypeFact {
  /** format_type() of the type, quoted as SQL needs it ("SchedulingType", integer[]). */
  name: string;
  schema: string;
  kind: 'base' | 'array' | 'enum' | 'domain' | 'composite' | 'range' | 'multirange' | 'pseudo';
  /** array: the element type. */
  element?: TypeFact;
  /** enum: labels in sort order. */
  labels?: string[];
  /** domain: the type it narrows, its NOT NULL and the CHECKs of it and of every domain below it. */
  domain?: { base: TypeFact; notNull: boolean; checks: NamedDefinition[] };
  /** composite: its attributes. */
  attributes?: Array<{ name: string; type: string }>;
}

export interface NamedDefinition {
  name: string;
  /** As pg_get_constraintdef prints it: CHECK ((VALUE > 0)). */
  definition: string;
  validated: boolean;
}

export interface ColumnFact {
  name: string;
  attnum: number;
  /** format_type() with modifiers (character varying(255), numeric(30,10)). */
  type: string;
  typeInfo: TypeFact;
  /** The step writes this column. */
  written: boolean;
  /** attnotnull (a domain's NOT NULL is in typeInfo.domain). */
  notNull: boolean;
  default: string | null;
  generated: 'stored' | 'virtual' | null;
  identity: 'always' | 'by default' | null;
  /** NULL for types that have no collation. */
  collation: CollationFact | null;
}

/** A key column of an index: a column, or an expression over the table's columns. */
export interface IndexTerm {
  /** The column, or NULL for an expression. */
  column: string | null;
  /** SQL over the table's unqualified columns: the quoted column or the expression. */
  sql: string;
  /** The collation the index compares this term with (quoted, qualified); NULL for types without one. */
  collation: string | null;
  /** The index's collation is the column's own (false for expressions and for a COLLATE of the index's own). */
  columnCollation: boolean;
  /** Exclusion constraints: the operator that must not hold between two rows (&&, =). */
  operator: string | null;
}

export interface IndexFact {
  name: string;
  /** The constraint this index backs, if any. */
  constraint: { name: string; type: 'primary key' | 'unique' | 'exclusion' } | null;
  unique: boolean;
  method: string;
  terms: IndexTerm[];
  /** INCLUDE columns (carried, not compared). */
  include: string[];
  /** Partial index: the predicate over unqualified columns. */
  predicate: string | null;
  nullsNotDistinct: boolean;
  /** The constraint is checked at commit (or can be set so): a batch fails at its COMMIT, not its UPDATE. */
  deferrable: boolean;
  initiallyDeferred: boolean;
  /** indisvalid: a failed CREATE INDEX CONCURRENTLY leaves an index that is not valid (it may still be maintained). */
  valid: boolean;
  /** indisready: the index is maintained (and, if unique, enforced) on writes. */
  ready: boolean;
  /** Every column the keys, expressions and predicate read. */
  reads: string[];
  /** reads ∩ the written columns. */
  readsWritten: string[];
  /** pg_get_indexdef. */
  definition: string;
}

export type FkAction = 'no action' | 'restrict' | 'cascade' | 'set null' | 'set default';

export interface ForeignKeyFact {
  name: string;
  child: TableRef;
  childColumns: string[];
  parent: TableRef;
  parentColumns: string[];
  onUpdate: FkAction;
  onDelete: FkAction;
  /** ON DELETE SET NULL (a, b) / SET DEFAULT (a, b): only these columns (PG 15+); NULL = all referencing columns. */
  onDeleteSetColumns: string[] | null;
  match: 'simple' | 'full' | 'partial';
  deferrable: boolean;
  initiallyDeferred: boolean;
  /** false: NOT VALID, existing rows were never checked. */
  validated: boolean;
  /** The child has an index led by the referencing columns: a cascade or a parent's delete does not scan it per row. */
  childIndexed: boolean;
  /** Referencing columns written by the step (from-facts), or referenced columns written by it (into-facts). */
  writtenColumns: string[];
}

export interface CheckConstraintFact {
  name: string;
  /** CHECK ((length > 0)). */
  definition: string;
  /** The expression alone, over unqualified columns. */
  expression: string;
  reads: string[];
  readsWritten: string[];
  validated: boolean;
  noInherit: boolean;
}

export interface TriggerFact {
  name: string;
  timing: 'before' | 'after' | 'instead of';
  level: 'row' | 'statement';
  events: Array<'insert' | 'update' | 'delete' | 'truncate'>;
  /** UPDATE OF columns; NULL when any UPDATE fires it. */
  updateOf: string[] | null;
  /** The WHEN condition (over OLD and NEW), or NULL. */
  when: string | null;
  /** tgenabled: origin (default sessions), always, replica (only with session_replication_role = replica), disabled. */
  enabled: 'origin' | 'always' | 'replica' | 'disabled';
  /** A step's UPDATE of the written columns fires it in a default session (its WHEN aside). */
  firesOnStepUpdate: boolean;
  /** A constraint trigger (CREATE CONSTRAINT TRIGGER): fires at the end of the statement or, deferred, at commit. */
  constraint: { deferrable: boolean; initiallyDeferred: boolean } | null;
  function: { schema: string; name: string; signature: string; language: string; securityDefiner: boolean; args: string[] };
  /** What the function's body does, as far as it can be read. */
  body: TriggerBody;
  /** yes: its SQL writes another table; unknown: dynamic SQL, calls to non-built-in functions, or an unreadable body. */
  mayWriteOtherTables: 'yes' | 'no' | 'unknown';
  definition: string;
}

export interface KeyFact {
  /** The index (and constraint, for a primary key or unique constraint) that makes it a key. */
  index: string;
  constraint: string | null;
  columns: string[];
  deferrable: boolean;
}

export interface CatalogFacts {
  table: TableRef & { kind: 'table' | 'partitioned table' | 'other'; rowSecurity: boolean };
  /** The written columns, as given. */
  written: string[];
  /** server_version_num (150020, 180006). */
  serverVersion: number;
  /** Every column, in order. */
  columns: ColumnFact[];
  primaryKey: KeyFact | null;
  /** The primary key and every unique, non-partial index on plain NOT NULL columns (composite included): rows can be told apart by each. */
  keys: KeyFact[];
  /** Unique indexes (and the unique and primary-key constraints they back) that read a written column. */
  uniqueIndexes: IndexFact[];
  /** Exclusion constraints that read a written column. */
  exclusions: IndexFact[];
  /** Foreign keys whose referencing columns include a written column: the new value must exist in the parent. */
  foreignKeysFrom: ForeignKeyFact[];
  /** Every foreign key into this table (they reference its keys); writtenColumns says which reference written columns. */
  foreignKeysInto: ForeignKeyFact[];
  /** CHECK constraints that read a written column. */
  checks: CheckConstraintFact[];
  /** Every user trigger on the table (the internal ones that enforce foreign keys are the foreign keys). */
  triggers: TriggerFact[];
}

const PROVIDERS: Readonly<Record<string, CollationFact['provider']>> = { c: 'libc', i: 'icu', b: 'builtin' };
const TYPE_KINDS: Readonly<Record<string, TypeFact['kind']>> = { b: 'base', e: 'enum', d: 'domain', c: 'composite', r: 'range', m: 'multirange', p: 'pseudo' };
const FK_ACTIONS: Readonly<Record<string, FkAction>> = { a: 'no action', r: 'restrict', c: 'cascade', n: 'set null', d: 'set default' };
const FK_MATCH: Readonly<Record<string, ForeignKeyFact['match']>> = { s: 'simple', f: 'full', p: 'partial' };
const ENABLED: Readonly<Record<string, TriggerFact['enabled']>> = { O: 'origin', A: 'always', R: 'replica', D: 'disabled' };
const CONSTRAINT_TYPES: Readonly<Record<string, NonNullable<IndexFact['constraint']>['type']>> = { p: 'primary key', u: 'unique', x: 'exclusion' };

/**
 * The catalog facts of `table` for a step that writes `writes` (both checked: SpecError naming a missing
 * table or column). A handful of catalog queries, one session, no writes.
 */
export async function catalogFacts(db: Db, table: string, writes: readonly string[]): Promise<CatalogFacts> {
  const info = await tableInfo(db, table);
  for (const w of writes) column(info, w, 'writes');
  const written = new Set(writes);
  const t = (await db.query<TableRow>(TABLE_SQL, [info.oid])).rows[0]!;
  const defaultCollation = { provider: PROVIDERS[t.defaultProvider] ?? 'libc', locale: t.defaultLocale };
  const types = typeFacts((await db.query<TypeRow>(TYPES_SQL, [info.oid])).rows);
  const columns = (await db.query<ColumnRow>(COLUMNS_SQL, [info.oid])).rows.map(
    (c): ColumnFact => ({
      name: c.name,
      attnum: c.attnum,
      type: c.type,
      typeInfo: types(c.typeOid),
      written: written.has(c.name),
      notNull: c.notNull,
      default: c.default,
      generated: c.generated === 's' ? 'stored' : c.generated === 'v' ? 'virtual' : null,
      identity: c.identity === 'a' ? 'always' : c.identity === 'd' ? 'by default' : null,
      collation:
        c.collationName === null
          ? null
          : {
              sqlName: `${ident(c.collationSchema!)}.${ident(c.collationName)}`,
              name: c.collationName,
              ...(c.collationProvider === 'd' ? defaultCollation : { provider: PROVIDERS[c.collationProvider!] ?? 'libc', locale: c.collationLocale }),
              deterministic: c.collationDeterministic !== false,
            },
    }),
  );
  const indexes = await readIndexes(db, info.oid, writes);
  const notNull = new Set(columns.filter((c) => c.notNull).map((c) => c.name));
  const keyOf = (ix: IndexFact): KeyFact => ({
    index: ix.name,
    constraint: ix.constraint?.name ?? null,
    columns: ix.terms.map((x) => x.column!),
    deferrable: ix.deferrable,
  });
  const pk = indexes.find((ix) => ix.constraint?.type === 'primary key');
  const keys = indexes
    .filter((ix) => ix.unique && ix.ready && ix.predicate === null && ix.terms.every((x) => x.column !== null && notNull.has(x.column)))
    .sort((a, b) => Number(b === pk) - Number(a === pk) || a.terms.length - b.terms.length || a.name.localeCompare(b.name))
    .map(keyOf);
  const touches = (ix: IndexFact) => ix.readsWritten.length > 0;
  const fks = (await db.query<ForeignKeyRow>(FOREIGN_KEYS_SQL, [info.oid])).rows;
  const fk = (r: ForeignKeyRow, side: 'child' | 'parent'): ForeignKeyFact => {
    const child = { schema: r.childSchema, name: r.childName, sqlName: `${ident(r.childSchema)}.${ident(r.childName)}` };
    const parent = { schema: r.parentSchema, name: r.parentName, sqlName: `${ident(r.parentSchema)}.${ident(r.parentName)}` };
    const own = side === 'child' ? r.childColumns : r.parentColumns;
    return {
      name: r.name,
      child,
      childColumns: r.childColumns,
      parent,
      parentColumns: r.parentColumns,
      onUpdate: FK_ACTIONS[r.onUpdate] ?? 'no action',
      onDelete: FK_ACTIONS[r.onDelete] ?? 'no action',
      onDeleteSetColumns: r.onDeleteSetColumns,
      match: FK_MATCH[r.match] ?? 'simple',
      deferrable: r.deferrable,
      initiallyDeferred: r.initiallyDeferred,
      validated: r.validated,
      childIndexed: r.childIndexed,
      writtenColumns: own.filter((c) => written.has(c)),
    };
  };
  const checks = (await db.query<CheckRow>(CHECKS_SQL, [info.oid])).rows
    .map((c): CheckConstraintFact => ({ ...c, readsWritten: c.reads.filter((x) => written.has(x)) }))
    .filter((c) => c.readsWritten.length > 0);
  return {
    table: {
      schema: t.schema,
      name: t.name,
      sqlName: info.sqlName,
      kind: t.kind === 'r' ? 'table' : t.kind === 'p' ? 'partitioned table' : 'other',
      rowSecurity: t.rowSecurity,
    },
    written: [...writes],
    serverVersion: t.serverVersion,
    columns,
    primaryKey: pk ? keyOf(pk) : null,
    keys,
    uniqueIndexes: indexes.filter((ix) => ix.unique && touches(ix)),
    exclusions: indexes.filter((ix) => ix.constraint?.type === 'exclusion' && touches(ix)),
    foreignKeysFrom: fks
      .filter((r) => r.fromTable)
      .map((r) => fk(r, 'child'))
      .filter((f) => f.writtenColumns.length > 0),
    foreignKeysInto: fks.filter((r) => r.intoTable).map((r) => fk(r, 'parent')),
    checks,
    triggers: await triggerFacts(db, info.oid, t, writes),
  };
}

/** Every index of a table (by oid), unique or not, with readsWritten against `writes`. */
export async function readIndexes(db: Db, oid: number, writes: readonly string[] = []): Promise<IndexFact[]> {
  const rows = (await db.query<IndexRow>(INDEXES_SQL, [oid])).rows;
  return rows.map((r) => ({
    name: r.name,
    constraint: r.constraintName === null ? null : { name: r.constraintName, type: CONSTRAINT_TYPES[r.constraintType!]! },
    unique: r.unique,
    method: r.method,
    terms: r.terms.map((x) => ({
      column: x.column,
      sql: x.column === null ? x.sql : ident(x.column),
      collation: x.collation && `${ident(x.collation.schema)}.${ident(x.collation.name)}`,
      columnCollation: x.column !== null && x.columnCollation,
      operator: x.operator,
    })),
    include: r.include,
    predicate: r.predicate,
    nullsNotDistinct: !!r.nullsNotDistinct,
    deferrable: r.deferrable,
    initiallyDeferred: r.initiallyDeferred,
    valid: r.valid,
    ready: r.ready,
    reads: r.reads,
    readsWritten: r.reads.filter((c) => writes.includes(c)),
    definition: r.definition,
  }));
}

async function triggerFacts(db: Db, oid: number, t: TableRow, writes: readonly string[]): Promise<TriggerFact[]> {
  const rows = (await db.query<TriggerRow>(TRIGGERS_SQL, [oid])).rows;
  const isBuiltin = async (names: string[]) => new Set((await db.query<{ name: string }>(BUILTIN_FUNCTIONS_SQL, [names])).rows.map((x) => x.name));
  const out: TriggerFact[] = [];
  for (const r of rows) {
    // tgtype bits (pg_trigger.h): ROW 1, BEFORE 2, INSERT 4, DELETE 8, UPDATE 16, TRUNCATE 32, INSTEAD 64
    const events = (['insert', 'delete', 'update', 'truncate'] as const).filter((_, i) => r.type & (4 << i));
    const updateOf = r.updateOf.length ? r.updateOf : null;
    const enabled = ENABLED[r.enabled] ?? 'origin';
    const args = triggerArgs(r.args);
    const fn = { schema: r.functionSchema, name: r.functionName, signature: r.signature, language: r.language, securityDefiner: r.securityDefiner, args };
    const body = await readTriggerBody({ ...fn, source: r.source }, isBuiltin);
    const own = new Set([t.name, `${t.schema}.${t.name}`]);
    const others = body.writesTables.filter((x) => !own.has(x));
    out.push({
      name: r.name,
      timing: r.type & 2 ? 'before' : r.type & 64 ? 'instead of' : 'after',
      level: r.type & 1 ? 'row' : 'statement',
      events: [...events].sort((a, b) => EVENT_ORDER.indexOf(a) - EVENT_ORDER.indexOf(b)),
      updateOf,
      when: await whenClause(r.definition),
      enabled,
      firesOnStepUpdate: events.includes('update') && (enabled === 'origin' || enabled === 'always') && (!updateOf || updateOf.some((c) => writes.includes(c))),
      constraint: r.isConstraint ? { deferrable: r.deferrable, initiallyDeferred: r.initiallyDeferred } : null,
      function: fn,
      body,
      mayWriteOtherTables: others.length > 0 ? 'yes' : body.unreadable || body.dynamicSql || body.calls.length > 0 ? 'unknown' : 'no',
      definition: r.definition,
    });
  }
  return out;
}

const EVENT_ORDER = ['insert', 'update', 'delete', 'truncate'];

/** tgargs: each argument NUL-terminated. */
function triggerArgs(hex: string): string[] {
  if (!hex) return [];
  const parts = Buffer.from(hex, 'hex').toString('utf8').split('\0');
  parts.pop();
  return parts;
}

/** The WHEN condition of pg_get_triggerdef's text: the parenthesized tokens after WHEN, found by the SQL scanner. */
async function whenClause(definition: string): Promise<string | null> {
  const { tokens } = await scan(definition);
  const at = tokens.findIndex((x) => x.keywordName === 'WHEN' || x.text.toUpperCase() === 'WHEN');
  if (at < 0 || tokens[at + 1]?.text !== '(') return null;
  let depth = 0;
  for (let i = at + 1; i < tokens.length; i++) {
    const x = tokens[i]!;
    if (x.text === '(') depth++;
    else if (x.text === ')' && --depth === 0) return definition.slice(tokens[at + 1]!.end, x.start).trim();
  }
  return null;
}

function typeFacts(rows: TypeRow[]): (oid: string) => TypeFact {
  const byOid = new Map(rows.map((r) => [r.oid, r]));
  const made = new Map<string, TypeFact>();
  const build = (oid: string): TypeFact => {
    const hit = made.get(oid);
    if (hit) return hit;
    const r = byOid.get(oid);
    if (!r) return { name: `oid ${oid}`, schema: '', kind: 'base' };
    const fact: TypeFact = { name: r.name, schema: r.schema, kind: r.element ? 'array' : (TYPE_KINDS[r.typtype] ?? 'base') };
    made.set(oid, fact);
    if (r.element) fact.element = build(r.element);
    if (r.labels) fact.labels = r.labels;
    if (r.attributes) fact.attributes = r.attributes;
    if (r.base) {
      const base = build(r.base);
      // the checks of every domain below apply too
      fact.domain = { base, notNull: r.notNull || !!base.domain?.notNull, checks: [...(r.checks ?? []), ...(base.domain?.checks ?? [])] };
    }
    return fact;
  };
  return build;
}

interface TableRow {
  schema: string;
  name: string;
  kind: string;
  rowSecurity: boolean;
  serverVersion: number;
  defaultProvider: string;
  defaultLocale: string | null;
}
interface TypeRow {
  oid: string;
  name: string;
  schema: string;
  typtype: string;
  element: string | null;
  base: string | null;
  baseName: string;
  notNull: boolean;
  labels: string[] | null;
  checks: NamedDefinition[] | null;
  attributes: Array<{ name: string; type: string }> | null;
}
interface ColumnRow {
  name: string;
  attnum: number;
  type: string;
  typeOid: string;
  dims: number;
  notNull: boolean;
  default: string | null;
  generated: string | null;
  identity: string | null;
  collationName: string | null;
  collationSchema: string | null;
  collationProvider: string | null;
  collationDeterministic: boolean | null;
  collationLocale: string | null;
}
interface IndexRow {
  name: string;
  unique: boolean;
  primary: boolean;
  valid: boolean;
  ready: boolean;
  nullsNotDistinct: boolean | null;
  method: string;
  definition: string;
  predicate: string | null;
  constraintName: string | null;
  constraintType: string | null;
  deferrable: boolean;
  initiallyDeferred: boolean;
  terms: Array<{ column: string | null; sql: string; collation: { schema: string; name: string } | null; columnCollation: boolean; operator: string | null }>;
  include: string[];
  reads: string[];
}
interface ForeignKeyRow {
  name: string;
  fromTable: boolean;
  intoTable: boolean;
  childSchema: string;
  childName: string;
  parentSchema: string;
  parentName: string;
  childColumns: string[];
  parentColumns: string[];
  onDeleteSetColumns: string[] | null;
  onUpdate: string;
  onDelete: string;
  match: string;
  deferrable: boolean;
  initiallyDeferred: boolean;
  validated: boolean;
  childIndexed: boolean;
}
interface CheckRow {
  name: string;
  definition: string;
  expression: string;
  validated: boolean;
  noInherit: boolean;
  reads: string[];
}
interface TriggerRow {
  name: string;
  type: number;
  enabled: string;
  updateOf: string[];
  definition: string;
  isConstraint: boolean;
  deferrable: boolean;
  initiallyDeferred: boolean;
  args: string;
  functionSchema: string;
  functionName: string;
  signature: string;
  language: string;
  securityDefiner: boolean;
  source: string | null;
}
