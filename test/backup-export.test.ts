// File export (--backup-dir): any error writing it fails with a clear error and exit 12, marks the backup
// unverified and stops before any write, leaving no run running; a resume exports again; a truncated or
// missing file is never reported as a backup. The full disk is real: a small tmpfs in a mount namespace
// of the child process (root only).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { type BackupRecord, listBackups, verifyBackup } from '../src/backup/backup.ts';
import { fileIntact, PARTIAL_SUFFIX } from '../src/backup/files.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { EXIT } from '../src/errors.ts';
import { safeApply } from '../src/run/pipeline.ts';
import { loadMigration } from '../src/spec/load.ts';
import { belay } from './helpers/capture.ts';
import { BELAY, TSX } from './helpers/cli.ts';
import { checksums } from './helpers/flagship.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';

const tmp = (tag: string) => mkdtempSync(path.join(tmpdir(), `belay-export-${tag}-`));

/** A table of `rows` rows of incompressible-enough text, a knob that makes the in-batch check fail, a migration over it. */
async function setup(db: Db, table: string, rows = 300): Promise<string> {
  const t = `"${table.replace(/"/g, '""')}"`;
  await db.exec(`CREATE TABLE ${t} (id int PRIMARY KEY, v text NOT NULL, out int);
    INSERT INTO ${t} SELECT g, md5(g::text) || md5((g * 7)::text), NULL FROM generate_series(1, ${rows}) g;
    CREATE TABLE knob (stop boolean NOT NULL); INSERT INTO knob VALUES (false);`);
  const dir = tmp('spec');
  writeFileSync(
    path.join(dir, 'migration.ts'),
    `export default ${JSON.stringify({
      id: 'fill-out',
      purpose: 'Fill out from the id (backup export tests).',
      tables: [table],
      steps: [
        {
          kind: 'batched',
          name: 'fill',
          table,
          writes: ['out'],
          projection: `SELECT id, id * 2 AS out FROM ${t} WHERE id BETWEEN $1 AND $2`,
          // the knob stops the run after its backups, before anything is written, as a failure would
          verify: 'SELECT id FROM written WHERE (SELECT stop FROM knob)',
        },
      ],
      abort: [{ when: 'verification-failed', action: 'pause' }],
      options: { batchSize: 100 },
    })};`,
  );
  return dir;
}

async function runState(db: Db): Promise<{ status: string; code: string | null }> {
  return (await db.query<{ status: string; code: string | null }>(`SELECT status, error->>'code' AS code FROM belay.runs ORDER BY id DESC LIMIT 1`)).rows[0]!;
}

/** Opens the database the test holds (server) or reopens a PGlite folder around fn. */
async function reopened<T>(url: string, held: Db | undefined, fn: (db: Db) => Promise<T>): Promise<T> {
  if (held) return fn(held);
  const db = await openDb(url);
  try {
    return await fn(db);
  } finally {
    await db.close();
  }
}

