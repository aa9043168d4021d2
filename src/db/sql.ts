// The one place identifiers are quoted. Every table, column and index name goes through ident().

/** Quotes one identifier: "a""b" for a"b. */
export function ident(name: string): string {
  if (name.includes('\u0000')) throw new Error('identifier contains a NUL character');
  return `"${name.replace(/"/g, '""')}"`;
}

/** A table name `schema.table` or `table`, each part quoted. A name with a dot needs the array form. */
export function qualified(name: string | readonly [string, string]): string {
  if (Array.isArray(name)) return `${ident(name[0])}.${ident(name[1])}`;
  const s = name as string;
  const dot = s.indexOf('.');
  return dot < 0 ? ident(s) : `${ident(s.slice(0, dot))}.${ident(s.slice(dot + 1))}`;
}

/** A string literal for the rare place a parameter cannot be used (DDL, generated scripts). */
export function literal(value: string): string {
  if (value.includes('\u0000')) throw new Error('string contains a NUL character');
  return `'${value.replace(/'/g, "''")}'`;
}

/**
 * Session settings that make `t::text` (and so checksums) independent of the user's configuration.
 * Set with SET LOCAL inside the transaction that computes a checksum.
 */
export const PINNED_TEXT_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  IntervalStyle: 'postgres',
  extra_float_digits: '1',
  bytea_output: 'hex',
});

export function pinnedSettingsSql(): string {
  return Object.entries(PINNED_TEXT_SETTINGS)
    .map(([k, v]) => `SET LOCAL ${k} = ${literal(v)};`)
    .join(' ');
}

/** Hands a REPEATABLE READ transaction's snapshot to other sessions (backup reader, parallel checks). */
export const EXPORT_SNAPSHOT_SQL = 'SELECT pg_export_snapshot() AS id';
/** In another session, first in its REPEATABLE READ transaction: see exactly the exporter's data. */
export const importSnapshotSql = (id: string) => `SET TRANSACTION SNAPSHOT ${literal(id)}`;

/**
 * A timestamptz as ISO 8601 UTC text (2026-12-01T13:21:46.123Z) whatever the session's TimeZone: the one
 * form belay prints, in JSON and reports alike (`::text` would follow the session: `+00`, `+01`, …).
 */
export function isoUtc(expr: string): string {
  return `to_char(${expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
}
