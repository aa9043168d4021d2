// Migration files written for a trial: the flagship with changed options, or a corpus case's files.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FLAGSHIP } from './belay-cli.ts';

export interface TempDir {
  dir: string;
  remove(): void;
}

export function tempDir(tag: string): TempDir {
  const dir = mkdtempSync(path.join(tmpdir(), `belay-rel-${tag}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Writes files (relative path -> content) under dir. */
export function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    writeFileSync(p, content);
  }
}

/** A migration folder: the flagship with its options overridden (same id, so it resumes the same runs). */
export function flagshipWithOptions(options: Record<string, unknown>): TempDir {
  const t = tempDir('spec');
  const src = pathToFileURL(path.join(FLAGSHIP, 'migration.ts')).href;
  writeFiles(t.dir, {
    'migration.ts': `import base from ${JSON.stringify(src)};
export default (params: Record<string, string>) => {
  const spec = base(params);
  return { ...spec, options: { ...(spec.options ?? {}), ...${JSON.stringify(options)} } };
};
`,
  });
  return t;
}
