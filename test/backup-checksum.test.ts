// The backup's verification: a copy that differs from its source when it is re-read stops the backup;
// the checksum tells apart values that compare equal but are not the same, notices rows swapping values,
// and does not depend on the session's settings; the second session reads the copy's snapshot.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { takeBackup } from '../src/backup/backup.ts';
import { openSnapshotReader } from '../src/backup/snapshot-reader.ts';
import { checksumColumns, checksumTable } from '../src/db/checksum.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { pinnedSettingsSql } from '../src/db/sql.ts';
import { EXIT } from '../src/errors.ts';
import { withDb, withSession } from './helpers/fixture.ts';
import { DB_KINDS, SERVER } from './helpers/fresh-db.ts';

const ROWS = 5_000;

/** An event trigger that edits every table CREATE TABLE AS makes, in the same transaction: the copy differs from what was read. */
async function tamperWithCopies(db: Db, edit: string): Promise<void> {
  await db.exec(`
CREATE FUNCTION tamper() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record;
BEGIN
  FOR r IN SELECT objid::regclass AS t FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    EXECUTE format(${`'${edit.replace(/'/g, "''")}'`}, r.t, r.t);
  END LOOP;
END $$;
CREATE EVENT TRIGGER tamper ON ddl_command_end WHEN TAG IN ('CREATE TABLE AS') EXECUTE FUNCTION tamper();`);
}

async function items(db: Db): Promise<void> {
  await db.exec(`CREATE TABLE items (id int PRIMARY KEY, title text, price numeric, meta jsonb, at timestamptz);
    INSERT INTO items SELECT g, 'item ' || g, g * 1.5, jsonb_build_object('n', g), timestamptz '2024-01-01' + g * interval '1 minute'
      FROM generate_series(1, ${ROWS}) g;`);
}

/** The checksum of a one-column table holding `value` (a SQL literal) of `type`. */
async function sumOf(db: Db, type: string, value: string): Promise<string> {
  await db.exec(`DROP TABLE IF EXISTS one; CREATE TABLE one (v ${type}); INSERT INTO one VALUES (${value});`);
  const c = await checksumTable(db, 'one');
  return `${c.rows}:${c.checksum}`;
}

for (const kind of DB_KINDS) {
  describe(`backup verification on ${kind}`, () => {
    for (const [what, edit] of [
      ['a value changed', `UPDATE %s SET title = title || '!' WHERE id = (SELECT max(id) FROM %s)`],
      ['a row deleted', `DELETE FROM %s WHERE id = (SELECT min(id) FROM %s)`],
    ] as const) {
      test(`a copy that differs from its source when re-read (${what}) stops the backup: BELAY_BACKUP_UNVERIFIED, nothing kept`, async () => {
        await withDb(kind, async (f) => {
          await items(f.db);
          const before = await checksumTable(f.db, 'items');
          await tamperWithCopies(f.db, edit);
          await assert.rejects(takeBackup(f.db, null, ['items']), (e: { code?: string; exitCode?: number }) => {
            assert.equal(e.code, 'BELAY_BACKUP_UNVERIFIED');
            assert.equal(e.exitCode, EXIT.verification);
            return true;
          });
          const left = await f.db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'belay_backup'`,
          );
          assert.equal(left.rows[0]!.n, 0, 'no copy is left');
          assert.equal((await f.db.query(`SELECT 1 FROM belay.backups`)).rows.length, 0, 'no backup is recorded');
          assert.deepEqual(await checksumTable(f.db, 'items'), before, 'the source is untouched');
          // without the tampering the same backup verifies
          await f.db.exec('DROP EVENT TRIGGER tamper');
          const [b] = await takeBackup(f.db, null, ['items']);
          assert.equal(`${b!.rows}:${b!.checksum}`, `${before.rows}:${before.checksum}`);
        });
      });
    }

    test('the checksum tells apart values that compare equal but differ, and NULL from empty', async () => {
      await withDb(kind, async (f) => {
        const pairs: Array<[string, string, string]> = [
          ['numeric', '1.0', '1.00'],
          ['float8', `'0'`, `'-0'`],
          ['jsonb', `'{"a": 1.0}'`, `'{"a": 1.00}'`],
          // jsonb's own hash function gives these two the same hash: jsonb must go through text
          ['jsonb', `'[[1], 2]'`, `'[[1, 2]]'`],
          ['interval', `'1 day'`, `'24 hours'`],
          ['bpchar', `'a'`, `'a  '`],
          ['text', `'a'`, `'A'`],
          ['text', 'NULL', `''`],
          ['int[]', `'{1,2}'`, `'[0:1]={1,2}'`],
          ['timestamptz', `'2024-01-01 00:00:00+00'`, `'2024-01-01 00:00:00.000001+00'`],
          ['timestamptz', `'infinity'`, `'-infinity'`],
          ['timestamptz', `'294276-12-31 23:59:59.999999+00'`, `'4713-01-01 00:00:00+00 BC'`],
          ['date', `'2024-01-01'`, `'2024-01-02'`],
          ['date', `'infinity'`, `'-infinity'`],
          ['bool', 'true', 'false'],
          ['bytea', `'\\x00'`, `'\\x0000'`],
          ['uuid', `'00000000-0000-0000-0000-000000000001'`, `'00000000-0000-0000-0000-000000000002'`],
        ];
        for (const [type, a, b] of pairs) assert.notEqual(await sumOf(f.db, type, a), await sumOf(f.db, type, b), `${type}: ${a} vs ${b}`);
        // the same value gives the same checksum
        assert.equal(await sumOf(f.db, 'jsonb', `'{"a": 1.0}'`), await sumOf(f.db, 'jsonb', `'{"a":1.0}'`));
      });
    });

    test('the checksum notices rows swapping a value and a row swapping two columns, not the order of rows', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TYPE mood AS ENUM ('sad', 'ok');
          CREATE DOMAIN short_text AS varchar(20);
          CREATE TABLE t (id int, a text, b text, n int, m mood, d short_text);
          INSERT INTO t SELECT g, 'a' || g, 'b' || g, g % 7, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::mood, 'd' || g FROM generate_series(1, 200) g;
          CREATE TABLE r AS SELECT * FROM t ORDER BY id DESC;`);
        const base = await checksumTable(f.db, 't');
        assert.deepEqual(await checksumTable(f.db, 'r'), base, 'same rows in another order');
        // rows 1 and 2 exchange n (1 and 2): every column's multiset of values stays the same
        await f.db.query(`UPDATE t SET n = CASE id WHEN 1 THEN 2 ELSE 1 END WHERE id IN (1, 2)`);
        assert.notDeepEqual(await checksumTable(f.db, 't'), base, 'rows swapping a value');
        await f.db.query(`UPDATE t SET n = id % 7 WHERE id IN (1, 2)`);
        assert.deepEqual(await checksumTable(f.db, 't'), base);
        await f.db.query(`UPDATE t SET a = b, b = a WHERE id = 3`);
        assert.notDeepEqual(await checksumTable(f.db, 't'), base, 'a row swapping two columns');
        await f.db.query(`UPDATE t SET a = b, b = a WHERE id = 3`);
        await f.db.query(`UPDATE t SET m = 'ok' WHERE id = 1`);
        assert.notDeepEqual(await checksumTable(f.db, 't'), base, 'an enum changed');
        const cols = await checksumColumns(f.db, 't');
        assert.deepEqual(
          cols.map((c) => c.kind),
          ['int4', 'text', 'text', 'int4', 'enum', 'varchar'],
        );
      });
    });

    test('the checksum does not depend on the session settings that change text forms', async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(`CREATE TABLE s (at timestamptz, d date, i interval, x float8, b bytea, n numeric);
          INSERT INTO s VALUES ('2024-03-10 12:34:56.789+02', '2024-03-10', '1 year 2 mons 3 days 04:05:06', 0.1, '\\xdeadbeef', 1.50);`);
        const plain = await checksumTable(f.db, 's');
        await f.db.exec(`SET TimeZone = 'America/New_York'; SET DateStyle = 'German, DMY'; SET IntervalStyle = 'sql_standard';
          SET extra_float_digits = -3; SET bytea_output = 'escape';`);
        assert.deepEqual(await checksumTable(f.db, 's'), plain);
      });
    });
  });
}

describe('backup verification on postgres only', () => {
  test('a nondeterministic collation does not make the checksum case-blind', async () => {
    await withDb('postgres', async (f) => {
      await f.db.exec(`CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
        CREATE TABLE c (v text COLLATE ci); INSERT INTO c VALUES ('abc');`);
      const lower = await checksumTable(f.db, 'c');
      await f.db.query(`UPDATE c SET v = 'ABC'`);
      assert.equal((await f.db.query<{ eq: boolean }>(`SELECT v = 'abc' AS eq FROM c`)).rows[0]!.eq, true, 'equal under the collation');
      assert.notDeepEqual(await checksumTable(f.db, 'c'), lower);
    });
  });

  test('the second session reads the snapshot of the backup transaction, not what others commit after it', async () => {
    await withDb('postgres', (f) =>
      withSession(f.url, async (other) => {
        await items(f.db);
        const before = await checksumTable(f.db, 'items');
        await f.db.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await f.db.exec(pinnedSettingsSql());
        await f.db.query('SELECT count(*) FROM items'); // the transaction's snapshot is taken here
        // committed after that snapshot, before the second session exists: a snapshot of its own would see them
        await other.query(`UPDATE items SET title = 'changed' WHERE id = 1`);
        await other.query(`INSERT INTO items (id, title) VALUES (${ROWS + 1}, 'new')`);
        const reader = await openSnapshotReader(f.db);
        assert.ok(reader, 'a second session was opened');
        const seen = await reader.checksum('items', await checksumColumns(f.db, 'items'));
        await reader.close();
        await f.db.query('COMMIT');
        assert.deepEqual(seen, before);
        assert.notDeepEqual(await checksumTable(f.db, 'items'), before);
      }),
    );
  });

  test('when no second session can be had (role connection limit), the backup reads the source itself and verifies', async () => {
    const role = `belay_t_one_${process.pid}`;
    try {
      await withDb('postgres', async (f) => {
        const dbName = new URL(f.url).pathname.slice(1);
        await f.db.exec(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN CONNECTION LIMIT 1; ALTER DATABASE ${dbName} OWNER TO ${role};`);
        const url = new URL(f.url);
        url.username = role;
        await withSession(url.toString(), async (db) => {
          await items(db);
          const before = await checksumTable(db, 'items');
          const [b] = await takeBackup(db, null, ['items']);
          assert.equal(`${b!.rows}:${b!.checksum}`, `${before.rows}:${before.checksum}`);
          assert.equal(b!.status, 'verified');
        });
      });
    } finally {
      // the role owns the database: it can go once the database is dropped
      const admin = await openDb(`${SERVER}/postgres`);
      await admin.exec(`DROP ROLE IF EXISTS ${role}`);
      await admin.close();
    }
  });

  test('with writers committing throughout, the backup verifies and holds one consistent state', async () => {
    await withDb('postgres', (f) =>
      withSession(f.url, async (writer) => {
        // every committed state has all rows at the same version: a copy mixing two states would show two
        await f.db.exec(`CREATE TABLE v (id int PRIMARY KEY, version int NOT NULL, pad text);
        INSERT INTO v SELECT g, 0, repeat('x', 100) FROM generate_series(1, 20000) g;`);
        let stop = false;
        let commits = 0;
        const writing = (async () => {
          while (!stop) {
            await writer.query('UPDATE v SET version = version + 1');
            commits++;
          }
        })();
        try {
          for (let i = 0; i < 3; i++) {
            const [b] = await takeBackup(f.db, null, ['v']);
            const versions = await f.db.query<{ n: number }>(`SELECT count(DISTINCT version)::int AS n FROM belay_backup.${`"${b!.copyTable}"`}`);
            assert.equal(versions.rows[0]!.n, 1, 'the copy holds one committed state');
            assert.equal(b!.rows, 20000);
          }
        } finally {
          stop = true;
          await writing;
        }
        assert.ok(commits > 0, 'the writer committed while backups were taken');
      }),
    );
  });
});
