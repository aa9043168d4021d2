// belay init and belay new: the project's files, written only where nothing is yet. A file that exists is
// never overwritten; what was left alone is said, with why.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { DEFAULT_MIGRATIONS_DIR } from '../config/config-schema.ts';
import { CONFIG_FILE, type ProjectConfig, parseConfig } from '../config/environments.ts';
import { UsageError } from '../errors.ts';
import { idOfName, listMigrationFiles } from './migrations.ts';
import { EXAMPLE_ID, EXAMPLE_PURPOSE, GITIGNORE_ENTRIES, migrationTemplate } from './templates.ts';

export interface ScaffoldAction {
  /** Absolute path. */
  path: string;
  action: 'created' | 'appended' | 'skipped';
  detail: string;
}

/** The JSON Schema of belay.config.json as an installed package holds it. */
export const CONFIG_SCHEMA_REF = './node_modules/belay-pg/schemas/belay.config.schema.json';

/** Writes belay.config.json, the migrations folder with an example and the .gitignore entries into `dir`. */
export function initProject(dir: string, opts: { migrationsDir?: string; now?: Date } = {}): ScaffoldAction[] {
  const actions: ScaffoldAction[] = [];
  const configFile = path.join(dir, CONFIG_FILE);
  let migrationsDir = path.resolve(dir, opts.migrationsDir ?? DEFAULT_MIGRATIONS_DIR);
  if (existsSync(configFile)) {
    // the folder the existing file names (validated: a broken file is said so, not overwritten)
    migrationsDir = parseConfig(configFile).migrationsDir;
    const other = opts.migrationsDir && path.resolve(dir, opts.migrationsDir) !== migrationsDir;
    actions.push({
      path: configFile,
      action: 'skipped',
      detail: `exists: left as it is${other ? ` (it names the migrations folder ${migrationsDir}; change migrationsDir there)` : ''}`,
    });
  } else {
    const rel = path.relative(dir, migrationsDir).split(path.sep).join('/') || '.';
    writeFileSync(configFile, `${JSON.stringify({ $schema: CONFIG_SCHEMA_REF, migrationsDir: rel, environments: {} }, null, 2)}\n`, { flag: 'wx' });
    actions.push({ path: configFile, action: 'created', detail: `migrationsDir "${rel}", no environments yet` });
  }
  const existing = listMigrationFiles(migrationsDir);
  if (existing.length > 0) {
    actions.push({ path: migrationsDir, action: 'skipped', detail: `holds ${existing.length} migration(s): no example added` });
  } else {
    actions.push(writeMigration(migrationsDir, EXAMPLE_ID, EXAMPLE_PURPOSE, opts.now ?? new Date()));
  }
  actions.push(addGitignore(path.join(dir, '.gitignore')));
  return actions;
}

/** belay new: migrations/<UTC timestamp>_<name>/migration.ts from the template, with an empty purpose to write. */
export function newMigration(cfg: Pick<ProjectConfig, 'migrationsDir'>, name: string, now = new Date()): ScaffoldAction {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) {
    const slug = name
      .toLowerCase()
      .replace(/[^a-z0-9._-]+/g, '-')
      .replace(/^[-._]+|-+$/g, '')
      .slice(0, 63);
    throw new UsageError(
      `"${name}" is not a migration name: it becomes the migration's id, which is lower-case letters, digits, ".", "_" or "-" (at most 63, starting with a letter or digit)`,
      slug ? `Write belay new ${slug}` : 'Write belay new fill-owner, for example.',
    );
  }
  const taken = listMigrationFiles(cfg.migrationsDir).find((e) => idOfName(e.name) === name);
  if (taken) {
    throw new UsageError(
      `a migration named "${name}" exists: ${path.join(cfg.migrationsDir, taken.name)}`,
      'Pick another name: the name is the migration id, which belay records its runs under.',
    );
  }
  return writeMigration(cfg.migrationsDir, name, '', now);
}

function writeMigration(dir: string, id: string, purpose: string, now: Date): ScaffoldAction {
  const folder = path.join(dir, `${now.toISOString().replace(/\D/g, '').slice(0, 14)}_${id}`);
  mkdirSync(folder, { recursive: true });
  const file = path.join(folder, 'migration.ts');
  // wx: a file that appeared since the check above is not overwritten either
  writeFileSync(file, migrationTemplate(id, purpose), { flag: 'wx' });
  return { path: file, action: 'created', detail: purpose ? `the example migration "${id}"` : `migration "${id}": write its purpose and rule` };
}

function addGitignore(file: string): ScaffoldAction {
  const have = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const lines = new Set(have.split(/\r?\n/).map((l) => l.trim()));
  const missing = GITIGNORE_ENTRIES.filter((e) => !lines.has(e) && !lines.has(`/${e}`) && !lines.has(e.replace(/\/$/, '')));
  if (missing.length === 0) return { path: file, action: 'skipped', detail: `already ignores ${GITIGNORE_ENTRIES.join(', ')}` };
  const sep = have === '' || have.endsWith('\n') ? '' : '\n';
  appendFileSync(file, `${sep}${have ? '\n' : ''}# belay\n${missing.join('\n')}\n`);
  const kept = GITIGNORE_ENTRIES.filter((e) => !missing.includes(e));
  return {
    path: file,
    action: have ? 'appended' : 'created',
    detail: `${missing.join(', ')}${kept.length ? ` (already there: ${kept.join(', ')})` : ''}`,
  };
}
