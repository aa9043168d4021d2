// Rollback you can trust: the standalone SQL script (run with psql on the server, executed as is on
// PGlite), plain SQL steps undone in reverse, irreversible steps refused before anything is touched.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { main } from '../src/cli/main.ts';
import type { Db } from '../src/db/connection.ts';
import { checksumTable } from '../src/db/checksum.ts';
import { StateError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import { backupStage } from '../src/backup/backup.ts';
import { type BackupRollbackPreview, rollbackFromBackup } from '../src/backup/restore-run.ts';
import { reversibility } from '../src/rollback/reversibility.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { rollbackScript } from '../src/rollback/rollback-script.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { validate } from '../src/spec/load.ts';
import { DB_KINDS, type FreshDb } from './helpers/fresh-db.ts';
import { checksums, flagship, writtenIds } from './helpers/flagship.ts';
import { NO_PSQL, runScript } from './helpers/tools.ts';
import { inline, withDb, withSession } from './helpers/fixture.ts';

const loaded = (input: MigrationInput) => inline(input);

/** Rows of a that are not in b, and of b not in a (as multisets). */
async function diffCount(db: Db, a: string, b: string): Promise<number> {
  const r = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ((TABLE ${a} EXCEPT ALL TABLE ${b}) UNION ALL (TABLE ${b} EXCEPT ALL TABLE ${a})) d`);
  return r.rows[0]!.n;
}

async function scriptConflicts(f: FreshDb, output: string): Promise<number[]> {
  if (f.db.kind === 'postgres') return [...output.matchAll(/belay conflict: EventType key (\d+)/g)].map((m) => Number(m[1]));
  const r = await f.db.query<{ k: number }>(`SELECT k.key::int AS k FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.changed) k(key) ORDER BY 1`);
  return r.rows.map((x) => x.k);
}

const sqlAndBatched = (down2: string | null = 'DROP INDEX t_v2_idx'): MigrationInput => ({
  id: 'sql-steps',
  purpose: 'adds column v2, fills it in batches, indexes it: plain SQL steps around a batched one',
  tables: ['t'],
  steps: [
    { kind: 'sql', name: 'add-column', up: 'ALTER TABLE t ADD COLUMN v2 int', down: 'ALTER TABLE t DROP COLUMN v2' },
    {
      kind: 'batched',
      name: 'fill-v2',
      table: 't',
      writes: ['v2'],
      projection: `SELECT id, id * 2 AS v2 FROM t WHERE id BETWEEN $1 AND $2 AND id % 5 <> 0`,
      batchSize: 150,
    },
    { kind: 'sql', name: 'index-v2', up: 'CREATE INDEX t_v2_idx ON t (v2)', down: down2 },
  ],
});

async function seedT(db: Db): Promise<void> {
  await db.exec(`CREATE TABLE t (id int PRIMARY KEY, v text);
    INSERT INTO t SELECT g, 'row ' || g || ' ''q'' é' FROM generate_series(1, 1000) g;`);
}

async function schemaOf(db: Db): Promise<string> {
  const r = await db.query<{ s: string }>(`SELECT string_agg(x, ',' ORDER BY x) AS s FROM (
      SELECT 'col:' || attname AS x FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped
      UNION ALL SELECT 'idx:' || indexname FROM pg_indexes WHERE tablename = 't') q`);
  return r.rows[0]!.s;
}

for (const kind of DB_KINDS) {
  describe(`rollback on ${kind}`, () => {
    const psql = { skip: kind === 'postgres' && NO_PSQL };
    test('the SQL script restores the flagship to its pre-run checksums, twice harmlessly, skipping and listing rows changed since', psql, async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 3_000, seed: 11 });
        const pre = await checksums(f.db);
        const m = await flagship();
        const r1 = await apply(f.db, m, { batchSize: 257 });
        assert.equal(r1.status, 'completed', String(r1.error?.message));
        assert.notDeepEqual(await checksums(f.db), pre, 'the migration changed rows');
        let script: string;
        if (kind === 'postgres') {
          // through the command line, as a user would
          const file = path.join(mkdtempSync(path.join(tmpdir(), 'belay-cli-')), 'undo.sql');
          const code = await main(['node', 'belay', '--db', f.url, 'rollback', String(r1.runId), '--sql', '-o', file]);
          assert.equal(code, 0);
          script = readFileSync(file, 'utf8');
        } else {
          script = (await rollbackScript(f.db, r1.runId)).text!;
        }
        assert.match(script, /^BEGIN;$/m);
        await runScript(f, script);
        assert.deepEqual(await checksums(f.db), pre, 'back to the pre-run checksums');
        const st = await f.db.query<{ status: string }>(`SELECT status FROM belay.runs WHERE id = $1`, [r1.runId]);
        assert.equal(st.rows[0]!.status, 'rolled_back');
        await runScript(f, script);
        assert.deepEqual(await checksums(f.db), pre, 'running it twice is harmless');

        // second run: someone changes a written row (conflict) and an untouched row after the migration
        await f.db.exec(`CREATE TABLE snap AS TABLE "EventType"`);
        const r2 = await apply(f.db, m, { batchSize: 257 });
        assert.equal(r2.status, 'completed');
        const [x, x2] = await writtenIds(f.db, r2.runId);
        await f.db.exec(`INSERT INTO users (id, username, email) VALUES (99999999, 'late', 'late@example.com');
          UPDATE "EventType" SET "userId" = 99999999 WHERE id = ${x};
          UPDATE "EventType" SET title = 'edited after the migration' WHERE id = ${x2};
          UPDATE snap SET "userId" = 99999999 WHERE id = ${x};
          UPDATE snap SET title = 'edited after the migration' WHERE id = ${x2};`);
        const script2 = (await rollbackScript(f.db, r2.runId)).text!;
        const out = await runScript(f, script2);
        assert.deepEqual(await scriptConflicts(f, out), [x], 'the row changed since is listed as the only conflict');
        assert.equal(await diffCount(f.db, 'snap', '"EventType"'), 0, 'every other row restored; both later changes kept');
        // built-in bookkeeping agrees: the batch lists the conflict
        const c = await f.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM belay.batches WHERE run_id = $1 AND conflicts->'changed' @> $2::jsonb`, [
          r2.runId,
          JSON.stringify([x]),
        ]);
        assert.equal(c.rows[0]!.n, 1);
        await runScript(f, script2);
        assert.equal(await diffCount(f.db, 'snap', '"EventType"'), 0, 'a second run changes nothing');
      });
    });

    test('plain SQL steps around a batched step: applied, then undone in reverse (built-in and script)', psql, async () => {
      await withDb(kind, async (f) => {
        await seedT(f.db);
        const pre = await checksumTable(f.db, 't');
        const preSchema = await schemaOf(f.db);
        const m = loaded(sqlAndBatched());
        const r = await apply(f.db, m);
        assert.equal(r.status, 'completed', String(r.error?.message));
        assert.equal(r.steps[1]!.rowsChanged, 800);
        assert.match(await schemaOf(f.db), /col:v2.*idx:t_v2_idx/);
        const rb = await rollback(f.db, r.runId);
        assert.equal(rb.restored, 800);
        assert.equal(await schemaOf(f.db), preSchema, 'column and index gone');
        assert.deepEqual(await checksumTable(f.db, 't'), pre);

        const r2 = await apply(f.db, m, { again: true });
        assert.equal(r2.status, 'completed');
        const script = (await rollbackScript(f.db, r2.runId)).text!;
        await runScript(f, script);
        assert.equal(await schemaOf(f.db), preSchema);
        assert.deepEqual(await checksumTable(f.db, 't'), pre, 'the script undid all three steps');
        await runScript(f, script); // belay's step records keep the downs from running twice
        assert.deepEqual(await checksumTable(f.db, 't'), pre);
      });
    });

    test('an irreversible SQL step is refused before anything is touched, unless --skip-irreversible', async () => {
      await withDb(kind, async (f) => {
        await seedT(f.db);
        const spec = sqlAndBatched(null);
        const rv = reversibility(validate(spec));
        assert.equal(rv.reversible, false);
        assert.deepEqual(
          rv.irreversible.map((s) => s.name),
          ['index-v2'],
        );
        assert.match(rv.steps[2]!.how, /IRREVERSIBLE/);
        const r = await apply(f.db, loaded(spec));
        assert.equal(r.status, 'completed');
        const after = await checksumTable(f.db, 't');
        await assert.rejects(rollback(f.db, r.runId), (e: unknown) => e instanceof StateError && e.code === 'BELAY_IRREVERSIBLE' && /index-v2/.test(e.message));
        await assert.rejects(rollbackScript(f.db, r.runId), (e: unknown) => e instanceof StateError && e.code === 'BELAY_IRREVERSIBLE');
        assert.deepEqual(await checksumTable(f.db, 't'), after, 'nothing was touched');
        const st = await f.db.query<{ status: string }>(`SELECT status FROM belay.runs WHERE id = $1`, [r.runId]);
        assert.equal(st.rows[0]!.status, 'completed');
        const rb = await rollback(f.db, r.runId, { skipIrreversible: true });
        assert.deepEqual(rb.skippedIrreversible, ['index-v2']);
        // the first step's down drops the column, and with it the index the irreversible step left in place
        assert.equal(await schemaOf(f.db), 'col:id,col:v,idx:t_pkey');
      });
    });

    test('--from-backup shows what it would overwrite (incl. changes by others), refuses without confirmation, restores the checksums', async () => {
      await withDb(kind, async (f) => {
        await generate(f.db, { rows: 2_000, seed: 5 });
        const pre = await checksums(f.db);
        const r = await apply(f.db, await flagship(), { batchSize: 300, stages: [backupStage()] });
        assert.equal(r.status, 'completed', String(r.error?.message));
        const other = (await f.db.query<{ id: number }>(`SELECT id FROM "EventType" WHERE "teamId" IS NOT NULL ORDER BY id LIMIT 1`)).rows[0]!.id;
        await f.db.query(`UPDATE "EventType" SET title = 'changed by someone else' WHERE id = $1`, [other]);
        const changedNow = await checksums(f.db);
        if (kind === 'postgres') {
          // no terminal and no --yes: refused with exit 2, nothing restored
          const code = await main(['node', 'belay', '--db', f.url, 'rollback', String(r.runId), '--from-backup']);
          assert.equal(code, 2);
          assert.deepEqual(await checksums(f.db), changedNow);
        }
        let seen: BackupRollbackPreview | undefined;
        const no = await rollbackFromBackup(f.db, r.runId, {
          confirm: (p) => {
            seen = p;
            return false;
          },
        });
        assert.equal(no.status, 'cancelled');
        assert.deepEqual(await checksums(f.db), changedNow, 'cancelled: nothing written');
        const et = seen!.tables.find((t) => t.table === 'EventType')!;
        const written = (await f.db.query<{ n: number }>(`SELECT coalesce(sum(rows_changed), 0)::int AS n FROM belay.batches WHERE run_id = $1`, [r.runId]))
          .rows[0]!.n;
        assert.equal(et.changed, written + 1, 'every row the run wrote, plus the one changed by someone else');
        assert.deepEqual(et.notWrittenByRun, { count: 1, sample: [String(other)] });
        const yes = await rollbackFromBackup(f.db, r.runId, { confirm: () => true });
        assert.equal(yes.status, 'restored');
        assert.deepEqual(await checksums(f.db), pre, 'every table back to its backup');
        const st = await f.db.query<{ status: string }>(`SELECT status FROM belay.runs WHERE id = $1`, [r.runId]);
        assert.equal(st.rows[0]!.status, 'rolled_back');
      });
    });
  });
}

