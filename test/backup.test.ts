// Backups before the first write: verified copies, file exports, verify catching tampering, exact
// restore (past triggers and foreign keys), and the CLI refusing to apply without one unless told.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { generate } from '../examples/event-type-owner/generate.ts';
import { backupStage, copySqlName, dropBackup, listBackups, takeBackup, verifyBackup } from '../src/backup/backup.ts';
import type { Manifest } from '../src/backup/files.ts';
import { previewRestore, restoreBackup } from '../src/backup/restore.ts';
import { main } from '../src/cli/main.ts';
import { checksumTable } from '../src/db/checksum.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { qualified } from '../src/db/sql.ts';
import { EXIT } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { checksums, flagship, ROOT } from './helpers/flagship.ts';
import type { RunContext } from '../src/contract.ts';
import { withDb } from './helpers/fixture.ts';

const ROWS = 1_000;

/** PUBLIC (grantee 0) holds no privilege on the relation or schema. */
async function publicCanRead(db: Db, copy: string): Promise<{ table: boolean; schema: boolean }> {
  const r = await db.query<{ t: boolean; s: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a WHERE c.oid = $1::regclass AND a.grantee = 0) AS t,
            EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a WHERE n.nspname = 'belay_backup' AND a.grantee = 0) AS s`,
    [copy],
  );
  return { table: r.rows[0]!.t, schema: r.rows[0]!.s };
}

/** A one-table migration file (the CLI loads migrations from files): raises every price by 10 %. */
function smallMigration(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-mig-'));
  const file = path.join(dir, 'raise-prices.ts');
  writeFileSync(
    file,
    `import { defineMigration } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/index.ts')).href)};
