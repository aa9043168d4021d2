// Small Markdown and number-formatting helpers shared by the runbook and the report.

/** A table cell: pipes escaped, newlines folded, objects as compact JSON. */
export function cell(v: unknown): string {
  if (v === null || v === undefined) return '';
  const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
  return s
    .replace(/\\/g, '\\\\')
    .replace(/\|/g, '\\|')
    .replace(/\r?\n\s*/g, ' ');
}

export function mdTable(headers: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  if (rows.length === 0) return '_none_';
  const head = `| ${headers.join(' | ')} |`;
  const sep = `| ${headers.map(() => '---').join(' | ')} |`;
  return [head, sep, ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`)].join('\n');
}

/** A fenced block whose fence is longer than any backtick run inside it. */
export function fence(text: string, lang = ''): string {
  const longest = Math.max(2, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const f = '`'.repeat(longest + 1);
  return `${f}${lang}\n${dedent(text).trim()}\n${f}`;
}

/** Inline code that survives backticks inside. */
export function code(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((m) => m.length));
  const f = '`'.repeat(longest + 1);
  return longest > 0 ? `${f} ${text} ${f}` : `${f}${text}${f}`;
}

/**
 * Removes the common leading indentation of SQL written inside template literals. A first line that
 * starts at column 0 (text right after the backtick) does not count.
 */
export function dedent(text: string): string {
  const lines = text.replace(/\t/g, '  ').split('\n');
  const indent = (l: string) => l.match(/^ */)![0].length;
  const counted = lines.filter((l, i) => l.trim() && !(i === 0 && indent(l) === 0));
  const cut = counted.length ? Math.min(...counted.map(indent)) : 0;
  return lines.map((l) => l.slice(Math.min(cut, indent(l)))).join('\n');
}

export function fmtInt(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  return Math.round(n).toLocaleString('en-US');
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

export function fmtBytes(b: number | null | undefined): string {
  if (b === null || b === undefined || !Number.isFinite(b)) return '–';
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = b;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Scalars of a JSON value as "a.b.c: value" lines, depth-limited; what a generic plan rendering lists. */
export function scalarPaths(v: unknown, prefix = '', depth = 3): Array<[string, string]> {
  if (v === null || typeof v !== 'object') return prefix ? [[prefix, String(v)]] : [];
  if (depth === 0 || Array.isArray(v)) return [];
  return Object.entries(v as Record<string, unknown>).flatMap(([k, x]) => scalarPaths(x, prefix ? `${prefix}.${k}` : k, depth - 1));
}

/** The report's level-2 headings, in order: tests and docs name them. */
export const REPORT_SECTIONS = [
  'Summary',
  'Purpose and changes',
  'Row counts',
  'Issues found',
  'Verification',
  'Backups',
  'Timings',
  'Abort triggers',
  'Schema',
] as const;

/** pg_constraint.contype in words. */
export const CONSTRAINT_TYPES: Record<string, string> = { p: 'primary key', u: 'unique', f: 'foreign key', c: 'check', x: 'exclusion', t: 'trigger' };
