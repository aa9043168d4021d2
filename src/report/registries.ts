// The troubleshooting guide's sources: the error-code registry, the spec's checks, and the registry of
// built-in checks when the checks stage provides one (read generically: code, meaning, fix).
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

/** Module paths (relative to this file) where the checks stage may keep its registry. */
const CHECK_REGISTRY_MODULES = ['../checks/registry.ts', '../checks/index.ts'];

function pick(o: Record<string, unknown>, keys: string[]): string | undefined {
  for (const k of keys) if (typeof o[k] === 'string' && o[k]) return o[k] as string;
  return undefined;
}

/** Entries of the built-in checks registry, if one exists; [] otherwise. Never throws. */
export async function builtInChecks(): Promise<TroubleEntry[]> {
  for (const rel of CHECK_REGISTRY_MODULES) {
    let mod: Record<string, unknown>;
    try {
      // a relative specifier, so that the build rewrites .ts to .js (a file URL would be left as it is)
      mod = (await import(rel)) as Record<string, unknown>;
    } catch {
      continue;
    }
    const entries: TroubleEntry[] = [];
    for (const v of Object.values(mod)) {
      const list = Array.isArray(v) ? v : v && typeof v === 'object' && !('code' in v) ? Object.values(v) : [];
      for (const e of list) {
        if (!e || typeof e !== 'object') continue;
        const o = e as Record<string, unknown>;
        // a check code, or a built-in check kind (orphans, unique-after …)
        const code = pick(o, ['code', 'kind']);
        const meaning = pick(o, ['meaning', 'description', 'looksFor', 'message', 'title', 'summary']);
        if (!code || !meaning || entries.some((x) => x.code === code)) continue;
        entries.push({ code, kind: pick(o, ['severity', 'defaultSeverity']) ?? 'check', meaning, whatToDo: pick(o, ['fix', 'defaultFix', 'whatToDo', 'remedy']) ?? '' });
      }
    }
    if (entries.length) return entries;
  }
  return [];
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
      return c.message ?? `rows that would violate unique index ${c.index} once step "${c.step}" wrote its projected values (projected values for the rows it changes, current values for the rest)`;
    case 'not-null':
      return c.message ?? `NULLs in ${c.table}.${c.column}, which is about to become NOT NULL${c.step ? ` (after step "${c.step}")` : ''}`;
  }
}

export function checkEntries(checks: readonly Check[]): TroubleEntry[] {
  const entries = checks.flatMap((c) => (c.kind === 'classify'
    ? c.categories.map((x) => ({ code: x.code, severity: x.severity, meaning: x.message, fix: x.fix }))
    : [{ code: c.code, severity: c.severity, meaning: checkMeaning(c), fix: c.fix }]));
  return entries.map((e) => ({
    code: e.code,
    kind: e.severity,
    meaning: e.meaning,
    whatToDo: e.fix ?? {
      error: 'Fix the offending rows before applying: this check blocks the run.',
      warn: 'Review the sample rows; they are reported and left unchanged.',
      info: 'Nothing to do: it counts what the migration will change.',
    }[e.severity],
  }));
}
