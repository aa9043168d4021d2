// Composite primary keys (issue 15, item 4): a table keyed by (team, login) is batched by row-value keyset
// (team, login) > (…), checked, written, verified, resumed and rolled back like a single-key table, with
// keys whose text needs quoting in a row literal ("o'neil, jr (x)") and a text column ordered by "C".
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runChecks } from '../src/checks/run-checks.ts';
import type { Db } from '../src/db/connection.ts';
import { checksumTable } from '../src/db/checksum.ts';
import type { Stage } from '../src/contract.ts';
import { BelayError } from '../src/errors.ts';
import { type BackupRollbackPreview, rollbackFromBackup } from '../src/backup/restore-run.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { rollbackScript } from '../src/rollback/rollback-script.ts';
import { dryRun } from '../src/run/dry-run.ts';
import { cleanupRun, plan, safeApply, type SafeApplyOptions } from '../src/run/pipeline.ts';
import { rehearse } from '../src/run/rehearse.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import type { BelayEvent } from '../src/state/events.ts';
import { monitorRun } from '../src/verify/monitor.ts';
import { getRounds } from '../src/verify/record.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { inline, withDb } from './helpers/fixture.ts';
import { NO_PSQL, runScript } from './helpers/tools.ts';

const ODD = "o'neil, jr (x)";
/** 20 teams of 30 members, one more in team 1 with a login a row literal must quote; seats to give out in `seats`. */
const SCHEMA = `CREATE TABLE member (team int NOT NULL, login text COLLATE "C" NOT NULL, role text NOT NULL DEFAULT 'member', seat int, PRIMARY KEY (team, login));
CREATE UNIQUE INDEX member_team_seat ON member (team, seat);
CREATE TABLE seats (team int NOT NULL, login text NOT NULL, seat int NOT NULL);
INSERT INTO member (team, login) SELECT t, 'user' || l FROM generate_series(1, 20) t, generate_series(1, 30) l;
INSERT INTO member (team, login) VALUES (1, '${ODD.replace(/'/g, "''")}');
INSERT INTO seats SELECT team, login, row_number() OVER (PARTITION BY team ORDER BY login) FROM member;`;
const ROWS = 601;

function migration(step: Record<string, unknown> = {}, options: Record<string, unknown> = {}): MigrationInput {
  return {
    id: 'seat-members',
    purpose: 'Give every member of a team its seat (composite key tests).',
    tables: ['member'],
    steps: [
      {
        kind: 'batched',
        name: 'seat',
        table: 'member',
        writes: ['seat'],
        decide: 'SELECT m.team, m.login, s.seat FROM member m JOIN seats s ON s.team = m.team AND s.login = m.login WHERE m.seat IS DISTINCT FROM s.seat',
        ...step,
      },
    ],
    verify: [{ name: 'seated', sql: 'SELECT team, login FROM member WHERE seat IS NULL' }],
    // the monitoring window reads `written`: the rows the run wrote, as it wrote them
    monitor: [{ name: 'unseated', sql: 'SELECT w.team, w.login FROM written w JOIN member m USING (team, login) WHERE m.seat IS NULL' }],
    options: { batchSize: 37, ...options },
  } as MigrationInput;
}

const run = (db: Db, input: MigrationInput, opts: SafeApplyOptions = {}) => safeApply(db, inline(input), { adapt: false, batchSize: 37, ...opts });

/** The seats as written: "team/login" → seat. */
async function seatsOf(db: Db): Promise<Map<string, number | null>> {
  const r = await db.query<{ k: string; seat: number | null }>(`SELECT team || '/' || login AS k, seat FROM member`);
  return new Map(r.rows.map((x) => [x.k, x.seat]));
}

async function expectedSeats(db: Db): Promise<Map<string, number>> {
  const r = await db.query<{ k: string; seat: number }>(`SELECT team || '/' || login AS k, seat FROM seats`);
  return new Map(r.rows.map((x) => [x.k, Number(x.seat)]));
}

