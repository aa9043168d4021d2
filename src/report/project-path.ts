// Paths as a reviewer reads them: relative to the project, never the absolute path of the machine that
// made the document (it means nothing to the reader, and says where someone keeps their checkout).
import { existsSync } from 'node:fs';
import path from 'node:path';

/** The nearest folder above `file` that holds a package.json or a .git: the project the migration lives in. */
export function projectRoot(file: string | null | undefined): string | undefined {
  if (!file || !path.isAbsolute(file)) return undefined;
  let dir = path.dirname(file);
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) || existsSync(path.join(dir, '.git'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/** `p` relative to the project root, or to the working directory, when inside one of them; else undefined. */
function inside(p: string, root: string | undefined): string | undefined {
  for (const base of [root, process.cwd()]) {
    if (!base) continue;
    const rel = path.relative(base, p);
    if (rel && !rel.startsWith('..') && !path.isAbsolute(rel)) return rel.split(path.sep).join('/');
  }
  return undefined;
}

/**
 * A migration file as the documents name it: relative to its project. Outside any project (no package.json
 * or .git above it, not under the working directory) only its folder and name are shown.
 */
export function migrationPath(file: string): string {
  if (!path.isAbsolute(file)) return file.split(path.sep).join('/');
  return inside(file, projectRoot(file)) ?? `…/${path.basename(path.dirname(file))}/${path.basename(file)}`;
}

/**
 * Every absolute path inside the project (or the working directory) in a recorded value, made relative:
 * a backup file under the project is shown as `backups/run-1-…/…`. A path elsewhere (`/var/backups/…`) is
 * where the operator chose to keep something, and stays as it is.
 */
export function relativePaths<T>(v: T, root: string | undefined): T {
  if (typeof v === 'string') return (path.isAbsolute(v) ? (inside(v, root) ?? v) : v) as T;
  if (Array.isArray(v)) return v.map((x) => relativePaths(x, root)) as T;
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, relativePaths(x, root)])) as T;
  return v;
}
