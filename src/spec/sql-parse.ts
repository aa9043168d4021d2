// Every SQL text of a spec is parsed with the real PostgreSQL parser (libpg-query) on load,
// so a typo is reported with its field and position before anything touches the database.
import { parse } from 'libpg-query';
import { SpecError } from '../errors.ts';
import type { Migration } from './define.ts';

export interface SqlField {
  field: string;
  sql: string;
  /** A single statement is required (projections, checks, verifications). */
  single: boolean;
}

export function sqlFieldsOf(spec: Migration): SqlField[] {
  const out: SqlField[] = [];
  for (const [i, c] of spec.checks.entries())
    if (c.kind === 'sql' || c.kind === 'classify') out.push({ field: `checks.${i}.sql (${c.code})`, sql: c.sql, single: true });
  for (const [i, s] of spec.steps.entries()) {
    if (s.kind === 'batched') {
      if (s.decide) out.push({ field: `steps.${i}.decide (${s.name})`, sql: s.decide, single: true });
      if (s.projection) out.push({ field: `steps.${i}.projection (${s.name})`, sql: s.projection, single: true });
      if (s.wholeTableProjection) out.push({ field: `steps.${i}.wholeTableProjection (${s.name})`, sql: s.wholeTableProjection, single: true });
      if (s.verify) out.push({ field: `steps.${i}.verify (${s.name})`, sql: s.verify, single: true });
    } else {
      out.push({ field: `steps.${i}.up (${s.name})`, sql: s.up, single: false });
      if (s.down) out.push({ field: `steps.${i}.down (${s.name})`, sql: s.down, single: false });
    }
  }
  for (const [i, v] of spec.verify.entries()) out.push({ field: `verify.${i}.sql (${v.name})`, sql: v.sql, single: true });
  for (const [i, m] of spec.monitor.entries()) out.push({ field: `monitor.${i}.sql (${m.name})`, sql: m.sql, single: true });
  for (const [i, a] of spec.abort.entries()) if (a.sql) out.push({ field: `abort.${i}.sql (${a.when})`, sql: a.sql, single: true });
  return out;
}

export async function validateSql(spec: Migration, file: string): Promise<void> {
  for (const f of sqlFieldsOf(spec)) {
    let tree: { stmts?: Array<{ stmt: Record<string, unknown> }> };
    try {
      tree = (await parse(f.sql)) as typeof tree;
    } catch (err) {
      const pos = (err as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition;
      throw new SpecError(`${file}: SQL of ${f.field} does not parse: ${(err as Error).message}${pos === undefined ? '' : `\n${pointAt(f.sql, pos)}`}`, {
        file,
        field: f.field,
        expected: 'valid PostgreSQL',
        cause: err,
      });
    }
    const stmts = tree.stmts ?? [];
    if (f.single && stmts.length !== 1) {
      throw new SpecError(`${file}: ${f.field} must be exactly one statement, found ${stmts.length}`, {
        file,
        field: f.field,
        expected: 'one SELECT statement',
      });
    }
    if (f.single && !('SelectStmt' in (stmts[0]?.stmt ?? {}))) {
      throw new SpecError(`${file}: ${f.field} must be a SELECT (it returns rows); found ${Object.keys(stmts[0]!.stmt)[0]}`, {
        file,
        field: f.field,
        expected: 'a SELECT statement',
      });
    }
  }
}

/** "line 3, column 7" and the line with a caret under the position (0-based character offset). */
export function pointAt(sql: string, pos: number): string {
  const before = sql.slice(0, pos);
  const lineNo = before.split('\n').length;
  const col = pos - before.lastIndexOf('\n');
  const line = sql.split('\n')[lineNo - 1] ?? '';
  return `  at line ${lineNo}, column ${col}:\n  ${line}\n  ${' '.repeat(Math.max(0, col - 1))}^`;
}
