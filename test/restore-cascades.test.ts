// Rollback and cascades: rows deleted since a run are told apart from rows changed since (and never offered
// to --force); a restore from backup follows the foreign keys (parents first, children's extra rows deleted
// first), restores only the tables the run wrote unless asked, and previews every row it would delete,
// cascades included; the backup copies only the tables the run writes.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backupStage, listBackups } from '../src/backup/backup.ts';
import { type BackupRollbackPreview, rollbackFromBackup } from '../src/backup/restore-run.ts';
import { orderByForeignKeys } from '../src/backup/restore-order.ts';
import type { Db } from '../src/db/connection.ts';
import { checksumTable } from '../src/db/checksum.ts';
import { BelayError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { rollbackScript } from '../src/rollback/rollback-script.ts';
import { sqlTargets, tableRoles } from '../src/spec/written-tables.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { belay } from './helpers/capture.ts';
import { inline, withDb } from './helpers/fixture.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { NO_PSQL, runScript } from './helpers/tools.ts';

async function sums(db: Db, tables: readonly string[]): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables) {
    const c = await checksumTable(db, t);
    out[t] = `${c.rows}:${c.checksum}`;
  }
  return out;
}

const ids = async (db: Db, sql: string) => (await db.query<{ id: number }>(sql)).rows.map((r) => Number(r.id));

/** Users (with a secret) own items through ON DELETE CASCADE; the migration rewrites items.v and only reads users. */
const OWNED = `
  CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, password_hash text NOT NULL);
  CREATE TABLE items (id int PRIMARY KEY, owner int NOT NULL REFERENCES users (id) ON DELETE CASCADE, v int NOT NULL);
  CREATE INDEX ON items (owner);
  INSERT INTO users SELECT g, 'user ' || g, md5(g::text) FROM generate_series(1, 10) g;
  INSERT INTO items SELECT g, 1 + g % 10, g FROM generate_series(1, 400) g;`;

const bumpItems: MigrationInput = {
  id: 'bump-items',
  purpose: 'adds one to every item value, reading the owners to keep active users only',
  tables: ['items', 'users'],
  steps: [
    {
      kind: 'batched',
      name: 'bump',
      table: 'items',
      writes: ['v'],
      projection: 'SELECT i.id, i.v + 1 AS v FROM items i JOIN users u ON u.id = i.owner WHERE i.id BETWEEN $1 AND $2',
      batchSize: 100,
    },
  ],
};

/** A parent and a child (non-deferrable FK, listed child first), the parent also referencing itself. */
const TREE = `
  CREATE TABLE parent (id int PRIMARY KEY, up int REFERENCES parent (id), v int NOT NULL);
  CREATE TABLE child (id int PRIMARY KEY, pid int NOT NULL REFERENCES parent (id), v int NOT NULL);
  INSERT INTO parent SELECT g, CASE WHEN g > 10 THEN g - 10 END, g FROM generate_series(1, 50) g;
  INSERT INTO child SELECT g, 1 + g % 50, g FROM generate_series(1, 200) g;`;

const bumpTree: MigrationInput = {
  id: 'bump-tree',
  purpose: 'adds one to the values of parents and children, in two batched steps',
  tables: ['child', 'parent'],
  steps: [
    { kind: 'batched', name: 'child-v', table: 'child', writes: ['v'], projection: 'SELECT id, v + 1 AS v FROM child WHERE id BETWEEN $1 AND $2' },
    { kind: 'batched', name: 'parent-v', table: 'parent', writes: ['v'], projection: 'SELECT id, v + 1 AS v FROM parent WHERE id BETWEEN $1 AND $2' },
  ],
};

test('restore order: parents first, deferrable foreign keys and self-references do not constrain it, a non-deferrable cycle is refused', () => {
  const fk = (name: string, child: number, parent: number, deferrable = false) => ({ name, child, parent, deferrable });
  assert.deepEqual(orderByForeignKeys(['c', 'p', 'g'], [fk('c_p', 0, 1), fk('p_g', 1, 2), fk('p_p', 1, 1)]).parentsFirst, [2, 1, 0]);
  const soft = orderByForeignKeys(['a', 'b'], [fk('a_b', 0, 1), fk('b_a', 1, 0, true)]);
  assert.deepEqual(soft, { parentsFirst: [1, 0], deferred: ['b_a'] });
  assert.throws(
    () => orderByForeignKeys(['a', 'b', 'x'], [fk('a_b', 0, 1), fk('b_a', 1, 0)]),
    (e: unknown) => e instanceof BelayError && e.code === 'BELAY_RESTORE_CYCLE' && /"a_b", "b_a"/.test(e.message) && /DEFERRABLE/.test(e.fix ?? ''),
  );
});