for (const kind of DB_KINDS) {
  describe(`composite primary key on ${kind}`, () => {
    test('check: a collision on the second unique index (team, seat) is predicted from the catalog with both rows by their composite key', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        // two members of team 7 would take seat 3
        await db.exec(`UPDATE seats SET seat = 3 WHERE team = 7 AND login = 'user12'`);
        const report = await runChecks(db, inline(migration()), { decide: true });
        const hit = report.findings.find((f) => f.code.includes('member_team_seat'));
        assert.ok(hit, JSON.stringify(report.findings.map((f) => f.code)));
        assert.equal(hit.severity, 'error');
        assert.equal(hit.count, 2, JSON.stringify(hit.sample));
        const other = (await db.query<{ login: string }>(`SELECT login FROM seats WHERE team = 7 AND seat = 3 AND login <> 'user12'`)).rows[0]!.login;
        const keys = hit.sample.map((r) => (r as Record<string, unknown>)['(team, login)']).sort();
        assert.deepEqual(keys, [`(7,${other})`, '(7,user12)'].sort(), JSON.stringify(hit.sample));
        assert.equal(report.ok, false);
      });
    });

    test('apply walks the composite key in batches, verification and the monitoring window read it, rollback restores the table but the row written since', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const before = await checksumTable(db, 'member');
        const events: BelayEvent[] = [];
        const r = await run(db, migration(), { onEvent: (e) => events.push(e) });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        assert.equal(r.steps[0]!.rowsChanged, ROWS);
        assert.deepEqual(await seatsOf(db), await expectedSeats(db));
        // keyset batches of 37 over 601 rows: 17, each range a pair of row values in key order
        const batches = events.filter((e) => e.type === 'batch-committed');
        assert.equal(batches.length, Math.ceil(ROWS / 37));
        const ranges = await db.query<{ lo: string; hi: string }>(`SELECT lo, hi FROM belay.batches WHERE run_id = $1 ORDER BY batch_no`, [r.runId]);
        assert.equal(ranges.rows[0]!.lo, `(1,"${ODD.replace(/"/g, '\\"')}")`);
        assert.equal(ranges.rows.at(-1)!.hi, '(20,user9)');
        const rounds = await getRounds(db, r.runId);
        const last = rounds.at(-1)!;
        assert.equal(last.ok, true, JSON.stringify(last.checks.filter((c) => c.result !== 'pass')));
        assert.equal(last.checks.find((c) => c.name === 'writes-held:seat')?.result, 'pass');
        assert.equal(last.checks.find((c) => c.name === 'seated')?.result, 'pass');
        // the monitoring window: quiet, then an alert once the application clears a seat the run wrote
        assert.equal((await monitorRun(db, r.runId, { once: true })).status, 'ok');
        await db.exec(`UPDATE member SET seat = NULL WHERE team = 3 AND login = 'user4'`);
        const m = await monitorRun(db, r.runId, { once: true });
        assert.equal(m.status, 'alerted');
        // the monitor check over `written` and the spec's verify query both see the one row
        assert.deepEqual(m.alerts.map((a) => `${a.check}:${a.count}`).sort(), ['seated:1', 'unseated:1']);
        await db.exec(`UPDATE member m SET seat = s.seat FROM seats s WHERE s.team = m.team AND s.login = m.login AND m.team = 3 AND m.login = 'user4'`);
        const rb = await rollback(db, r.runId);
        assert.equal(rb.status, 'rolled_back', JSON.stringify(rb));
        // the row the application wrote since is left alone, named by its key; every other row is back
        assert.deepEqual(
          rb.conflicts.flatMap((c) => c.keys),
          ['(3,user4)'],
        );
        await db.exec(`UPDATE member SET seat = NULL WHERE team = 3 AND login = 'user4'`);
        assert.deepEqual(await checksumTable(db, 'member'), before, 'the table is back byte for byte');
      });
    });

    test('an in-batch check that returns the key columns leaves those rows out by their composite key, the quoted one included', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const verify = `SELECT w.team, w.login, w.seat FROM written w WHERE w.team = 1 AND (w.login LIKE 'user2%' OR w.login LIKE 'o''%')`;
        const events: BelayEvent[] = [];
        const r = await run(db, migration({ verify }, { maxRejected: 50 }), { onEvent: (e) => events.push(e) });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const rejected = events.flatMap((e) => (e.type === 'rows-rejected' ? e.keys : [])).sort();
        const want = ['(1,user2)', ...Array.from({ length: 10 }, (_, i) => `(1,user2${i})`), `(1,"${ODD}")`].sort();
        assert.deepEqual(rejected, want);
        const seats = await seatsOf(db);
        assert.equal(seats.get(`1/${ODD}`), null, 'the rejected row is left as it was');
        assert.equal(seats.get('1/user2'), null);
        assert.equal(seats.get('1/user3'), (await expectedSeats(db)).get('1/user3'), 'the others are written');
        assert.equal(r.steps[0]!.rowsChanged, ROWS - want.length);
      });
    });

    test('a paused run resumes after its last composite-key checkpoint and ends as an uninterrupted run', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const pause: Stage = {
          name: 'pause-after-4',
          batches: { afterBatch: async (_ctx, b) => (b.batchNo === 4 ? 'pause' : 'continue') },
        };
        const first = await run(db, migration(), { stages: (s) => [...s, pause] });
        assert.notEqual(first.status, 'completed');
        const written = (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM member WHERE seat IS NOT NULL`)).rows[0]!.n;
        assert.equal(written, 4 * 37);
        const again = await run(db, migration());
        assert.equal(again.status, 'completed', again.error?.message ?? '');
        assert.equal(again.runId, first.runId, 'the same run went on');
        assert.deepEqual(await seatsOf(db), await expectedSeats(db));
        // cleanup past the retention drops the decision and its key type with it
        const left = async () =>
          (
            await db.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'belay'::regnamespace AND relname LIKE 'decision_r${again.runId}_%'`,
            )
          ).rows[0]!.n;
        const keyType = await db.query(`SELECT 1 FROM pg_class WHERE relnamespace = 'belay'::regnamespace AND relname = $1`, [
          `decision_r${again.runId}_s0_key`,
        ]);
        assert.equal(keyType.rows.length, 1, 'the key type lives beside the decision');
        assert.ok((await left()) >= 2);
        await cleanupRun(db, again.runId, { retentionMs: 0 });
        assert.equal(await left(), 0);
      });
    });

    test("the rollback --sql script restores the table, with keys in the table's own types", { skip: kind === 'postgres' && NO_PSQL }, async () => {
      await withDb(kind, async (f) => {
        await f.db.exec(SCHEMA);
        const before = await checksumTable(f.db, 'member');
        const r = await run(f.db, migration());
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        // the application edits one written row afterwards: the script leaves it and lists it
        await f.db.exec(`UPDATE member SET seat = 900 WHERE team = 2 AND login = 'user5'`);
        const script = (await rollbackScript(f.db, r.runId)).text!;
        const out = await runScript(f, script);
        if (kind === 'postgres') assert.match(out, /belay conflict: member key "\(2,user5\)"/);
        const seats = await seatsOf(f.db);
        assert.equal(seats.get('2/user5'), 900, "the application's value stands");
        await f.db.exec(`UPDATE member SET seat = NULL WHERE team = 2 AND login = 'user5'`);
        assert.deepEqual(await checksumTable(f.db, 'member'), before, 'every other row is back');
      });
    });

    test('dry run, rehearsal and plan walk the composite key: the dry run predicts every row and writes none, the rehearsal proves the data back', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const before = await checksumTable(db, 'member');
        const dry = await dryRun(db, inline(migration()), { batchSize: 37 });
        assert.equal(dry.ok, true, JSON.stringify(dry.checks.findings.filter((f) => f.count > 0)));
        assert.equal(dry.steps[0]!.rowsChanged, ROWS);
        assert.equal(dry.steps[0]!.batches.length, Math.ceil(ROWS / 37));
        assert.equal(String(dry.steps[0]!.sample[0]!.key), `(1,"${ODD}")`);
        assert.deepEqual(await checksumTable(db, 'member'), before, 'the dry run wrote nothing');
        const p = await plan(db, inline(migration()));
        assert.equal(p.steps[0]!.rows, ROWS, JSON.stringify(p.steps[0]));
        const rh = await rehearse(db, inline(migration()));
        assert.equal(rh.pass, true, rh.reason ?? '');
        assert.deepEqual(await checksumTable(db, 'member'), before, 'the rehearsal left the data as it was');
      });
    });

    test('members the application adds during the run are caught up by their composite key; a member it seats first is skipped by key, not written again', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const app: Stage = {
          name: 'application',
          batches: {
            async afterBatch(ctx, b) {
              if (b.round !== 0 || b.batchNo !== 2) return 'continue';
              await ctx.db.exec(`INSERT INTO member (team, login) VALUES (21, 'late one'), (21, 'late, two');
                INSERT INTO seats VALUES (21, 'late one', 1), (21, 'late, two', 2);
                UPDATE member m SET seat = s.seat FROM seats s WHERE s.team = m.team AND s.login = m.login AND m.team = 20 AND m.login = 'user7'`);
              return 'continue';
            },
          },
        };
        const events: BelayEvent[] = [];
        const r = await run(db, migration(), { stages: (st) => [...st, app], onEvent: (e) => events.push(e) });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        const seats = await seatsOf(db);
        assert.equal(seats.get('21/late one'), 1);
        assert.equal(seats.get('21/late, two'), 2);
        assert.deepEqual(seats, await expectedSeats(db));
        const skipped = events.flatMap((e) => (e.type === 'rows-skipped' ? e.keys : []));
        assert.deepEqual(skipped, ['(20,user7)']);
        // the two new members only: the rule no longer gives the member the application seated
        assert.ok(
          events.some((e) => e.type === 'catch-up' && e.added === 2),
          JSON.stringify(events.filter((e) => e.type === 'catch-up')),
        );
        assert.equal(r.steps[0]!.rowsSkipped, 1);
      });
    });

    test('rollback from the backup previews, by composite key, the change someone else made since, then restores the table', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const before = await checksumTable(db, 'member');
        const r = await run(db, migration(), { backup: true });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        // a member the application adds since: a row the run never wrote
        await db.exec(`INSERT INTO member (team, login, role) VALUES (21, 'new, one', 'owner')`);
        let seen: BackupRollbackPreview | undefined;
        const no = await rollbackFromBackup(db, r.runId, {
          confirm: (p) => {
            seen = p;
            return false;
          },
        });
        assert.equal(no.status, 'cancelled');
        const t = seen!.tables.find((x) => x.table === 'member')!;
        assert.deepEqual([t.changed, t.added, t.deleted], [ROWS, 1, 0], 'every row the run wrote, and the one added by someone else');
        assert.deepEqual(t.notWrittenByRun, { count: 1, sample: ['(21,"new, one")'] });
        const yes = await rollbackFromBackup(db, r.runId, { confirm: () => true });
        assert.equal(yes.status, 'restored');
        assert.deepEqual(await checksumTable(db, 'member'), before);
      });
    });

    test("a step that walks a declared single key of a composite-key table: the restore preview does not compare its keys with the primary key's", async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(`${SCHEMA}
          ALTER TABLE member ADD COLUMN uid int GENERATED ALWAYS AS IDENTITY UNIQUE NOT NULL;`);
        const before = await checksumTable(db, 'member');
        const input = migration({ key: 'uid', decide: 'SELECT m.uid, s.seat FROM member m JOIN seats s ON s.team = m.team AND s.login = m.login' });
        const r = await run(db, input, { backup: true });
        assert.equal(r.status, 'completed', r.error?.message ?? '');
        let seen: BackupRollbackPreview | undefined;
        await rollbackFromBackup(db, r.runId, {
          confirm: (p) => {
            seen = p;
            return false;
          },
        });
        // uid values against (team, login) rows would have counted every written row as someone else's change
        assert.equal(seen!.tables.find((x) => x.table === 'member')!.notWrittenByRun, null);
        const yes = await rollbackFromBackup(db, r.runId, { confirm: () => true });
        assert.equal(yes.status, 'restored');
        assert.deepEqual(await checksumTable(db, 'member'), before);
      });
    });

    test('a projection per key range on a composite key is refused at check (BELAY_KEY, exit 3) and nothing is written', async () => {
      await withDb(kind, async ({ db }) => {
        await db.exec(SCHEMA);
        const before = await checksumTable(db, 'member');
        const input = migration({ decide: undefined, projection: 'SELECT team, login, 1 AS seat FROM member WHERE team BETWEEN $1 AND $2' });
        await assert.rejects(runChecks(db, inline(input), { decide: true }), (e: unknown) => {
          assert.ok(e instanceof BelayError);
          assert.deepEqual([e.code, e.exitCode], ['BELAY_KEY', 3]);
          assert.match(e.message, /composite primary key \("team", "login"\)/);
          assert.match(e.fix ?? '', /decide:/);
          return true;
        });
        assert.deepEqual(await checksumTable(db, 'member'), before);
      });
    });
  });
}

test('server: --workers 3 on a composite key ends with the same seats as one worker', { skip: !process.env.BELAY_TEST_SERVER }, async () => {
  await withDb('postgres', async ({ db }) => {
    await db.exec(SCHEMA);
    const r = await run(db, migration(), { workers: 3 });
    assert.equal(r.status, 'completed', r.error?.message ?? '');
    assert.deepEqual(await seatsOf(db), await expectedSeats(db));
    const per = await db.query<{ n: number }>(`SELECT count(DISTINCT worker)::int AS n FROM belay.ranges WHERE run_id = $1`, [r.runId]);
    assert.equal(per.rows[0]!.n, 3);
  });
});
