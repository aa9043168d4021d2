import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ZodError } from 'zod';
import { SpecError } from '../errors.ts';
import { type Migration, type MigrationModule, type MigrationParams, migrationSchema } from './define.ts';
import { validateSql } from './sql-parse.ts';

export interface LoadedMigration {
  readonly spec: Migration;
  /** Absolute path of the module that was loaded. */
  readonly file: string;
  readonly params: MigrationParams;
  /** sha256 of the validated spec and params: a resume or a protected apply compares it. */
  readonly checksum: string;
}

const CANDIDATES = ['migration.ts', 'migration.mts', 'migration.cts', 'migration.js', 'migration.mjs', 'migration.cjs', 'index.ts', 'index.js'];

/** Resolves a file or a folder holding migration.ts (or index.ts). */
export function resolveMigrationPath(target: string): string {
  const abs = path.resolve(target);
  if (!existsSync(abs)) {
    throw new SpecError(`migration not found: ${target}`, { file: abs, fix: 'Give the path of a migration file or of a folder holding migration.ts.' });
  }
  if (statSync(abs).isDirectory()) {
    for (const c of CANDIDATES) if (existsSync(path.join(abs, c))) return path.join(abs, c);
    throw new SpecError(`no migration.ts in folder ${target}`, { file: abs, fix: `Add one of ${CANDIDATES.join(', ')} to the folder.` });
  }
  return abs;
}

/** Imports a user's module (TypeScript or JavaScript, ESM or CommonJS) as migration files are imported. */
export async function importModule(file: string): Promise<Record<string, unknown>> {
  try {
    const { tsImport } = await import('tsx/esm/api');
    return (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
  } catch (err) {
    throw new SpecError(`cannot load ${file}: ${(err as Error).message}`, { file, cause: err });
  }
}

export async function loadMigration(target: string, params: MigrationParams = {}): Promise<LoadedMigration> {
  const file = resolveMigrationPath(target);
  const mod = await importModule(file);
  let exported = mod.default as MigrationModule | undefined;
  // tsImport may wrap a CommonJS-shaped default once more.
  if (exported && typeof exported === 'object' && 'default' in exported && !('id' in exported)) {
    exported = (exported as { default: MigrationModule }).default;
  }
  if (exported === undefined) {
    throw new SpecError(`${file} has no default export`, { file, field: 'default', expected: 'export default defineMigration({...})' });
  }
  let input: unknown = exported;
  if (typeof exported === 'function') {
    try {
      input = exported(Object.freeze({ ...params }));
    } catch (err) {
      throw new SpecError(`${file}: the migration rejected its parameters: ${(err as Error).message}`, { file, field: 'params', cause: err });
    }
  } else if (Object.keys(params).length > 0) {
    throw new SpecError(`${file} takes no parameters, but ${Object.keys(params).join(', ')} were given`, {
      file,
      field: 'params',
      fix: 'Export a function (params) => defineMigration({...}) to accept parameters, or drop --param.',
    });
  }
  const spec = validate(input, file);
  await validateSql(spec, file);
  return Object.freeze({ spec, file, params: Object.freeze({ ...params }), checksum: checksumOf(spec, params) });
}

/** Validates a spec object; errors name the file, the field path and what was expected. */
export function validate(input: unknown, file = '<inline>'): Migration {
  try {
    const spec = migrationSchema.parse(input);
    crossCheck(spec, file);
    return deepFreeze(spec);
  } catch (err) {
    if (err instanceof ZodError) {
      const first = err.issues[0]!;
      const field = first.path.join('.') || '(root)';
      const lines = err.issues.slice(0, 5).map((i) => `  ${i.path.join('.') || '(root)'}: ${i.message}`);
      throw new SpecError(`invalid migration in ${file}:\n${lines.join('\n')}`, { file, field, expected: first.message, cause: err });
    }
    throw err;
  }
}

function crossCheck(spec: Migration, file: string): void {
  const names = new Set<string>();
  spec.steps.forEach((s, i) => {
    if (names.has(s.name)) throw new SpecError(`${file}: two steps are named "${s.name}"`, { file, field: `steps.${i}.name`, expected: 'unique step names' });
    names.add(s.name);
    if (s.kind === 'batched' && !spec.tables.includes(s.table)) {
      throw new SpecError(`${file}: step "${s.name}" writes table "${s.table}", which is not listed in tables`, {
        file,
        field: `steps.${i}.table`,
        expected: `one of: ${spec.tables.join(', ')}`,
        fix: `Add "${s.table}" to tables so that it is backed up and verified.`,
      });
    }
  });
  spec.checks.forEach((c, i) => {
    if ((c.kind === 'unique-after' || (c.kind === 'not-null' && c.step)) && !names.has(c.step!)) {
      throw new SpecError(`${file}: check ${c.code} names step "${c.step}", which does not exist`, {
        file,
        field: `checks.${i}.step`,
        expected: `one of: ${[...names].join(', ')}`,
      });
    }
  });
}

export function checksumOf(spec: Migration, params: MigrationParams): string {
  return createHash('sha256').update(stableJson({ spec, params })).digest('hex');
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stableJson((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
