// Pre-flight checks: the flagship's categories against the generator's planted truth, the unique-after
// predictor (zero under the default projection, every colliding pair under a broken one), not-null,
// bad input (check named, position shown, database unchanged), apply refusing, and in-batch guards.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { preflight, checkResults } from '../src/checks/preflight.ts';
import { describeChecks } from '../src/checks/registry.ts';
import { type CheckFinding, type CheckReport, runChecks } from '../src/checks/run-checks.ts';
import { type Db, openDb } from '../src/db/connection.ts';
import { BelayError } from '../src/errors.ts';
import { apply } from '../src/execute/apply.ts';
import type { MigrationInput } from '../src/spec/define.ts';
import { checksumOf, type LoadedMigration, validate } from '../src/spec/load.ts';
import { validateSql } from '../src/spec/sql-parse.ts';
import { generate, type Truth } from '../examples/event-type-owner/generate.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { withDb, withSession } from './helpers/fixture.ts';
import { checksums, flagship } from './helpers/flagship.ts';

const ROWS = 1500;
const ALL = 1_000_000; // sample size that keeps every offending row

/** A projection that assigns the single valid owner and ignores slug conflicts (what a naive script does). */
const NAIVE_PROJECTION = `
  SELECT e.id, min(l."B") AS "userId"
    FROM "EventType" e
    JOIN "_user_eventtype" l ON l."A" = e.id AND l."A" BETWEEN $1 AND $2
    JOIN users u ON u.id = l."B"
   WHERE e.id BETWEEN $1 AND $2 AND e."userId" IS NULL AND e."teamId" IS NULL
   GROUP BY e.id HAVING count(*) = 1`;

async function derived(base: LoadedMigration, edit: (spec: MigrationInput) => MigrationInput): Promise<LoadedMigration> {
  const input = edit(structuredClone(base.spec) as MigrationInput);
  const spec = validate(input, 'test');
  await validateSql(spec, 'test');
  return { spec, file: 'test', params: {}, checksum: checksumOf(spec, {}) };
}

function naive(base: LoadedMigration): Promise<LoadedMigration> {
  return derived(base, (s) => ({
    ...s,
    id: 'event-type-owner-naive',
    steps: s.steps.map((st) =>
      st.kind === 'batched' ? { ...st, projection: NAIVE_PROJECTION, decide: undefined, wholeTableProjection: undefined, verify: undefined } : st,
    ),
  }));
}

const byCode = (fs: CheckFinding[], code: string) => {
  const f = fs.find((x) => x.code === code);
  assert.ok(f, `finding ${code} present`);
  return f;
};
const ids = (f: CheckFinding, col = 'id') => f.sample.map((r) => Number(r[col])).sort((a, b) => a - b);
const sorted = (xs: Iterable<number>) => [...xs].sort((a, b) => a - b);
const linkKey = (a: unknown, b: unknown) => `${a}:${b}`;

async function userIds(db: Db): Promise<Set<number>> {
  const r = await db.query<{ id: number }>('SELECT id FROM users');
  return new Set(r.rows.map((x) => Number(x.id)));
}