for (const kind of DB_KINDS) {
  describe(`file export on ${kind}`, () => {
    test('regression (file export): a table named a/b exports to a safe file name and the file verifies', async () => {
      await withDb(kind, async (f) => {
        const out = tmp('ab');
        try {
          const dir = await setup(f.db, 'a/b');
          const r = await safeApply(f.db, await loadMigration(dir), { backupDir: out });
          assert.equal(r.error, undefined, String(r.error?.message));
          const [b] = await listBackups(f.db);
          assert.ok(b?.file, 'the backup has its file');
          assert.match(path.basename(b.file), /^r1_a_b-[0-9a-f]{8}\.copy\.gz$/);
          assert.equal(path.dirname(path.dirname(b.file)), path.resolve(out), 'inside the run folder, not in a sub-folder named after the table');
          assert.ok(await fileIntact(b.file, b.fileSha256, b.fileBytes));
          const v = await verifyBackup(f.db, b.id);
          assert.deepEqual(v.problems, []);
          assert.ok(v.file?.ok, 'the file holds the rows and checksum of the copy');
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      });
    });

    test('regression (file export): a backup folder under a file fails with exit 12 before any write, the backup unverified, no run running', async () => {
      await withDb(kind, async (f) => {
        const out = tmp('notdir');
        try {
          const dir = await setup(f.db, 'work');
          const before = await checksums(f.db, ['work']);
          writeFileSync(path.join(out, 'plain-file'), 'x');
          const r = await safeApply(f.db, await loadMigration(dir), { backupDir: path.join(out, 'plain-file', 'backups') });
          assert.equal(r.error?.code, 'BELAY_BACKUP_FILES', String(r.error?.message));
          assert.equal(r.error.exitCode, EXIT.files);
          assert.match(r.error.message, /a part of the path is a file, not a folder \(ENOTDIR\)/);
          assert.match(r.error.message, /backup 1 marked unverified, nothing was written to the tables; run 1 is resumable/);
          assert.match(r.error.fix ?? '', /belay apply .*migration\.ts/);
          assert.equal(r.status, 'failed');
          assert.deepEqual(await runState(f.db), { status: 'failed', code: 'BELAY_BACKUP_FILES' });
          assert.deepEqual(
            (await listBackups(f.db)).map((b) => [b.status, b.file]),
            [['unverified', null]],
          );
          assert.deepEqual(await checksums(f.db, ['work']), before, 'stopped before any write');
          // resumed with a folder that works: the files are exported from the verified copy, the run goes on
          const good = path.join(out, 'good');
          const again = await safeApply(f.db, await loadMigration(dir), { backupDir: good });
          assert.equal(again.error, undefined, String(again.error?.message));
          assert.ok(again.resumed);
          const [b] = await listBackups(f.db);
          assert.equal(b!.status, 'verified');
          assert.ok(await fileIntact(b!.file, b!.fileSha256, b!.fileBytes));
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      });
    });

    test('regression (file export): a truncated file, a missing file and a killed export are never reported as backups; the resume exports again', async () => {
      await withDb(kind, async (f) => {
        const out = tmp('torn');
        try {
          const dir = await setup(f.db, 'work');
          const m = await loadMigration(dir);
          const before = await checksums(f.db, ['work']);
          await f.db.query('UPDATE knob SET stop = true');
          // 1. the backup exported, then the run stopped before writing; the file is torn afterwards
          const first = await safeApply(f.db, m, { backupDir: out });
          assert.equal(first.error?.code, 'BELAY_ABORTED', String(first.error?.message));
          assert.equal(first.status, 'paused');
          const [b1] = await listBackups(f.db);
          truncateSync(b1!.file!, 40);
          const second = await safeApply(f.db, m, { backupDir: out });
          assert.equal(second.error?.code, 'BELAY_ABORTED');
          const [b2] = await listBackups(f.db);
          assert.equal(b2!.id, b1!.id, 'the same backup, not a new copy');
          assert.notEqual(b2!.file, b1!.file, 'exported anew into another folder');
          assert.ok(await fileIntact(b2!.file, b2!.fileSha256, b2!.fileBytes));
          // 2. the file deleted
          unlinkSync(b2!.file!);
          await safeApply(f.db, m, { backupDir: out });
          const [b3] = await listBackups(f.db);
          assert.ok(await fileIntact(b3!.file, b3!.fileSha256, b3!.fileBytes));
          // 3. what a process killed mid-export leaves: a verified copy without its file, a folder without manifest
          await f.db.query(`UPDATE belay.backups SET file = NULL, file_sha256 = NULL, file_bytes = NULL, manifest = NULL`);
          const abandoned = path.join(out, 'run-1-20260101T000000');
          mkdirSync(abandoned);
          writeFileSync(path.join(abandoned, `r1_work.copy.gz${PARTIAL_SUFFIX}`), 'half a file');
          await f.db.query('UPDATE knob SET stop = false');
          const done = await safeApply(f.db, m, { backupDir: out });
          assert.equal(done.error, undefined, String(done.error?.message));
          assert.equal(done.status, 'completed');
          const [b4] = await listBackups(f.db);
          assert.ok(await fileIntact(b4!.file, b4!.fileSha256, b4!.fileBytes));
          assert.ok(!existsSync(abandoned), 'the folder the killed export left is removed');
          const v = await verifyBackup(f.db, b4!.id);
          assert.deepEqual(v.problems, []);
          // what the backup holds is the table as the run found it
          assert.notDeepEqual(await checksums(f.db, ['work']), before, 'the run wrote');
          for (const folder of readdirSync(out)) assert.ok(readdirSync(path.join(out, folder)).includes('manifest.json'), `${folder} holds a manifest`);
        } finally {
          rmSync(out, { recursive: true, force: true });
        }
      });
    });
  });
}

/** True when this process may mount a tmpfs in a mount namespace of its own (root with unshare). */
function canMountTmpfs(): boolean {
  const probe = tmp('probe');
  try {
    return spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o size=16k tmpfs "$0"', probe], { stdio: 'ignore' }).status === 0;
  } finally {
    rmSync(probe, { recursive: true, force: true });
  }
}

/** belay in a child whose mount namespace has a `kb` kB tmpfs at `at`: a real full disk, unseen by anyone else. */
function belayOnSmallDisk(at: string, kb: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      'unshare',
      ['-m', 'sh', '-c', `mount -t tmpfs -o size=${kb}k tmpfs "$0" && exec "$@"`, at, process.execPath, '--import', TSX, BELAY, ...args],
      {
        env: { ...process.env, DATABASE_URL: '' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

for (const kind of DB_KINDS) {
  test(`regression (file export): a full disk on ${kind} exits 12 with the reason, marks the backup unverified, leaves no run running and no file; the resume exports again`, {
    skip: !canMountTmpfs() && 'needs root and unshare for a tmpfs of its own',
  }, async () => {
    await withDb(
      kind,
      async (f) => {
        const disk = tmp('disk');
        try {
          // ~3,000 rows of hex text: about 100 kB as gzip, more than the 32 kB disk
          const dir = await setup(f.db, 'work', 3000);
          const before = await checksums(f.db, ['work']);
          if (kind === 'pglite') await f.db.close();
          const r = await belayOnSmallDisk(disk, 32, ['apply', dir, '--db', f.url, '--backup-dir', path.join(disk, 'backups')]);
          assert.equal(r.code, EXIT.files, r.stderr);
          assert.match(r.stderr, /BELAY_BACKUP_FILES/);
          assert.match(r.stderr, /cannot write backup file .*r1_work\.copy\.gz of table work: the disk is full \(ENOSPC\)/);
          assert.match(r.stderr, /backup 1 marked unverified, nothing was written to the tables; run 1 is resumable/);
          assert.match(r.stderr, /belay apply .*migration\.ts/);
          await reopened(f.url, kind === 'postgres' ? f.db : undefined, async (db) => {
            assert.deepEqual(await runState(db), { status: 'failed', code: 'BELAY_BACKUP_FILES' }, 'no run left running');
            const backups: BackupRecord[] = await listBackups(db);
            assert.deepEqual(
              backups.map((b) => [b.status, b.file]),
              [['unverified', null]],
            );
            assert.deepEqual(await checksums(db, ['work']), before, 'stopped before any write');
            if (kind === 'postgres') {
              const locks = await db.query(
                `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
              );
              assert.equal(locks.rowCount, 0, 'the migration lock is released');
            }
          });
          // the resume, with room: the same backup exported again from its verified copy, then the run
          const out = tmp('room');
          try {
            const again = await belay(['apply', dir, '--db', f.url, '--backup-dir', out]);
            assert.equal(again.code, EXIT.ok, again.stderr);
            assert.match(again.stderr, /resumed/);
            assert.match(again.stderr, /exported again/);
            await reopened(f.url, kind === 'postgres' ? f.db : undefined, async (db) => {
              const [b] = await listBackups(db);
              assert.equal(b!.status, 'verified');
              assert.ok(await fileIntact(b!.file, b!.fileSha256, b!.fileBytes));
              assert.deepEqual((await verifyBackup(db, b!.id)).problems, []);
            });
          } finally {
            rmSync(out, { recursive: true, force: true });
          }
        } finally {
          rmSync(disk, { recursive: true, force: true });
        }
      },
      { persistent: true },
    );
  });
}
