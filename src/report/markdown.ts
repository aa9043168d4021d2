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

/** Text for an HTML element inside Markdown (a `<summary>`): what would read as a tag or entity escaped. */
export function htmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A folded block: GitHub and most Markdown viewers show the summary line and open the body on a click. The
 * blank lines around the body let the Markdown inside it render.
 */
export function details(summary: string, body: readonly string[]): string[] {
  const lines = [...body];
  while (lines.length && lines[lines.length - 1] === '') lines.pop();
  return ['<details>', `<summary>${htmlText(summary)}</summary>`, '', ...lines, '', '</details>'];
}

/**
 * A recorded value as a reader reads it: `key: value, …`, strings as they are (not JSON with its quotes
 * escaped once more), durations (keys ending in Ms) in ms or s, fractions cut to three places.
 */
export function plainData(v: unknown, max = 200): string {
  const s = v && typeof v === 'object' && !Array.isArray(v) ? plainFields(v as Record<string, unknown>) : plainValue(v, '');
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function plainFields(o: Record<string, unknown>): string {
  return Object.entries(o)
    .filter(([, x]) => x !== undefined)
    .map(([k, x]) => `${k}: ${plainValue(x, k)}`)
    .join(', ');
}

function plainValue(v: unknown, key: string): string {
  if (v === null || v === undefined) return 'none';
  if (typeof v === 'number') return /ms$/i.test(key) ? fmtMs(v) : Number.isInteger(v) ? String(v) : String(+v.toFixed(3));
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return `[${v.map((x) => plainValue(x, '')).join(', ')}]`;
  if (typeof v === 'object') return `{${plainFields(v as Record<string, unknown>)}}`;
  return String(v);
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