for (const kind of DB_KINDS) {
  describe(`checks on ${kind}`, () => {
    // the read-only tests share one generated database: a check never changes it (each test asserts so)
    let shared: { db: Db; drop(): Promise<void> };
    let truth: Truth;
    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      shared = await freshDb(kind);
      truth = await generate(shared.db, { rows: ROWS, seed: 7 });
    });
    after(() => shared.drop());

    test('flagship: every category matches the planted truth, UNIQUE_USER_SLUG predicts zero, nothing changes', async () => {
      const { db } = shared;
      try {
        const m = await flagship();
        const before = await checksums(db);
        const r = await runChecks(db, m, { sample: ALL });
        assert.deepEqual(await checksums(db), before, 'read-only: every table unchanged');
        const st = await db.query<{ s: string | null }>(`SELECT to_regclass('belay.runs')::text AS s`);
        assert.equal(st.rows[0]!.s, null, 'belay check creates no state');

        const assign = byCode(r.findings, 'ASSIGN');
        assert.deepEqual(ids(assign), truth.categories.assign);
        for (const row of assign.sample) assert.equal(Number(row.userId), truth.expectedOwner.get(Number(row.id)));
        assert.deepEqual(ids(byCode(r.findings, 'UNOWNED')), truth.categories.unowned);
        assert.deepEqual(ids(byCode(r.findings, 'AMBIGUOUS')), truth.categories.ambiguous);
        assert.deepEqual(ids(byCode(r.findings, 'INCONSISTENT_OWNER')), truth.categories.inconsistent);
        const conflicts = byCode(r.findings, 'SLUG_CONFLICT');
        assert.deepEqual(ids(conflicts), sorted([...truth.categories.conflictExisting, ...truth.categories.conflictPair]));
        for (const row of conflicts.sample) assert.equal(Number(row.conflictsWith), truth.conflictCounterpart.get(Number(row.id)), `counterpart of ${row.id}`);

        const users = await userIds(db);
        const orphanUser = byCode(r.findings, 'ORPHAN_LINK_USER');
        const expectUser = [...truth.orphanLinks.missingUser, ...truth.orphanLinks.missingEventType.filter(([, b]) => !users.has(b))];
        assert.equal(orphanUser.count, expectUser.length);
        assert.deepEqual(new Set(orphanUser.sample.map((x) => linkKey(x.A, x.B))), new Set(expectUser.map(([a, b]) => linkKey(a, b))));
        const orphanEt = byCode(r.findings, 'ORPHAN_LINK_EVENT_TYPE');
        assert.equal(orphanEt.count, truth.orphanLinks.missingEventType.length);
        assert.deepEqual(new Set(orphanEt.sample.map((x) => linkKey(x.A, x.B))), new Set(truth.orphanLinks.missingEventType.map(([a, b]) => linkKey(a, b))));

        const unique = byCode(r.findings, 'UNIQUE_USER_SLUG');
        assert.equal(unique.kind, 'unique-after');
        assert.equal(unique.count, 0, 'the flagship projection skips every conflict');
        assert.equal(r.ok, true);
        for (const f of r.findings) assert.equal(f.count, f.count === 0 ? 0 : f.sample.length, `${f.code}: the sample holds every row when large enough`);
      } finally {
        // shared database: dropped after the suite
      }
    });

    test('unique-after lists every colliding pair of a naive projection, also pairs far apart in id', async () => {
      const { db } = shared;
      try {
        const m = await naive(await flagship());
        const before = await checksums(db);
        const r = await runChecks(db, m, { sample: ALL });
        assert.deepEqual(await checksums(db), before);
        const f = byCode(r.findings, 'UNIQUE_USER_SLUG');
        const expected = sorted([...truth.categories.conflictExisting, ...truth.categories.conflictPair]);
        assert.equal(f.count, expected.length);
        assert.deepEqual(ids(f), expected);
        const pairs = new Set(truth.categories.conflictPair);
        let far = 0;
        for (const row of f.sample) {
          const id = Number(row.id);
          assert.equal(Number(row.collidesWith), truth.conflictCounterpart.get(id), `row ${id} collides with its planted counterpart`);
          // a pair's two rows are both written by the step; an existing conflict meets a row that stays
          assert.equal(row.collidesWithChanged, pairs.has(id));
          if (pairs.has(id) && Math.abs(Number(row.collidesWith) - id) > truth.lastEventTypeId / 4) far++;
        }
        assert.ok(far >= 2, `pairs in different batches are found (${far} far apart)`);
        assert.equal(r.ok, false);
        assert.deepEqual(r.blocking, ['UNIQUE_USER_SLUG']);
      } finally {
        // shared database: dropped after the suite
      }
    });

    test("classify: one finding per declared category in the query's order; NULL not reported; an undeclared value or a reused code is refused", async () => {
      const { db } = shared;
      const base = await flagship();
      const classify = (categories: object[]) =>
        derived(base, (s) => ({
          ...s,
          checks: [
            {
              kind: 'classify',
              code: 'EVENT_TYPE_KINDS',
              column: 'kind',
              sql: `SELECT CASE WHEN "teamId" IS NOT NULL THEN 'team' WHEN "userId" IS NOT NULL THEN 'owned' END AS kind, id, slug FROM "EventType" ORDER BY id DESC`,
              categories: categories as never,
            },
          ],
        }));
      const team = { value: 'team', code: 'TEAM_ROWS', severity: 'info', message: 'team event types' };
      const owned = { value: 'owned', code: 'OWNED_ROWS', message: 'event types with an owner' };
      const never = { value: 'none', code: 'NEVER', severity: 'error', message: 'a category no row has' };
      const before = await checksums(db);
      const r = await runChecks(db, await classify([team, owned, never]), { sample: 3 });
      // the spec no longer declares unique-after on ("userId", slug): belay predicts it from the catalog, after the declared findings
      assert.deepEqual(
        r.findings.map((f) => [f.code, f.kind, f.severity]),
        [
          ['TEAM_ROWS', 'classify', 'info'],
          ['OWNED_ROWS', 'classify', 'warn'],
          ['NEVER', 'classify', 'error'],
          ['UNIQUE:EventType_userId_slug_key@assign-owner', 'unique-after', 'error'],
        ],
      );
      const [t, o, n] = r.findings;
      assert.equal(t!.count, truth.counts.team);
      assert.deepEqual(
        t!.sample.map((x) => Number(x.id)),
        truth.categories.team.slice(-3).reverse(),
        "the first rows in the query's own order",
      );
      assert.ok(
        t!.sample.every((x) => !('kind' in x) && typeof x.slug === 'string'),
        'samples leave the category column out',
      );
      assert.equal(o!.count, truth.counts.owned + truth.counts.inconsistent);
      assert.equal(n!.count, 0);
      assert.equal(r.ok, true, 'an error category without rows does not block');
      // rows of a category the check does not declare: the check is wrong, not the data
      const err = await runChecks(db, await classify([team])).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError);
      assert.equal(err.code, 'BELAY_CHECK_SQL');
      assert.equal(err.exitCode, 3);
      assert.match(err.message, /EVENT_TYPE_KINDS.*category "owned".*does not declare/);
      // findings are keyed by code
      await assert.rejects(classify([team, { ...owned, code: 'TEAM_ROWS' }]), /code TEAM_ROWS is used twice/);
      await assert.rejects(classify([team, { ...owned, value: 'team' }]), /two categories have the same value/);
      assert.deepEqual(await checksums(db), before);
    });

    test("not-null: NULLs after the step's projected values, and as the table is now", async () => {
      const { db } = shared;
      try {
        const m = await derived(await flagship(), (s) => ({
          ...s,
          checks: [
            { kind: 'not-null', code: 'OWNER_AFTER', table: 'EventType', column: 'userId', step: 'assign-owner' },
            { kind: 'not-null', code: 'OWNER_NOW', severity: 'warn', table: 'EventType', column: 'userId' },
          ],
        }));
        const r = await runChecks(db, m, { sample: ALL });
        const c = truth.counts;
        const after = byCode(r.findings, 'OWNER_AFTER');
        const stayNull = sorted([
          ...truth.categories.unowned,
          ...truth.categories.ambiguous,
          ...truth.categories.conflictExisting,
          ...truth.categories.conflictPair,
          ...truth.categories.team,
        ]);
        assert.equal(after.count, stayNull.length);
        assert.deepEqual(ids(after), stayNull);
        assert.ok(after.sample.every((x) => x.changedByStep === false));
        assert.equal(byCode(r.findings, 'OWNER_NOW').count, c.assign + c.unowned + c.ambiguous + c.conflictExisting + c.conflictPair + c.team);
        assert.deepEqual(r.blocking, ['OWNER_AFTER']);
      } finally {
        // shared database: dropped after the suite
      }
    });

    test('bad input: the failing check is named with line and column, missing names are named, nothing changes', async () => {
      const { db } = shared;
      try {
        const base = await flagship();
        const before = await checksums(db);
        const withCheck = (check: object) => derived(base, (s) => ({ ...s, checks: [check as never] }));
        const fails = async (m: LoadedMigration, code: string, ...parts: RegExp[]) => {
          const err = await runChecks(db, m).then(
            () => undefined,
            (e: unknown) => e,
          );
          assert.ok(err instanceof BelayError, `throws a BelayError, got ${String(err)}`);
          assert.equal(err.code, code);
          for (const p of parts) assert.match(err.message, p);
          return err;
        };
        const e1 = await fails(
          await withCheck({ kind: 'sql', code: 'BAD_COLUMN', severity: 'error', message: 'x', sql: 'SELECT id,\n       nosuch\n  FROM "EventType"' }),
          'BELAY_CHECK_SQL',
          /check BAD_COLUMN/,
          /nosuch/,
          /line 2, column 8/,
        );
        assert.equal(e1.exitCode, 3);
        await fails(
          await withCheck({ kind: 'sql', code: 'BAD_TABLE', severity: 'error', message: 'x', sql: 'SELECT * FROM "EventTypes"' }),
          'BELAY_CHECK_SQL',
          /BAD_TABLE/,
          /"EventTypes"/,
          /line 1, column 15/,
        );
        await fails(
          await withCheck({ kind: 'sql', code: 'DIVIDE', severity: 'error', message: 'x', sql: 'SELECT id / 0 AS x FROM "EventType"' }),
          'BELAY_CHECK_SQL',
          /DIVIDE/,
          /division by zero/,
        );
        // a SELECT can still write (a sequence here); the read-only transaction refuses it
        await fails(
          await withCheck({ kind: 'sql', code: 'SNEAKY', severity: 'error', message: 'x', sql: `SELECT setval(pg_get_serial_sequence('users', 'id'), 1)` }),
          'BELAY_CHECK_SQL',
          /SNEAKY/,
          /read-only/,
        );
        await fails(
          await withCheck({ kind: 'orphans', code: 'NO_TABLE', table: 'links', column: 'B', references: { table: 'users', column: 'id' } }),
          'BELAY_SPEC',
          /"links" does not exist/,
        );
        await fails(
          await withCheck({ kind: 'orphans', code: 'NO_COLUMN', table: '_user_eventtype', column: 'C', references: { table: 'users', column: 'id' } }),
          'BELAY_SPEC',
          /column "C" does not exist/,
        );
        await fails(
          await withCheck({ kind: 'unique-after', code: 'NO_INDEX', step: 'assign-owner', index: 'EventType_user_slug' }),
          'BELAY_SPEC',
          /index "EventType_user_slug" does not exist/,
          /EventType_userId_slug_key/,
        );
        // an error inside the step's projection is shown in the projection's own text, found by planning it
        // before any check runs (so it names the step and the field, not a check that uses the projection)
        const badProjection = await derived(base, (s) => ({
          ...s,
          checks: [{ kind: 'unique-after', code: 'UNIQUE_USER_SLUG', step: 'assign-owner', index: 'EventType_userId_slug_key' }],
          steps: s.steps.map((st) =>
            st.kind === 'batched'
              ? { ...st, projection: 'SELECT e.id,\n  e."ownerId" AS "userId" FROM "EventType" e WHERE e.id BETWEEN $1 AND $2', decide: undefined }
              : st,
          ),
        }));
        const e2 = await fails(badProjection, 'BELAY_CHECK_SQL', /steps\.0\.projection \(assign-owner\)/, /line 2, column 3/);
        assert.equal(e2.details.field, 'steps.0.projection (assign-owner)');
        // with a set-based rule, the prediction runs that rule, and its errors point into it
        const badWhole = await derived(base, (s) => ({
          ...s,
          checks: [{ kind: 'unique-after', code: 'UNIQUE_USER_SLUG', step: 'assign-owner', index: 'EventType_userId_slug_key' }],
          steps: s.steps.map((st) => (st.kind === 'batched' ? { ...st, decide: 'SELECT e.id,\n    e.owner AS "userId" FROM "EventType" e' } : st)),
        }));
        const e3 = await fails(badWhole, 'BELAY_CHECK_SQL', /steps\.0\.decide \(assign-owner\)/, /line 2, column 5/);
        assert.equal(e3.details.field, 'steps.0.decide (assign-owner)');
        assert.deepEqual(await checksums(db), before, 'nothing changed');
      } finally {
        // shared database: dropped after the suite
      }
    });

    test('apply refuses before any write when an error finding has rows (exit 6); the flagship passes, guards never fire', async () => {
      await withDb(kind, async ({ db }) => {
        const truth = await generate(db, { rows: 1200, seed: 9 });
        {
          const naiveM = await naive(await flagship());
          const before = await checksums(db);
          const r = await apply(db, naiveM, { stages: [preflight()] });
          assert.equal(r.status, 'failed');
          assert.equal(r.error?.code, 'BELAY_CHECKS');
          assert.equal(r.error?.exitCode, 6);
          assert.deepEqual(r.error?.details.blocking, ['UNIQUE_USER_SLUG']);
          assert.deepEqual(await checksums(db), before, 'no write');
          const stored = await checkResults(db, r.runId);
          const u = stored.find((x) => x.code === 'UNIQUE_USER_SLUG')!;
          assert.equal(u.outcome, 'blocked');
          assert.ok(u.count > 0);
          assert.equal(stored.length, describeChecks(naiveM).length, 'one stored result per finding (a classify check has one per category)');
        }
        {
          const m = await flagship();
          // then the flagship itself on the same data: passes, stored with its run id, guards never fire
          const p = preflight();
          const guardNames = new Set<string>();
          const r = await apply(db, m, {
            batchSize: 250,
            stages: [
              {
                name: 'check',
                before: p.before,
                batches: {
                  guards: (ctx, step, t) => {
                    const g = p.batches!.guards!(ctx, step, t);
                    for (const x of g) guardNames.add(x.name);
                    return g;
                  },
                },
              },
            ],
          });
          assert.equal(r.error, undefined);
          assert.equal(r.status, 'completed');
          // the server enforces the unique index at the write (valid, not deferrable): a duplicate is left out by its 23505, no guard is needed
          assert.deepEqual([...guardNames], []);
          assert.equal(r.steps[0]!.rowsChanged, truth.counts.assign);
          const stored = await checkResults(db, r.runId);
          assert.equal(stored.find((x) => x.code === 'ASSIGN')!.count, truth.counts.assign);
          assert.equal(stored.find((x) => x.code === 'UNIQUE_USER_SLUG')!.outcome, 'passed');
          assert.equal(p.report?.ok, true);
          assert.ok(describeChecks(m).find((d) => d.code === 'UNIQUE_USER_SLUG')!.guardsBatches);
        }
      });
    });

    test('a guard catches a parent deleted after the pre-flight: that row is left out and reported, no wrong value; past maxRejected the run stops', async () => {
      for (const maxRejected of [undefined, 0]) {
        await withDb(kind, async ({ db }) => {
          const m = await smallSpec(maxRejected === undefined ? {} : { maxRejected });
          await smallData(db);
          let batches = 0;
          const r = await apply(db, m, {
            batchSize: 3,
            stages: [
              preflight(),
              {
                name: 'meddler',
                batches: {
                  // between the pre-flight and the second batch, someone deletes the owner that batch would write
                  async beforeBatch(ctx) {
                    if (++batches === 2) await ctx.db.query('DELETE FROM parents WHERE id = 5');
                  },
                },
              },
            ],
          });
          const items = await db.query<{ id: number; owner: number | null }>('SELECT id, owner FROM items ORDER BY id');
          const owners = items.rows.map((x) => [Number(x.id), x.owner === null ? null : Number(x.owner)]);
          if (maxRejected === undefined) {
            // application traffic: the row whose parent went away is not written and is reported; the others are
            assert.equal(r.status, 'completed', r.error?.message ?? '');
            assert.deepEqual(owners, [
              [1, 1],
              [2, 2],
              [3, 3],
              [4, 4],
              [5, null],
              [6, 6],
              [7, 7],
              [8, 8],
            ]);
            const ev = await db.query<{ data: { reason: string; keys: string[] } }>(
              `SELECT data FROM belay.events WHERE run_id = $1 AND type = 'rows-rejected'`,
              [r.runId],
            );
            assert.deepEqual(
              ev.rows.map((x) => [x.data.reason, x.data.keys]),
              [['rejected:guard OWNER_EXISTS', ['5']]],
            );
          } else {
            // no rejection allowed: the batch is rolled back whole and the run stops
            assert.equal(r.status, 'failed');
            assert.equal(r.error?.code, 'BELAY_VERIFY');
            assert.match(r.error!.message, /guard OWNER_EXISTS/);
            assert.match(r.error!.message, /rolled back/);
            assert.deepEqual(
              (r.error!.details.sample as Array<{ key: number; value: number }>).map((x) => [Number(x.key), Number(x.value)]),
              [[5, 5]],
            );
            assert.deepEqual(owners, [
              [1, 1],
              [2, 2],
              [3, 3],
              [4, null],
              [5, null],
              [6, null],
              [7, null],
              [8, null],
            ]);
          }
          assert.equal(
            (await checkResults(db, r.runId)).every((x) => x.outcome === 'passed'),
            true,
          );
        });
      }
    });
  });
}

