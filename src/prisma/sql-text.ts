// A migration file's text addressed the way libpg-query addresses it: by byte offsets into its UTF-8 form.
// Node locations and scanner tokens are byte offsets, so every slice and every line/column goes through here.
import { scanSync } from 'libpg-query';

export interface Tok {
  start: number;
  end: number;
  text: string;
  /** Upper-cased text for keywords and punctuation, the text itself for quoted names and literals. */
  up: string;
}

/** A span of text to put in place of the bytes [start, end) when a fragment is rendered. */
export interface Replacement {
  start: number;
  end: number;
  text: string;
}

export class SqlText {
  private readonly buf: Buffer;
  private lineStarts?: number[];
  constructor(readonly text: string) {
    this.buf = Buffer.from(text, 'utf8');
  }

  /** The text's length in UTF-8 bytes. */
  get byteLength(): number {
    return this.buf.length;
  }

  slice(start: number, end: number): string {
    return this.buf.subarray(start, end).toString('utf8');
  }

  /** The tokens of [start, end), comments left out, offsets into the whole text. */
  tokens(start: number, end: number): Tok[] {
    const out: Tok[] = [];
    for (const t of scanSync(this.slice(start, end)).tokens) {
      if (t.tokenName === 'SQL_COMMENT' || t.tokenName === 'C_COMMENT') continue;
      const text = this.slice(start + t.start, start + t.end);
      out.push({ start: start + t.start, end: start + t.end, text, up: /^['"$]/.test(text) ? text : text.toUpperCase() });
    }
    return out;
  }

  /** 1-based line and column of a byte offset (columns count characters). */
  lineCol(byte: number): { line: number; column: number } {
    const before = this.slice(0, byte);
    if (!this.lineStarts) {
      this.lineStarts = [0];
      for (let i = 0; i < this.text.length; i++) if (this.text[i] === '\n') this.lineStarts.push(i + 1);
    }
    const idx = before.length;
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= idx) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: idx - this.lineStarts[lo]! + 1 };
  }

  /** The text of [start, end) with the replacements that lie inside it applied. */
  render(start: number, end: number, reps: readonly Replacement[]): string {
    let out = '';
    let at = start;
    for (const r of [...reps].sort((a, b) => a.start - b.start)) {
      if (r.start < at || r.end > end) continue;
      out += this.slice(at, r.start) + r.text;
      at = r.end;
    }
    return out + this.slice(at, end);
  }
}

const OPEN = new Set(['(', '[']);
const CLOSE = new Set([')', ']']);

/** Index of the first token at or after `from` that sits at nesting depth 0 and satisfies `pred`, else toks.length. */
export function findTop(toks: readonly Tok[], from: number, pred: (t: Tok) => boolean): number {
  let depth = 0;
  for (let i = from; i < toks.length; i++) {
    const t = toks[i]!;
    if (depth === 0 && pred(t)) return i;
    if (OPEN.has(t.up)) depth++;
    else if (CLOSE.has(t.up)) {
      depth--;
      if (depth < 0) return i;
    }
  }
  return toks.length;
}

/** Index of the bracket closing the one at `open`. */
export function matching(toks: readonly Tok[], open: number): number {
  return findTop(toks, open + 1, () => false);
}

/** Splits toks[from, to) at commas of depth 0 into [start, end) index ranges. */
export function splitTop(toks: readonly Tok[], from: number, to: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  let at = from;
  while (at < to) {
    const comma = Math.min(
      findTop(toks, at, (t) => t.up === ','),
      to,
    );
    out.push([at, comma]);
    at = comma + 1;
  }
  return out;
}

/** Index of the first token that starts at or after a byte offset. */
export function tokenAt(toks: readonly Tok[], byte: number): number {
  const i = toks.findIndex((t) => t.start >= byte);
  return i < 0 ? toks.length : i;
}