export default defineMigration({
  id: 'raise-prices', purpose: 'Raise every price by ten percent.', tables: ['items'],
  steps: [{ kind: 'batched', name: 'raise', table: 'items', writes: ['price'],
            projection: 'SELECT id, price * 1.1 AS price FROM items WHERE id BETWEEN $1 AND $2' }],
});
`,
  );
  return file;
}

for (const kind of DB_KINDS) {
  describe(`backups on ${kind}`, () => {
    test('the table the run writes is backed up and verified before the first write (the tables it only reads are not), and a resumed run keeps its backup', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: ROWS, seed: 5 });
        const before = await checksums(f.db);
        let seenAtFirstWrite: Record<string, string> | undefined;
        let ctxSeen: RunContext | undefined;
        const backup = backupStage();
        const r = await apply(f.db, await flagship(), {
          stages: [
            backup,
            {
              name: 'probe',
              async before(ctx) {
                // still before any write: the tables are as they were, and the copies equal them
                ctxSeen = ctx;
                seenAtFirstWrite = await checksums(f.db);
              },
            },
          ],
        });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.deepEqual(seenAtFirstWrite, before);
        const list = await listBackups(f.db, { runId: r.runId });
        // the flagship writes "EventType" and only reads the link table and users
        assert.deepEqual(
          list.map((b) => b.sourceTable),
          ['EventType'],
        );
        for (const b of list) {
          assert.equal(b.status, 'verified');
          assert.ok(b.verifiedAt);
          assert.ok(b.sizeBytes! > 0);
          assert.equal(b.copySchema, 'belay_backup');
          assert.match(b.copyTable, new RegExp(`^r${r.runId}_`));
          // the copy equals the source as it was before the run, by an independent checksum
          const c = await checksumTable(f.db, copySqlName(b));
          assert.equal(`${c.rows}:${c.checksum}`, before[b.sourceTable]);
          assert.equal(`${b.rows}:${b.checksum}`, before[b.sourceTable]);
          assert.deepEqual(await publicCanRead(f.db, copySqlName(b)), { table: false, schema: false });
        }
        // on a server the sources were checksummed by a second session in the copy's snapshot
        const ev = await f.db.query<{ data: { sourcesReadBy: string } }>(`SELECT data FROM belay.events WHERE run_id = $1 AND type = 'backups-verified'`, [
          r.runId,
        ]);
        assert.equal(ev.rows[0]?.data.sourcesReadBy, kind === 'postgres' ? 'second session' : 'backup session');
        // the run did write: the copy is not the table any more
        assert.notEqual((await checksums(f.db)).EventType, before.EventType);
        // a resume of the same run finds its verified backups and takes none
        await backup.before!(ctxSeen!);
        assert.equal((await listBackups(f.db, { runId: r.runId })).length, 1);
      });
    });

    test('restore after the flagship apply brings every table back to its pre-run checksum, past triggers and foreign keys', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: ROWS, seed: 6 });
        const before = await checksums(f.db);
        const r = await apply(f.db, await flagship(), { stages: [backupStage()] });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.notEqual((await checksums(f.db)).EventType, before.EventType);
        // after the run: a child table referencing EventType, an audit-like trigger, a deleted and an added row
        await f.db.exec(`
          CREATE TABLE child (id serial PRIMARY KEY, et int NOT NULL REFERENCES "EventType"(id) ON DELETE CASCADE ON UPDATE CASCADE);
          INSERT INTO child (et) SELECT id FROM "EventType" ORDER BY id LIMIT 50;
          CREATE FUNCTION mark() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.title := NEW.title || ' (touched)'; RETURN NEW; END $$;
          CREATE TRIGGER mark_et BEFORE INSERT OR UPDATE ON "EventType" FOR EACH ROW EXECUTE FUNCTION mark();`);
        const gone = (await f.db.query<{ id: number }>(`SELECT id FROM "EventType" WHERE id NOT IN (SELECT et FROM child) ORDER BY id DESC LIMIT 1`)).rows[0]!
          .id;
        await f.db.query(`DELETE FROM "EventType" WHERE id = $1`, [gone]);
        await f.db.query(`INSERT INTO "EventType" (title, slug) VALUES ('new', 'new-after-run')`);
        const ids = (await listBackups(f.db, { runId: r.runId })).map((b) => b.id);
        const previews = await previewRestore(f.db, ids);
        const et = previews.find((p) => p.table === 'EventType')!;
        assert.equal(et.method, 'merge');
        assert.equal(et.added, 1);
        assert.equal(et.deleted, 1);
        // exactly the rows the run wrote are to be overwritten
        assert.equal(et.changed, r.steps[0]!.rowsChanged);
        assert.ok(et.changed > 0);
        const res = await restoreBackup(f.db, ids);
        assert.equal(res.status, 'restored');
        assert.deepEqual(await checksums(f.db), before);
        // children kept (no delete of a wanted row), trigger back on, the sequence never moved back
        assert.equal((await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM child`)).rows[0]!.n, 50);
        assert.equal((await f.db.query<{ e: string }>(`SELECT tgenabled::text AS e FROM pg_trigger WHERE tgname = 'mark_et'`)).rows[0]!.e, 'O');
        const ins = await f.db.query<{ id: number; max: number }>(
          `SELECT nextval(pg_get_serial_sequence('"EventType"', 'id'))::int AS id, (SELECT max(id)::int FROM "EventType") AS max`,
        );
        assert.ok(ins.rows[0]!.id > ins.rows[0]!.max);
        // a confirm that says no changes nothing
        await f.db.query(`UPDATE "EventType" SET slug = slug || '-x' WHERE id = (SELECT min(id) FROM "EventType")`);
        const afterEdit = await checksums(f.db);
        const no = await restoreBackup(f.db, ids, {
          confirm: (p) => {
            assert.equal(p.find((x) => x.table === 'EventType')!.changed, 1);
            return false;
          },
        });
        assert.equal(no.status, 'cancelled');
        assert.deepEqual(await checksums(f.db), afterEdit);
      });
    });

    test('file export: manifest sha256 matches, gzip holds the rows, files 0600 in a 0700 folder; restore from file', async () => {
      await withDb(kind, async (f) => {
        const dir = mkdtempSync(path.join(tmpdir(), 'belay-backup-'));
        await generate(f.db, { rows: ROWS, seed: 7 });
        const before = await checksums(f.db);
        const list = await takeBackup(f.db, null, ['EventType', 'users'], { dir });
        const manifestPath = list[0]!.manifest!;
        assert.equal(statSync(path.dirname(manifestPath)).mode & 0o777, 0o700);
        assert.equal(statSync(manifestPath).mode & 0o777, 0o600);
        const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
        assert.equal(manifest.format, 'belay-backup/1');
        assert.deepEqual(
          manifest.tables.map((t) => t.table),
          ['EventType', 'users'],
        );
        for (const t of manifest.tables) {
          const file = path.join(path.dirname(manifestPath), t.file);
          assert.equal(statSync(file).mode & 0o777, 0o600);
          const gz = readFileSync(file);
          assert.equal(createHash('sha256').update(gz).digest('hex'), t.sha256);
          assert.equal(gz.length, t.bytes);
          assert.equal(`${t.rows}:${t.checksum}`, before[t.table]);
          // the decompressed file is exactly what COPY of the table gives, row for row (order aside)
          const lines = gunzipSync(gz)
            .toString('utf8')
            .split('\n')
            .filter((l) => l.length > 0);
          assert.equal(lines.length, t.rows);
          const chunks: Uint8Array[] = [];
          for await (const c of f.db.copyOut!(`COPY ${qualified(t.table)} TO STDOUT`)) chunks.push(c);
          const expected = Buffer.concat(chunks)
            .toString('utf8')
            .split('\n')
            .filter((l) => l.length > 0);
          assert.deepEqual([...lines].sort(), [...expected].sort());
        }
        const et = list.find((b) => b.sourceTable === 'EventType')!;
        assert.equal((await verifyBackup(f.db, et.id)).file?.ok, true);
        // with the in-database copy gone, the file alone restores the table
        await dropBackup(f.db, et.id);
        assert.equal((await f.db.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NULL AS ok`, [copySqlName(et)])).rows[0]!.ok, true);
        await f.db.query(`UPDATE "EventType" SET "userId" = NULL, title = 'x' WHERE id % 3 = 0`);
        await restoreBackup(f.db, et.id, { from: 'file' });
        assert.equal((await checksums(f.db, ['EventType'])).EventType, before.EventType);
      });
    });

    test('a tampered copy or file fails verify, and restore from a tampered file changes nothing', async () => {
      await withDb(kind, async (f) => {
        const dir = mkdtempSync(path.join(tmpdir(), 'belay-backup-'));
        await generate(f.db, { rows: ROWS, seed: 8 });
        const [b] = await takeBackup(f.db, null, ['EventType'], { dir });
        assert.equal((await verifyBackup(f.db, b!.id)).ok, true);
        await f.db.query(`UPDATE ${copySqlName(b!)} SET title = title || '!' WHERE id = (SELECT max(id) FROM ${copySqlName(b!)})`);
        const v = await verifyBackup(f.db, b!.id);
        assert.equal(v.ok, false);
        assert.equal(v.copy?.ok, false);
        assert.equal(v.copy?.rows, b!.rows, 'same count, different checksum');
        assert.equal(v.file?.ok, true, 'the file was not touched');
        // a file with one row removed (re-compressed, so gzip is valid): sha256 and checksum both differ
        const text = gunzipSync(readFileSync(b!.file!)).toString('utf8').split('\n');
        const { gzipSync } = await import('node:zlib');
        writeFileSync(b!.file!, gzipSync(text.slice(1).join('\n')));
        const v2 = await verifyBackup(f.db, b!.id);
        assert.equal(v2.file?.sha256Ok, false);
        assert.equal(v2.file?.rows, b!.rows! - 1);
        const cur = await checksums(f.db, ['EventType']);
        await f.db.query(`UPDATE "EventType" SET title = 'changed' WHERE id = (SELECT min(id) FROM "EventType")`);
        const edited = await checksums(f.db, ['EventType']);
        assert.notDeepEqual(edited, cur);
        await assert.rejects(restoreBackup(f.db, b!.id, { from: 'file' }), (e: { code?: string }) => e.code === 'BELAY_RESTORE_MISMATCH');
        assert.deepEqual(await checksums(f.db, ['EventType']), edited);
      });
    });

    // Regression: the merge's UPDATE set every column, and the server refuses a value for an identity column
    // GENERATED ALWAYS (428C9): restore from backup of such a table failed
    test('restore from backup of a table with an identity column GENERATED ALWAYS puts back changed, deleted and added rows', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE acct (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY UNIQUE, v text);
          INSERT INTO acct (v) SELECT 'v' || g FROM generate_series(1, 300) g;`);
        const before = await checksumTable(f.db, 'acct');
        const [b] = await takeBackup(f.db, null, ['acct'], {});
        await f.db.exec(`UPDATE acct SET v = 'changed' WHERE id <= 10; DELETE FROM acct WHERE id BETWEEN 11 AND 20; INSERT INTO acct (v) VALUES ('added')`);
        await restoreBackup(f.db, b!.id);
        assert.deepEqual(await checksumTable(f.db, 'acct'), before);
      });
    });

    test('a backup recorded with the text checksum of earlier versions still verifies and restores by it', async () => {
      await withDb(kind, async (f) => {
        const dir = mkdtempSync(path.join(tmpdir(), 'belay-backup-'));
        await generate(f.db, { rows: ROWS, seed: 9 });
        const before = await checksums(f.db, ['EventType']);
        const [b] = await takeBackup(f.db, null, ['EventType'], { dir });
        assert.equal(b!.checksumMethod, 'typed');
        assert.equal(JSON.parse(readFileSync(b!.manifest!, 'utf8')).tables[0].checksumMethod, 'typed');
        // what an earlier version recorded: no method, the sum of the rows' text hashes
        const legacy = await checksumTable(f.db, copySqlName(b!), 'text');
        assert.notEqual(legacy.checksum, b!.checksum);
        await f.db.query(`UPDATE belay.backups SET checksum_method = NULL, checksum = $2 WHERE id = $1`, [b!.id, legacy.checksum]);
        const v = await verifyBackup(f.db, b!.id);
        assert.equal(v.ok, true, v.problems.join('; '));
        assert.equal(v.file?.ok, true);
        // and the method is really used: the typed checksum recorded as text is a mismatch
        await f.db.query(`UPDATE belay.backups SET checksum = $2 WHERE id = $1`, [b!.id, b!.checksum]);
        assert.equal((await verifyBackup(f.db, b!.id)).ok, false);
        await f.db.query(`UPDATE belay.backups SET checksum = $2 WHERE id = $1`, [b!.id, legacy.checksum]);
        await f.db.query(`UPDATE "EventType" SET title = 'changed' WHERE id IN (SELECT id FROM "EventType" ORDER BY id LIMIT 5)`);
        await restoreBackup(f.db, b!.id);
        assert.deepEqual(await checksums(f.db, ['EventType']), before);
        await f.db.query(`UPDATE "EventType" SET title = 'again' WHERE id IN (SELECT id FROM "EventType" ORDER BY id LIMIT 5)`);
        await restoreBackup(f.db, b!.id, { from: 'file' });
        assert.deepEqual(await checksums(f.db, ['EventType']), before);
      });
    });

    test('CLI: apply backs up by default, --no-backup is the only way to skip it; backups list/verify/restore', async () => {
      await withDb(
        kind,
        async (f) => {
          await f.db.exec(`CREATE TABLE items (id int PRIMARY KEY, price numeric NOT NULL, note text);
          INSERT INTO items SELECT g, g * 1.5, CASE WHEN g % 3 = 0 THEN 'n' || g END FROM generate_series(1, 300) g;`);
          const before = await checksums(f.db, ['items']);
          const migration = smallMigration();
          await f.db.close(); // PGlite: one process at a time on the folder
          assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'apply', migration, '--skip-checks']), EXIT.ok);
          let db = await openDb(f.url);
          const taken = await listBackups(db);
          assert.equal(taken.length, 1);
          assert.equal(`${taken[0]!.rows}:${taken[0]!.checksum}`, before.items);
          assert.notDeepEqual(await checksums(db, ['items']), before);
          const runId = taken[0]!.runId!;
          await db.close();
          // each CLI call opens PGlite afresh (seconds each): the read-only commands run on the server only
          if (kind === 'postgres') {
            assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'backups', 'verify', String(taken[0]!.id)]), EXIT.ok);
            assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'backups', 'list']), EXIT.ok);
          }
          assert.equal(await main(['node', 'belay', '--db', f.url, 'apply', migration, '--no-backup', '--backup-dir', '/tmp/x']), EXIT.usage);
          assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'backups', 'restore', String(taken[0]!.id), '--yes']), EXIT.ok);
          db = await openDb(f.url);
          assert.deepEqual(await checksums(db, ['items']), before);
          await db.query(`UPDATE belay.runs SET status = 'rolled_back' WHERE id = $1`, [runId]);
          await db.close();
          // --no-backup: the run writes with no backup taken
          assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'apply', migration, '--skip-checks', '--no-backup']), EXIT.ok);
          db = await openDb(f.url);
          const runs = await db.query<{ id: number }>(`SELECT id::int AS id FROM belay.runs ORDER BY id`);
          assert.equal(runs.rows.length, 2);
          assert.equal((await listBackups(db, { runId: runs.rows[1]!.id })).length, 0);
          assert.notDeepEqual(await checksums(db, ['items']), before);
          // drop removes the copy
          if (kind === 'postgres') assert.equal(await main(['node', 'belay', '--db', f.url, '--json', 'backups', 'drop', String(taken[0]!.id)]), EXIT.ok);
          else await dropBackup(db, taken[0]!.id);
          const gone = await db.query<{ gone: boolean }>(`SELECT to_regclass($1) IS NULL AS gone`, [copySqlName(taken[0]!)]);
          assert.equal(gone.rows[0]!.gone, true);
          await db.close();
        },
        { persistent: true },
      );
    });
  });
}