test('postgres: a colliding row inserted after the pre-flight: the batch is split down to that row, which is left out and reported', async () => {
  await withDb('postgres', ({ db, url }) =>
    withSession(url, async (other) => {
      const m = await smallSpec();
      await smallData(db);
      let batches = 0;
      const r = await apply(db, m, {
        batchSize: 3,
        stages: [
          preflight(),
          {
            name: 'meddler',
            batches: {
              async beforeBatch() {
                // another session takes (owner 5, slug 's5') after the pre-flight passed
                if (++batches === 2) await other.query(`INSERT INTO items (id, slug, owner, want) VALUES (100, 's5', 5, NULL)`);
              },
            },
          },
        ],
      });
      assert.equal(r.status, 'completed', r.error?.message ?? '');
      const items = await db.query<{ id: number; owner: number | null }>('SELECT id, owner FROM items WHERE id BETWEEN 4 AND 6 ORDER BY id');
      assert.deepEqual(
        items.rows.map((x) => (x.owner === null ? null : Number(x.owner))),
        [4, null, 6],
        'only the colliding row is left out',
      );
      const ev = await db.query<{ data: { reason: string; keys: string[] } }>(`SELECT data FROM belay.events WHERE run_id = $1 AND type = 'rows-rejected'`, [
        r.runId,
      ]);
      assert.deepEqual(
        ev.rows.map((x) => [x.data.reason, x.data.keys]),
        [['rejected:constraint items_owner_slug', ['5']]],
      );
      // the pre-flight run on the same data now predicts the collision
      const again = await runChecks(db, m, { sample: 10 });
      const f = again.findings.find((x) => x.code === 'UNIQUE_OWNER_SLUG')!;
      assert.equal(f.count, 1);
      assert.equal(Number(f.sample[0]!.id), 5);
      assert.equal(Number(f.sample[0]!.collidesWith), 100);
    }),
  );
});

