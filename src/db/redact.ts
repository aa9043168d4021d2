// Connection strings never print passwords: every label and message goes through here.

export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, (_m, scheme: string, auth: string) => {
    const user = auth.split(':')[0];
    return auth.includes(':') ? `${scheme}${user}:***@` : `${scheme}${auth}@`;
  }).replace(/([?&]password=)[^&]*/gi, '$1***');
}

/** Removes any occurrence of a secret from a text (used on server error messages). */
export function scrub(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out;
}

export function passwordOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    const fromQuery = u.searchParams.get('password') ?? undefined;
    return u.password ? decodeURIComponent(u.password) : fromQuery;
  } catch {
    return undefined;
  }
}
