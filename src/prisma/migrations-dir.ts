// The migrations folder, read the way `prisma migrate deploy` reads it: every sub-folder is a migration
// named after the folder, its script is migration.sql read as UTF-8, folders sorted with localeCompare.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { BelayError } from '../errors.ts';
import type { MigrationFile } from './types.ts';

export const DEFAULT_MIGRATIONS_DIR = 'prisma/migrations';

/** Hex sha256 of the script's UTF-8 bytes, zero-padded: the `checksum` Prisma records. */
export function prismaChecksum(script: string): string {
  return createHash('sha256').update(script, 'utf8').digest('hex');
}

/**
 * Whether a recorded checksum matches the script: Prisma also accepts the script with its line endings
 * converted either way (git may change them), and old rows whose hex bytes were not zero-padded.
 */
export function checksumMatches(script: string, recorded: string): boolean {
  const variants = [script, script.replace(/\r\n/g, '\n'), script.replace(/\n/g, '\r\n')];
  return variants.some((s) => {
    const digest = createHash('sha256').update(s, 'utf8').digest();
    const hex = recorded.length !== 0 && recorded.length !== 64 ? [...digest].map((b) => b.toString(16)).join('') : digest.toString('hex');
    return hex === recorded;
  });
}

export function listMigrations(dir: string): MigrationFile[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new BelayError('BELAY_PRISMA_DIR', `migrations folder ${dir} does not exist`, {
      fix: `Run from the project root (the default is ${DEFAULT_MIGRATIONS_DIR}) or pass the folder: belay prisma check path/to/migrations.`,
    });
  }
  assertProvider(dir);
  const names = readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort((a, b) => a.localeCompare(b));
  return names.map((name) => {
    const file = path.join(dir, name, 'migration.sql');
    let script: string;
    try {
      script = readFileSync(file, 'utf8');
    } catch (err) {
      throw new BelayError('BELAY_PRISMA_DIR', `migration ${name} has no readable migration.sql (${(err as Error).message})`, {
        cause: err,
        fix: 'Every folder of the migrations directory must hold a migration.sql: restore it, or remove the folder.',
      });
    }
    return { name, file, script, checksum: prismaChecksum(script) };
  });
}

/** migration_lock.toml names the provider; belay reads PostgreSQL migrations only. */
function assertProvider(dir: string): void {
  const lock = path.join(dir, 'migration_lock.toml');
  if (!existsSync(lock)) return;
  const line = readFileSync(lock, 'utf8')
    .split(/\r?\n/)
    .find((l) => l.startsWith('provider'));
  const provider = line
    ?.replace(/^provider\s*=\s*/, '')
    .trim()
    .replace(/^"|"$/g, '');
  if (provider && provider !== 'postgresql') {
    throw new BelayError('BELAY_PRISMA_PROVIDER', `${lock} says provider = "${provider}"; belay reads PostgreSQL migrations only`, {
      fix: 'Point belay at the migrations of a PostgreSQL datasource.',
    });
  }
}