describe('rollback under load (postgres)', () => {
  test('while another connection inserts and updates event types, rollback restores exactly the rows the migration wrote', async () => {
    await withDb('postgres', (f) =>
      withSession(f.url, async (load) => {
        await generate(f.db, { rows: 10_000, seed: 3 });
        await f.db.exec(`CREATE TABLE expected (LIKE "EventType" INCLUDING DEFAULTS); INSERT INTO expected SELECT * FROM "EventType"`);
        const r = await apply(f.db, await flagship(), { batchSize: 400 });
        assert.equal(r.status, 'completed', String(r.error?.message));
        const written = await writtenIds(f.db, r.runId);
        const ids = (await f.db.query<{ id: number }>(`SELECT id FROM "EventType" ORDER BY id`)).rows.map((x) => x.id);
        // every statement the load loop committed, in commit order, to replay on "expected"
        const log: Array<(t: string) => [string, unknown[]]> = [];
        let stop = false;
        let n = 0;
        const loop = (async () => {
          while (!stop) {
            const k = ++n; // each statement keeps its own number for the replay
            const pick = k % 5;
            const op: (t: string) => [string, unknown[]] =
              pick < 2
                ? (t) => [
                    `INSERT INTO ${t} (id, title, slug, "createdAt") VALUES ($1, $2, $3, '2026-01-01T00:00:00Z')`,
                    [50_000_000 + k, `load ${k}`, `load-${k}`],
                  ]
                : pick < 4
                  ? (
                      (id) =>
                      (t: string): [string, unknown[]] => [`UPDATE ${t} SET title = $2, description = $3 WHERE id = $1`, [id, `title ${k}`, `desc ${k}`]]
                    )(ids[(k * 7919) % ids.length]!)
                  : // a user who owns nothing yet takes over a row the migration wrote: (userId, slug) stays unique
                    (
                      (id) =>
                      (t: string): [string, unknown[]] => [`UPDATE ${t} SET "userId" = $2 WHERE id = $1`, [id, 80_000_000 + k]]
                    )(written[(k * 104729) % written.length]!);
            const [sql, params] = op('"EventType"');
            await load.query(sql, params);
            log.push(op);
          }
        })();
        await new Promise((res) => setTimeout(res, 150));
        const rb = await rollback(f.db, r.runId);
        await new Promise((res) => setTimeout(res, 100));
        stop = true;
        await loop;
        assert.ok(log.length > 50, `the load loop ran (${log.length} statements)`);
        for (const op of log) {
          const [sql, params] = op('expected');
          await f.db.query(sql, params);
        }
        assert.equal(await diffCount(f.db, 'expected', '"EventType"'), 0, 'pre-run rows + every change of the load, nothing else');
        const loadOwned = new Set(
          log
            .map((op) => op('x'))
            .filter(([sql]) => sql.includes('"userId"'))
            .map(([, p]) => p[0] as number),
        );
        const conflicts = rb.conflicts.flatMap((c) => c.keys as number[]);
        assert.ok(conflicts.length > 0, 'some rows were changed by the load before rollback reached them');
        for (const k of conflicts) assert.ok(loadOwned.has(Number(k)), `conflict ${k} is a row the load changed`);
        assert.equal(rb.restored + rb.conflictCount, written.length, 'every written row was either restored or reported');
      }),
    );
  });
});
