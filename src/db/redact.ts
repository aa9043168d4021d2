// The one place where secrets are taken out of what belay shows or keeps. Every URL-shaped input is
// masked by its shape, not by a successful parse: a URL the parser refuses (no "//", a bad port, a stray
// "%", a leading space, no scheme at all) is exactly the one that gets echoed back in an error.
import { DbError, serverFields } from '../errors.ts';

const MASK = '***';
/** Query or keyword parameters whose value is a secret (libpq's password, sslpassword; tokens and keys). */
const SECRET_PARAM = /(pass(word)?|secret|token|key|auth|signature|sig|credential)/i;
/**
 * Free texts are scrubbed of known secrets only when they are at least this long: a one- or two-letter
 * password would otherwise turn every matching letter of every message into ***. Such a password is
 * still masked wherever it appears inside a URL (by shape).
 */
export const MIN_SCRUB_LENGTH = 4;

interface Parts {
  /** Leading text up to and including the scheme's ":" and its slashes ("" when there is no scheme). */
  head: string;
  /** user[:password] before the last "@" of the authority, or undefined when there is none. */
  userinfo?: string;
  /** What follows the "@" (host, port, path, query), or the whole rest when there is no userinfo. */
  rest: string;
}

/** Schemes after which "x:y@" reads as user x with password y even without slashes (postgres:u:PW@h). */
const DB_SCHEMES = /^(postgres|postgresql|pglite):$/i;

/**
 * Splits a URL-shaped text by shape: scheme (with any number of slashes, or none), userinfo, the rest.
 * The userinfo ends at the last "@" of the whole text: a password may hold "@", "/", "?" or ":"
 * unencoded, and masking too much of a malformed URL is harmless where masking too little is not.
 */
