// The project's migrations folder (belay.config.json's migrationsDir, else ./migrations): a migration is a
// folder holding migration.ts (`20261201120000_fill-owner/`, as belay new makes it) or a module file. A
// command's target is a path, else a folder's name, else a migration's id; belay status lists them all with
// the state belay's tables record for their ids.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import type { ProjectConfig } from '../config/environments.ts';
import type { Db } from '../db/connection.ts';
import { BelayError, SpecError } from '../errors.ts';
import { importModule, loadMigration, resolveMigrationPath } from '../spec/load.ts';
import { latestRun, type RunStatus } from '../state/runs.ts';
import { stateVersion } from '../state/schema.ts';

const MODULE = /\.(ts|mts|cts|js|mjs|cjs)$/;
/** belay new's folder names: a UTC timestamp, "_", the migration's id. */
export const STAMPED = /^(\d{14})_(.+)$/;

export interface MigrationEntry {
  /** The folder's or file's name in the migrations folder. */
  name: string;
  /** The module belay loads. */
  file: string;
}

/** The migrations of a folder, in name order (so by belay new's timestamp); none when it does not exist. */
export function listMigrationFiles(dir: string): MigrationEntry[] {
  if (!existsSync(dir)) return [];
  const out: MigrationEntry[] = [];
  for (const name of readdirSync(dir).sort()) {
    if (name.startsWith('.') || name.startsWith('_')) continue;
    const abs = path.join(dir, name);
    if (statSync(abs).isDirectory()) {
      try {
        out.push({ name, file: resolveMigrationPath(abs) });
      } catch {
        // a folder without a migration module (notes, fixtures) is not a migration
      }
    } else if (MODULE.test(name) && !name.endsWith('.d.ts')) out.push({ name, file: abs });
  }
  return out;
}

/** The id a folder name gives (`20261201120000_fill-owner` → `fill-owner`; a file's name without extension). */
export function idOfName(name: string): string {
  const base = name.replace(MODULE, '');
  return STAMPED.exec(base)?.[2] ?? base;
}

/** The module a command's target names: an existing path, a folder name, a name's id, or a loaded migration's id. */
export async function findMigration(target: string, cfg: Pick<ProjectConfig, 'migrationsDir'>): Promise<string> {
  if (existsSync(target)) return resolveMigrationPath(target);
  const entries = listMigrationFiles(cfg.migrationsDir);
  const byName = entries.filter((e) => e.name === target || e.name.replace(MODULE, '') === target);
  const byStem = byName.length > 0 ? byName : entries.filter((e) => idOfName(e.name) === target);
  if (byStem.length === 1) return byStem[0]!.file;
  if (byStem.length > 1) {
    throw new SpecError(`"${target}" names ${byStem.length} migrations in ${cfg.migrationsDir}: ${byStem.map((e) => e.name).join(', ')}`, {
      file: cfg.migrationsDir,
      fix: 'Give the folder name, or rename one: a migration id names one migration.',
    });
  }
  for (const e of entries) if ((await readId(e.file)) === target) return e.file;
  const shown = entries.slice(-5).map((e) => e.name);
  throw new SpecError(`migration not found: ${target}`, {
    file: path.resolve(target),
    fix: entries.length
      ? `Give a path, or a folder name or id of ${cfg.migrationsDir} (${shown.join(', ')}${entries.length > 5 ? ', …' : ''}).`
      : `Give the path of a migration file or folder, or make one in ${cfg.migrationsDir} with belay new <name>.`,
  });
}

/** The id a module declares, without validating it (a module that cannot load has none). */
async function readId(file: string): Promise<string | undefined> {
  try {
    let d = (await importModule(file)).default as unknown;
    if (d && typeof d === 'object' && 'default' in d && !('id' in d)) d = (d as { default: unknown }).default;
    const id = (d as { id?: unknown } | null)?.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

export type MigrationState = 'pending' | 'applied' | 'running' | 'paused' | 'failed' | 'rolling back' | 'rolled back' | 'invalid' | 'unknown';

const STATE_OF: Record<RunStatus, MigrationState> = {
  running: 'running',
  completed: 'applied',
  failed: 'failed',
  paused: 'paused',
  rolling_back: 'rolling back',
  rolled_back: 'rolled back',
  // stopped before its first write and superseded: nothing of it is in the database
  abandoned: 'pending',
};

export interface MigrationStatus {
  /** The folder's or file's name in the migrations folder. */
  name: string;
  file: string;
  /** The id it declares; null when it does not load. */
  id: string | null;
  /** From the newest run of the id; unknown without a database; invalid when the module does not load. */
  state: MigrationState;
  run: number | null;
  /** When the newest run finished (ISO 8601 UTC), or started while it has not. */
  at: string | null;
  /** An applied migration whose file no longer gives the checksum of its run. */
  changed: boolean;
  /** Why it is invalid: the error's code and message. */
  error: { code: string; message: string } | null;
}

/** Every migration of the folder with its state; `db` null = not reachable (state unknown). */
export async function migrationStatus(cfg: Pick<ProjectConfig, 'migrationsDir'>, db: Db | null): Promise<MigrationStatus[]> {
  const hasState = db ? (await stateVersion(db)) > 0 : false;
  const out: MigrationStatus[] = [];
  for (const e of listMigrationFiles(cfg.migrationsDir)) {
    const row: MigrationStatus = { name: e.name, file: e.file, id: null, state: db ? 'pending' : 'unknown', run: null, at: null, changed: false, error: null };
    out.push(row);
    let m: Awaited<ReturnType<typeof loadMigration>>;
    try {
      m = await loadMigration(e.file);
    } catch (err) {
      row.id = (await readId(e.file)) ?? null;
      row.state = 'invalid';
      row.error = err instanceof BelayError ? { code: err.code, message: err.message } : { code: 'BELAY_INTERNAL', message: String(err) };
      continue;
    }
    row.id = m.spec.id;
    if (!db || !hasState) continue;
    const r = await latestRun(db, m.spec.id);
    if (!r) continue;
    row.state = STATE_OF[r.status];
    row.run = r.id;
    row.at = new Date(`${r.finishedAt ?? r.startedAt}`.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString();
    const params = r.params ?? {};
    const current = Object.keys(params).length ? await loadMigration(e.file, params).catch(() => undefined) : m;
    row.changed = row.state === 'applied' && current?.checksum !== r.checksum;
  }
  return out;
}