test('the tables a plain SQL step writes are read from its statements (data-modifying CTEs and ALTER TABLE included)', async () => {
  assert.deepEqual(
    await sqlTargets(`UPDATE "EventType" SET x = 1; WITH d AS (DELETE FROM public.users RETURNING id) INSERT INTO audit SELECT * FROM d;
      TRUNCATE a; ALTER TABLE q ADD COLUMN z int; SELECT * FROM only_read; CREATE INDEX ON r (x)`),
    ['EventType', 'audit', 'public.users', 'a', 'q'],
  );
});

for (const kind of DB_KINDS) {
  describe(`rollback and cascades on ${kind}`, () => {
    test('rollback reports rows deleted since (ON DELETE CASCADE from users) apart from rows changed since, and never offers --force for them', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(OWNED);
        const m = inline(bumpItems);
        const r = await apply(f.db, m, { stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        // after the run: someone edits an item, and deleting user 3 deletes its items through the cascade
        const gone = await ids(f.db, 'SELECT id FROM items WHERE owner = 3 ORDER BY id');
        await f.db.exec('UPDATE items SET v = -1 WHERE id = 1; DELETE FROM users WHERE id = 3;');
        const out = kind === 'postgres' ? await belay(['--db', f.url, 'rollback', String(r.runId)]) : undefined;
        const rb = out ? undefined : await rollback(f.db, r.runId);
        if (rb) {
          assert.equal(rb.changedCount, 1);
          assert.equal(rb.deletedCount, gone.length);
          assert.deepEqual(
            rb.conflicts.flatMap((c) => c.keys),
            [1],
          );
          assert.deepEqual(
            rb.conflicts.flatMap((c) => c.deleted).sort((a, b) => Number(a) - Number(b)),
            gone,
          );
        }
        if (out) {
          assert.equal(out.code, 11, out.stderr);
          assert.match(out.stdout, /1 row\(s\) changed since the migration wrote them were left alone \(--force overwrites/);
          assert.match(
            out.stdout,
            new RegExp(`${gone.length} row\\(s\\) deleted since the migration wrote them could not be restored \\(not even with --force`),
          );
          for (const id of gone.slice(0, 20)) assert.match(out.stdout, new RegExp(`[\\[,]${id}[\\],]`), `deleted key ${id} listed`);
          assert.match(out.stdout, /the run's backup holds them .*"belay_backup"\."r\d+_items"/);
          // the --force advice is given for the changed row only, on its own line
          const forceLines = out.stdout.split('\n').filter((l) => l.includes('--force'));
          assert.ok(
            forceLines.every((l) => !/deleted since/.test(l) || /not even with --force/.test(l)),
            forceLines.join('\n'),
          );
        }
        const st = await f.db.query<{ summary: { rollback: { changed: number; deleted: number } } }>(`SELECT summary FROM belay.runs WHERE id = $1`, [r.runId]);
        assert.deepEqual([st.rows[0]!.summary.rollback.changed, st.rows[0]!.summary.rollback.deleted], [1, gone.length]);
      });
    });

    test('the rollback script lists rows deleted since apart (a NOTICE and a row of kind "deleted since" each), and restores the rest', {
      skip: kind === 'postgres' && NO_PSQL,
    }, async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(OWNED);
        const r = await apply(f.db, inline(bumpItems));
        assert.equal(r.status, 'completed', String(r.error?.message));
        const gone = await ids(f.db, 'SELECT id FROM items WHERE owner = 4 ORDER BY id');
        await f.db.exec('DELETE FROM users WHERE id = 4');
        const out = await runScript(f, (await rollbackScript(f.db, r.runId)).text!);
        if (kind === 'postgres') {
          const listed = [...out.matchAll(/belay deleted: items key (\d+) .*was deleted since the migration: not restored/g)].map((x) => Number(x[1]));
          assert.deepEqual(
            listed.sort((a, b) => a - b),
            gone,
          );
          assert.doesNotMatch(out, /belay conflict:/, 'a deleted row is not a conflict to overwrite');
        } else {
          const d = await f.db.query<{ k: number }>(
            `SELECT k.key::int AS k FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.deleted) k(key) ORDER BY 1`,
          );
          assert.deepEqual(
            d.rows.map((x) => x.k),
            gone,
          );
        }
        const left = await ids(f.db, 'SELECT id FROM items WHERE v <> id ORDER BY id');
        assert.deepEqual(left, [], 'every remaining item has its value back');
      });
    });

    test('restore from backup restores the parent before the child under a non-deferrable foreign key', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(TREE);
        const pre = await sums(f.db, ['parent', 'child']);
        const r = await apply(f.db, inline(bumpTree), { stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        assert.deepEqual((await listBackups(f.db, { runId: r.runId })).map((b) => b.sourceTable).sort(), ['child', 'parent']);
        // since the run: parent 7 deleted with its children and the parent below it (41 refers to 31 … to 1;
        // 17 refers to 7); a new parent 99 with a child; child 5 re-pointed at the new parent 99
        await f.db.exec(`
          DELETE FROM child WHERE pid IN (7, 17, 27, 37, 47);
          UPDATE parent SET up = NULL WHERE up IN (7, 17, 27, 37);
          DELETE FROM parent WHERE id IN (7, 17, 27, 37, 47);
          INSERT INTO parent VALUES (99, 1, 0);
          INSERT INTO child VALUES (999, 99, 0);
          UPDATE child SET pid = 99 WHERE id = 5;`);
        const res = await rollbackFromBackup(f.db, r.runId, { confirm: () => true });
        assert.equal(res.status, 'restored');
        assert.deepEqual(await sums(f.db, ['parent', 'child']), pre, 'both tables back to what the run found');
      });
    });

    test('restore from backup refuses, naming the table and the foreign key, rows whose parent was deleted since; nothing changed', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(OWNED);
        const r = await apply(f.db, inline(bumpItems), { stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        await f.db.exec('DELETE FROM users WHERE id = 5');
        const now = await sums(f.db, ['items', 'users']);
        await assert.rejects(
          rollbackFromBackup(f.db, r.runId, { confirm: () => true }),
          (e: unknown) =>
            e instanceof BelayError &&
            e.code === 'BELAY_RESTORE_BLOCKED' &&
            e.exitCode === 8 &&
            /could not put the backed-up rows of "items" back/.test(e.message) &&
            e.details.constraint === 'items_owner_fkey',
        );
        assert.deepEqual(await sums(f.db, ['items', 'users']), now);
      });
    });

    test('restore from backup of two tables in a cycle: deferred when one foreign key is deferrable, refused (nothing changed) when none is', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`
          CREATE TABLE a (id int PRIMARY KEY, b_id int, v int NOT NULL);
          CREATE TABLE b (id int PRIMARY KEY, a_id int REFERENCES a (id), v int NOT NULL);
          ALTER TABLE a ADD CONSTRAINT a_b FOREIGN KEY (b_id) REFERENCES b (id) DEFERRABLE;
          INSERT INTO a SELECT g, NULL, g FROM generate_series(1, 20) g;
          INSERT INTO b SELECT g, g, g FROM generate_series(1, 20) g;
          UPDATE a SET b_id = id;`);
        const pre = await sums(f.db, ['a', 'b']);
        const spec: MigrationInput = {
          id: 'bump-cycle',
          purpose: 'adds one to the values of two tables that reference each other',
          tables: ['a', 'b'],
          steps: [
            { kind: 'batched', name: 'a-v', table: 'a', writes: ['v'], projection: 'SELECT id, v + 1 AS v FROM a WHERE id BETWEEN $1 AND $2' },
            { kind: 'batched', name: 'b-v', table: 'b', writes: ['v'], projection: 'SELECT id, v + 1 AS v FROM b WHERE id BETWEEN $1 AND $2' },
          ],
        };
        const r = await apply(f.db, inline(spec), { stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        // since the run: the pair 20 deleted (b first, a's reference cleared)
        await f.db.exec('UPDATE a SET b_id = NULL WHERE id = 20; DELETE FROM b WHERE id = 20; DELETE FROM a WHERE id = 20;');
        const changed = await sums(f.db, ['a', 'b']);
        await f.db.exec('ALTER TABLE a ALTER CONSTRAINT a_b NOT DEFERRABLE');
        await assert.rejects(
          rollbackFromBackup(f.db, r.runId, { confirm: () => true }),
          (e: unknown) => e instanceof BelayError && e.code === 'BELAY_RESTORE_CYCLE' && /"a_b"/.test(e.message),
        );
        assert.deepEqual(await sums(f.db, ['a', 'b']), changed, 'refused: nothing changed');
        await f.db.exec('ALTER TABLE a ALTER CONSTRAINT a_b DEFERRABLE');
        const res = await rollbackFromBackup(f.db, r.runId, { confirm: () => true });
        assert.equal(res.status, 'restored');
        assert.deepEqual(await sums(f.db, ['a', 'b']), pre);
      });
    });

    test('restore from backup leaves users created since alone', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`${OWNED}
          CREATE TABLE memberships (id int PRIMARY KEY, user_id int NOT NULL REFERENCES users (id) ON DELETE CASCADE);
          CREATE TABLE credentials (user_id int PRIMARY KEY REFERENCES memberships (id) ON DELETE CASCADE, secret text NOT NULL);`);
        const pre = await sums(f.db, ['items']);
        const m = inline(bumpItems);
        assert.deepEqual(await tableRoles(f.db, m.spec), { written: ['items'], read: ['users'] });
        const r = await apply(f.db, m, { stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        // only the written table is copied: the users' password hashes are not
        assert.deepEqual(
          (await listBackups(f.db, { runId: r.runId })).map((b) => b.sourceTable),
          ['items'],
        );
        const newUser = `INSERT INTO users VALUES (50, 'new since', 'x'); INSERT INTO memberships VALUES (500, 50); INSERT INTO credentials VALUES (500, 's3cret');`;
        await f.db.exec(newUser);
        const others = await sums(f.db, ['users', 'memberships', 'credentials']);
        let seen: BackupRollbackPreview | undefined;
        const res = await rollbackFromBackup(f.db, r.runId, {
          confirm: (p) => {
            seen = p;
            return true;
          },
        });
        assert.equal(res.status, 'restored');
        assert.deepEqual(
          seen!.tables.map((t) => t.table),
          ['items'],
        );
        assert.deepEqual(seen!.effects.cascades, [], 'no cascade: users is not touched');
        assert.deepEqual(await sums(f.db, ['items']), pre);
        assert.deepEqual(await sums(f.db, ['users', 'memberships', 'credentials']), others, 'the new user, its membership and credential stay');

        // a run that was asked to back up its read tables: restoring users only with the flag, previewed whole
        const r2 = await apply(f.db, m, { again: true, stages: [backupStage({ readTables: true })] });
        assert.equal(r2.status, 'completed', String(r2.error?.message));
        await f.db.exec(
          `INSERT INTO users VALUES (60, 'newer', 'y'); INSERT INTO memberships VALUES (600, 60), (601, 60); INSERT INTO credentials VALUES (600, 't0ken');`,
        );
        const now = await sums(f.db, ['users', 'memberships', 'credentials']);
        let skipped: BackupRollbackPreview | undefined;
        const no = await rollbackFromBackup(f.db, r2.runId, {
          confirm: (p) => {
            skipped = p;
            return false;
          },
        });
        assert.equal(no.status, 'cancelled');
        assert.deepEqual(skipped!.skipped, ['users'], 'backed up but left alone without the flag');
        let asked: BackupRollbackPreview | undefined;
        const cancelled = await rollbackFromBackup(f.db, r2.runId, {
          readTables: true,
          confirm: (p) => {
            asked = p;
            return false;
          },
        });
        assert.equal(cancelled.status, 'cancelled');
        assert.deepEqual(await sums(f.db, ['users', 'memberships', 'credentials']), now, 'previews write nothing');
        assert.deepEqual(asked!.readTables, ['users']);
        const users = asked!.tables.find((t) => t.table === 'users')!;
        assert.deepEqual([users.added, users.samples.added], [1, [{ id: 60 }]]);
        const cascades = Object.fromEntries(asked!.effects.cascades.map((c) => [c.table, [c.deleted, c.deletedKeys]]));
        assert.deepEqual(cascades, { memberships: [2, [{ id: 600 }, { id: 601 }]], credentials: [1, [{ user_id: 600 }]] }, 'every row the cascades delete');
        if (kind === 'postgres') {
          // the command line shows them before asking, and refuses without a terminal
          const out = await belay(['--db', f.url, 'rollback', String(r2.runId), '--from-backup', '--include-read-tables']);
          assert.equal(out.code, 2);
          assert.match(out.stderr, /users \(backup \d+\) — a table the run only READ/);
          assert.match(out.stderr, /memberships \(not restored\): 2 row\(s\) deleted through ON DELETE CASCADE, keys \[\{"id":600\},\{"id":601\}\]/);
          assert.match(out.stderr, /credentials \(not restored\): 1 row\(s\) deleted through ON DELETE CASCADE/);
        }
        assert.deepEqual(await sums(f.db, ['users', 'memberships', 'credentials']), now);
      });
    });
  });
}
