// .env files read as the Prisma CLI reads them: ./.env, then prisma/.env, into the process environment.
// A variable the real environment sets (non-empty) is never replaced; the same variable with two different
// values in both files is refused, as Prisma refuses it; ${NAME} and $NAME expand (\$ is a literal $).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseEnv } from 'node:util';
import { BelayError } from '../errors.ts';

export const ENV_FILES = ['.env', path.join('prisma', '.env')] as const;

export interface EnvFilesResult {
  /** The files read, in order. */
  files: string[];
  /** The variables set from them (names only: values may be secrets). */
  set: string[];
}

const loaded = new Set<string>();

/** Reads the .env files of `dir` once per process and folder; returns what it set. */
export function loadEnvFiles(dir = process.cwd(), env: Record<string, string | undefined> = process.env): EnvFilesResult {
  const key = path.resolve(dir);
  if (env === process.env && loaded.has(key)) return { files: [], set: [] };
  if (env === process.env) loaded.add(key);
  const files: string[] = [];
  const values = new Map<string, { value: string; file: string }>();
  for (const rel of ENV_FILES) {
    const file = path.join(key, rel);
    if (!existsSync(file)) continue;
    let parsed: Record<string, string>;
    try {
      parsed = parseEnv(readFileSync(file, 'utf8')) as Record<string, string>;
    } catch (err) {
      throw new BelayError('BELAY_CONFIG', `cannot read ${file}: ${(err as Error).message}`, { details: { file }, fix: 'Fix or remove the file.' });
    }
    files.push(file);
    const clashes = Object.keys(parsed).filter((k) => values.has(k) && values.get(k)!.value !== parsed[k]);
    if (clashes.length > 0) {
      throw new BelayError('BELAY_CONFIG', `there is a conflict between env vars in ${values.get(clashes[0]!)!.file} and ${file}: ${clashes.join(', ')}`, {
        details: { file, field: clashes[0] },
        fix: `Keep each variable in one file (Prisma refuses the same conflict): move the contents of ${rel} to .env.`,
      });
    }
    for (const [k, v] of Object.entries(parsed)) if (!values.has(k)) values.set(k, { value: v, file });
  }
  const set: string[] = [];
  // the real environment first, then the files; a cycle (A=$B, B=$A) expands to nothing
  const resolve = (name: string, seen: ReadonlySet<string>): string => {
    if (env[name]) return env[name]!;
    const v = values.get(name);
    if (!v || seen.has(name)) return '';
    return expand(v.value, (n) => resolve(n, new Set([...seen, name])));
  };
  for (const k of values.keys()) {
    if (env[k]) continue;
    env[k] = resolve(k, new Set());
    set.push(k);
  }
  return { files, set };
}

/** dotenv-expand's forms: ${NAME} and $NAME; \$ is a literal $. */
function expand(value: string, lookup: (name: string) => string): string {
  return value.replace(/\\\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (m, braced?: string, bare?: string) =>
    m === '\\$' ? '$' : lookup((braced ?? bare)!),
  );
}