test('server: checks spread over two sessions in one snapshot give what one session gives', async () => {
  await withDb('postgres', async ({ db, url }) => {
    await generate(db, { rows: 1_500, seed: 21 });
    const m = await flagship();
    const one = await runChecks(db, m, { sample: 5, jobs: 1 });
    const two = await runChecks(db, m, { sample: 5, jobs: 2 });
    const strip = (fs: CheckFinding[]) => fs.map(({ durationMs: _, ...f }) => f);
    assert.deepEqual(strip(two.findings), strip(one.findings));
    // two checks that wait long enough to run side by side: other sessions, the same snapshot
    const seen = (code: string) => ({
      kind: 'sql' as const,
      code,
      severity: 'info' as const,
      message: 'session and snapshot',
      sql: 'SELECT pg_backend_pid() AS pid, pg_current_snapshot()::text AS snap FROM pg_sleep(0.3)',
    });
    const spec = validate({
      id: 'snap',
      purpose: 'two checks that report their session and snapshot',
      tables: ['users'],
      checks: [seen('FIRST'), seen('SECOND')],
      steps: [{ kind: 'sql', name: 'noop', up: 'SELECT 1', down: 'SELECT 1' }],
    });
    // meanwhile another session commits a transaction every few ms: a session that took its own snapshot
    // after the first one's would see a later xmax
    const other = await openDb(url);
    let stop = false;
    const churn = (async () => {
      while (!stop) await other.query('SELECT txid_current()');
    })();
    let r: CheckReport;
    try {
      r = await runChecks(db, { spec, file: 't', params: {}, checksum: 'x' });
    } finally {
      stop = true;
      await churn;
      await other.close();
    }
    const [a, b] = r.findings.map((f) => f.sample[0] as { pid: number; snap: string });
    assert.notEqual(a!.pid, b!.pid, 'two sessions');
    assert.equal(a!.snap, b!.snap, 'one snapshot');
    // after a failure the error is the first failing check's in declared order, as with one session:
    // SLOW_BAD fails after 0.3 s, FAST_BAD at once on the other session
    const bad = validate({
      id: 'bad',
      purpose: 'two failing checks',
      tables: ['users'],
      checks: [
        { kind: 'sql', code: 'SLOW_BAD', severity: 'warn', message: 'fails late', sql: 'SELECT 1 / (count(*) - 1) AS x FROM (SELECT pg_sleep(0.3)) s' },
        { kind: 'sql', code: 'FAST_BAD', severity: 'warn', message: 'fails at once', sql: 'SELECT no_such_column FROM users' },
      ],
      steps: [{ kind: 'sql', name: 'noop', up: 'SELECT 1', down: 'SELECT 1' }],
    });
    for (const jobs of [1, 2]) {
      const err = await runChecks(db, { spec: bad, file: 't', params: {}, checksum: 'x' }, { jobs }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(err instanceof BelayError && /check SLOW_BAD/.test(err.message), `jobs ${jobs}: ${String(err)}`);
    }
  });
});

test('unique-after respects partial indexes and NULLS NOT DISTINCT', async () => {
  await withDb('postgres', async ({ db }) => {
    await db.exec(`
      CREATE TABLE t (id int PRIMARY KEY, a int, b text, live boolean NOT NULL DEFAULT true, want int);
      CREATE UNIQUE INDEX t_partial ON t (a, b) WHERE live;
      CREATE UNIQUE INDEX t_nnd ON t (a, b) NULLS NOT DISTINCT;
      INSERT INTO t VALUES (1, 1, 'x', true, NULL), (2, NULL, 'y', true, NULL), (3, NULL, 'x', false, 1), (4, NULL, 'z', true, NULL), (5, NULL, 'w', true, NULL);
    `);
    // id 3 (not live) takes a = 1 like id 1: no collision under the partial index, one under the plain one.
    // ids 4 and 5 stay NULL: collide with nothing under NULLS NOT DISTINCT as their b differ.
    const spec = validate({
      id: 'partial',
      purpose: 'a small spec to test partial indexes',
      tables: ['t'],
      checks: [
        { kind: 'unique-after', code: 'PARTIAL', step: 's', index: 't_partial' },
        { kind: 'unique-after', code: 'NND', step: 's', index: 't_nnd' },
      ],
      steps: [
        { kind: 'batched', name: 's', table: 't', writes: ['a'], projection: 'SELECT id, want AS a FROM t WHERE id BETWEEN $1 AND $2 AND want IS NOT NULL' },
      ],
    });
    let r = await runChecks(db, { spec, file: 't', params: {}, checksum: 'x' });
    assert.equal(r.findings.find((f) => f.code === 'PARTIAL')!.count, 0);
    assert.equal(r.findings.find((f) => f.code === 'NND')!.count, 1);
    // now a step that sets b = 'y' on id 4 (a stays NULL): collides with id 2 only when NULLs are not distinct
    const spec2 = validate({
      ...spec,
      steps: [{ kind: 'batched', name: 's', table: 't', writes: ['b'], projection: `SELECT id, 'y' AS b FROM t WHERE id BETWEEN $1 AND $2 AND id = 4` }],
    });
    r = await runChecks(db, { spec: spec2, file: 't', params: {}, checksum: 'x' });
    assert.equal(r.findings.find((f) => f.code === 'PARTIAL')!.count, 0, 'NULL never collides in a plain index');
    const nnd = r.findings.find((f) => f.code === 'NND')!;
    assert.equal(nnd.count, 1);
    assert.equal(Number(nnd.sample[0]!.collidesWith), 2);
  });
});

// ---- a small schema for guards: items get an owner from `want`; owners must exist; (owner, slug) unique.

async function smallData(db: Db): Promise<void> {
  await db.exec(`
    CREATE TABLE parents (id int PRIMARY KEY);
    CREATE TABLE items (id int PRIMARY KEY, slug text NOT NULL, owner int, want int);
    CREATE UNIQUE INDEX items_owner_slug ON items (owner, slug);
    INSERT INTO parents SELECT g FROM generate_series(1, 8) g;
    INSERT INTO items SELECT g, 's' || g, NULL, g FROM generate_series(1, 8) g;
  `);
}

function smallSpec(options: Record<string, number> = {}): Promise<LoadedMigration> {
  const spec = validate(
    {
      options,
      id: 'items-owner',
      purpose: 'give every item the owner it wants',
      tables: ['items', 'parents'],
      checks: [
        { kind: 'orphans', code: 'OWNER_EXISTS', severity: 'error', table: 'items', column: 'owner', references: { table: 'parents', column: 'id' } },
        { kind: 'unique-after', code: 'UNIQUE_OWNER_SLUG', step: 'set-owner', index: 'items_owner_slug' },
      ],
      steps: [
        {
          kind: 'batched',
          name: 'set-owner',
          table: 'items',
          writes: ['owner'],
          projection: 'SELECT id, want AS owner FROM items WHERE id BETWEEN $1 AND $2 AND owner IS NULL AND want IS NOT NULL',
        },
      ],
    },
    'items',
  );
  return Promise.resolve({ spec, file: 'items', params: {}, checksum: checksumOf(spec, {}) });
}
