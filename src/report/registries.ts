// The troubleshooting guide's sources: the error-code registry and the spec's checks (the built-in
// check kinds come with the report's sources).
import { ERROR_CODES } from '../error-codes.ts';
import type { Check } from '../spec/define.ts';

export interface TroubleEntry {
  code: string;
  /** 'error' for BelayError codes, else the check's severity. */
  kind: string;
  meaning: string;
  whatToDo: string;
  exitCode?: number;
}

export function errorEntries(): TroubleEntry[] {
  return ERROR_CODES.map((e) => ({ code: e.code, kind: 'error', meaning: e.meaning, whatToDo: e.whatToDo, exitCode: e.exitCode }));
}

/** What a spec check looks for, in words. */
export function checkMeaning(c: Check): string {
  switch (c.kind) {
    case 'sql':
      return c.message;
    case 'classify':
      return `sorts rows into ${c.categories.length} categories by "${c.column}": ${c.categories.map((x) => x.code).join(', ')}`;
    case 'orphans':
      return c.message ?? `rows of ${c.table}.${c.column} whose value is missing from ${c.references.table}.${c.references.column}`;
    case 'unique-after':
      return (
        c.message ??
        `rows that would violate unique index ${c.index} once step "${c.step}" wrote its projected values (projected values for the rows it changes, current values for the rest)`
      );
    case 'not-null':
      return c.message ?? `NULLs in ${c.table}.${c.column}, which is about to become NOT NULL${c.step ? ` (after step "${c.step}")` : ''}`;
  }
}

export function checkEntries(checks: readonly Check[]): TroubleEntry[] {
  const entries = checks.flatMap((c) =>
    c.kind === 'classify'
      ? c.categories.map((x) => ({ code: x.code, severity: x.severity, meaning: x.message, fix: x.fix }))
      : [{ code: c.code, severity: c.severity, meaning: checkMeaning(c), fix: c.fix }],
  );
  return entries.map((e) => ({
    code: e.code,
    kind: e.severity,
    meaning: e.meaning,
    whatToDo:
      e.fix ??
      {
        error: 'Fix the offending rows before applying: this check blocks the run.',
        warn: 'Review the sample rows; they are reported and left unchanged.',
        info: 'Nothing to do: it counts what the migration will change.',
      }[e.severity],
  }));
}