function split(input: string): Parts {
  const text = input.trim();
  const m = /^([a-z][a-z0-9+.-]*:)(\/*)/i.exec(text);
  let head = m ? `${m[1]}${m[2]}` : '';
  const at = text.lastIndexOf('@');
  if (at < head.length) return { head, rest: text.slice(head.length) };
  let userinfo = text.slice(head.length, at);
  // "pwuser:PW@h/db" has no scheme: without slashes, an unknown "scheme:" is the user name
  if (m && !m[2] && !DB_SCHEMES.test(m[1]!)) {
    userinfo = `${head}${userinfo}`;
    head = '';
  }
  return { head, userinfo, rest: text.slice(at + 1) };
}

function maskUserinfo(userinfo: string): string {
  const colon = userinfo.indexOf(':');
  return colon < 0 ? userinfo : `${userinfo.slice(0, colon)}:${MASK}`;
}

/** Masks the values of secret query parameters (password=…, token=…) in a query string or keyword list. */
function maskParams(text: string): string {
  return (
    text
      // libpq keyword/value strings may quote a value: password='a b'
      .replace(/\b([a-z_]*pass(word)?)\s*=\s*'(?:[^'\\]|\\.)*'/gi, `$1=${MASK}`)
      .replace(/([?&;\s]|^)([a-z0-9_.-]+)=([^&#\s]*)/gi, (m, sep: string, k: string) => (SECRET_PARAM.test(k) ? `${sep}${k}=${MASK}` : m))
  );
}

/**
 * A database URL (or anything given where one was expected) without its password: postgres://u:***@h/db.
 * Works on every shape (no "//", one "/", no scheme, a leading space, a bad port, a stray "%"), and on
 * libpq keyword/value strings (password=…).
 */
export function redactUrl(url: string): string {
  const { head, userinfo, rest } = split(url);
  const auth = userinfo === undefined ? '' : `${maskUserinfo(userinfo)}@`;
  return `${head}${auth}${maskParams(rest)}`;
}

/** A free text (an error message) with every URL-shaped word in it redacted like redactUrl. */
export function redactText(text: string): string {
  return text
    .replace(/\b([a-z_]*pass(word)?)\s*=\s*'(?:[^'\\]|\\.)*'/gi, `$1=${MASK}`)
    .replace(/[^\s"'<>(),]*:[^\s"'<>]*@[^\s"'<>),]*/g, (w) => redactUrl(w))
    .replace(/\b([a-z_]*pass(word)?)=(?!\*\*\*)[^\s&'"]+/gi, `$1=${MASK}`);
}

/**
 * A webhook URL as belay shows and keeps it: scheme and host only. Credentials, the path (Slack, Discord
 * and most hooks carry their token in it) and the query string are masked: https://hooks.example.com/***?***.
 */
export function redactWebhook(url: string): string {
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    const { head, rest } = split(url);
    const host = /^[^/?#]*/.exec(rest)?.[0] ?? '';
    return `${head}${host}${rest.length > host.length ? `/${MASK}` : ''}`;
  }
  const auth = u.username || u.password ? `${MASK}@` : '';
  const pathPart = u.pathname && u.pathname !== '/' ? `/${MASK}` : '';
  return `${u.protocol}//${auth}${u.host}${pathPart}${u.search ? `?${MASK}` : ''}`;
}

function decoded(s: string): string[] {
  try {
    const d = decodeURIComponent(s);
    return d === s ? [s] : [s, d, encodeURIComponent(d)];
  } catch {
    return [s];
  }
}

/** The secret parts of a database URL: its password (as written, decoded, re-encoded) and secret parameters. */
export function secretsOfUrl(url: string): string[] {
  const { userinfo, rest } = split(url);
  const out: string[] = [];
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    if (colon >= 0) out.push(...decoded(userinfo.slice(colon + 1)));
  }
  for (const m of rest.matchAll(/(?:[?&;\s]|^)([a-z0-9_.-]+)=([^&#\s]*)/gi)) if (SECRET_PARAM.test(m[1]!) && m[2]) out.push(...decoded(m[2]));
  for (const m of rest.matchAll(/\b[a-z_]*pass(?:word)?\s*=\s*'((?:[^'\\]|\\.)*)'/gi)) if (m[1]) out.push(m[1]);
  return unique(out);
}

/** The secret parts of a webhook URL: credentials, the path and its long segments, the query and its values. */
export function secretsOfWebhook(url: string): string[] {
  const out: string[] = [];
  let u: URL | undefined;
  try {
    u = new URL(url.trim());
  } catch {
    u = undefined;
  }
  if (!u) return unique([...secretsOfUrl(url), url.trim()]);
  for (const s of [u.username, u.password]) if (s) out.push(...decoded(s));
  // a path or value is taken for a token when it looks like one (long, or with digits): a short word
  // ("hook", "true") would otherwise be masked in every line belay prints
  const tokenLike = (x: string) => x.length >= 16 || (x.length >= 8 && /\d/.test(x));
  if (u.pathname && u.pathname.length >= 12) out.push(u.pathname.slice(1), ...decoded(u.pathname));
  for (const seg of u.pathname.split('/')) if (tokenLike(seg)) out.push(...decoded(seg));
  if (u.search.length >= 12) out.push(u.search.slice(1));
  for (const [k, v] of u.searchParams) if (tokenLike(v) || (SECRET_PARAM.test(k) && v)) out.push(v, encodeURIComponent(v));
  out.push(url.trim());
  return unique(out);
}

/** Removes every occurrence of each secret from a text; secrets shorter than MIN_SCRUB_LENGTH are left alone. */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  // longest first: a secret that contains another must go whole
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) if (s && s.length >= MIN_SCRUB_LENGTH) out = out.split(s).join(MASK);
  return out;
}

// --- the process's known secrets ------------------------------------------------------------------

/**
 * Every secret this process was given (database URLs it opened, webhooks it posts to). The command line
 * scrubs all it prints with them, and wrapDbError every server message: a second line of defence behind
 * the masking by shape, for texts belay did not compose (a driver's or the server's message).
 */
const known = new Set<string>();

export function rememberSecrets(secrets: readonly string[]): void {
  for (const s of secrets) if (s && s.length >= MIN_SCRUB_LENGTH) known.add(s);
}

/** A text with every secret this process knows masked. */
export function scrubKnown(text: string): string {
  return known.size === 0 ? text : scrub(text, [...known]);
}

/**
 * A JSON-able value with every string in it (keys left alone) scrubbed of the known secrets: events,
 * errors, results. Numbers and booleans are never touched, so a secret such as "true" cannot bend them.
 */
export function scrubValue<T>(v: T): T {
  if (known.size === 0) return v;
  const walk = (x: unknown): unknown => {
    if (typeof x === 'string') return scrubKnown(x);
    if (Array.isArray(x)) return x.map(walk);
    if (x && typeof x === 'object') {
      if (typeof (x as { toJSON?: unknown }).toJSON === 'function') return walk((x as { toJSON: () => unknown }).toJSON());
      return Object.fromEntries(Object.entries(x).map(([k, y]) => [k, walk(y)]));
    }
    return x;
  };
  return walk(v) as T;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs.filter((x) => x.length > 0))];
}

/** Wraps a driver error as DbError, scrubbing secrets from every text. */
export function wrapDbError(err: unknown, sql: string, url: string): DbError {
  const msg = scrubKnown(scrub(err instanceof Error ? err.message : String(err), secretsOfUrl(url)));
  const fields = serverFields(err);
  if (fields.detail) fields.detail = scrubKnown(scrub(fields.detail, secretsOfUrl(url)));
  return new DbError(msg, fields, { sql, cause: err });
}
