// The flagship example's data side: the generator plants every case of the contract, and the
// independent reference implementation finds exactly what was planted, on the server and on PGlite.
//   node --import tsx --test test/flagship-data.test.ts
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Db } from '../src/db/connection.ts';
import { CATEGORIES, generate, plannedCounts, type Truth } from '../examples/event-type-owner/generate.ts';
import { expectedAfter, type Expected } from '../examples/event-type-owner/reference.ts';
import { DB_KINDS } from './helpers/fresh-db.ts';
import { withDb } from './helpers/fixture.ts';

async function currentOwners(db: Db): Promise<Map<number, number | null>> {
  const { rows } = await db.query<{ id: number; userId: number | null }>('SELECT id::int AS id, "userId"::int AS "userId" FROM "EventType" ORDER BY id');
  return new Map(rows.map((r) => [Number(r.id), r.userId === null ? null : Number(r.userId)]));
}

/**
 * A third implementation of the contract: one set-based UPDATE, run inside a transaction that is
 * rolled back. It fails if an unplanted slug conflict would violate "EventType_userId_slug_key".
 */
async function ownersAfterSqlUpdate(db: Db, ambiguous: 'skip' | 'lowest'): Promise<Map<number, number | null>> {
  await db.query('BEGIN');
  try {
    await db.query(`
      WITH valid AS (
        SELECT DISTINCT l."A" AS id, l."B" AS uid FROM "_user_eventtype" l
        WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = l."B")
          AND EXISTS (SELECT 1 FROM "EventType" e WHERE e.id = l."A")
      ), cand AS (
        SELECT e.id, e.slug, min(v.uid) AS uid
        FROM "EventType" e JOIN valid v ON v.id = e.id
        WHERE e."userId" IS NULL AND e."teamId" IS NULL
        GROUP BY e.id, e.slug
        ${ambiguous === 'skip' ? 'HAVING count(*) = 1' : ''}
      ), ok AS (
        SELECT c.id, c.uid FROM cand c
        WHERE NOT EXISTS (SELECT 1 FROM "EventType" o WHERE o."userId" = c.uid AND o.slug = c.slug)
          AND NOT EXISTS (SELECT 1 FROM cand c2 WHERE c2.uid = c.uid AND c2.slug = c.slug AND c2.id <> c.id)
      )
      UPDATE "EventType" e SET "userId" = ok.uid FROM ok WHERE e.id = ok.id`);
    return await currentOwners(db);
  } finally {
    await db.query('ROLLBACK');
  }
}

/** What the truth says every row's owner must be afterwards, under policy ambiguous=skip or lowest. */
function ownersFromTruth(truth: Truth, before: Map<number, number | null>, ambiguous: 'skip' | 'lowest'): Map<number, number | null> {
  const after = new Map(before);
  for (const [id, u] of truth.expectedOwner) after.set(id, u);
  if (ambiguous === 'lowest') {
    for (const [id, u] of truth.lowestOwner) if (!truth.lowestPolicyConflicts.has(id)) after.set(id, u);
  }
  return after;
}

function assertMatchesTruth(truth: Truth, ref: Expected): void {
  for (const c of CATEGORIES) {
    assert.ok(truth.categories[c].length > 0, `category ${c} is planted`);
    assert.deepEqual(ref.categories[c], truth.categories[c], `category ${c}`);
  }
  assert.deepEqual(ref.counts, truth.counts);
  assert.equal(
    CATEGORIES.reduce((s, c) => s + truth.counts[c], 0),
    truth.rows,
    'every row is in exactly one category',
  );
  assert.deepEqual(ref.conflicts, truth.conflictCounterpart);
  assert.deepEqual(ref.orphanLinks, truth.orphanLinks);
  assert.deepEqual(ref.changed, truth.categories.assign);
  for (const [id, u] of truth.expectedOwner) assert.equal(ref.owner.get(id), u, `owner of ${id}`);
}

async function digest(db: Db): Promise<Record<string, string>> {
  await db.query('BEGIN');
  try {
    await db.query("SET LOCAL TimeZone = 'UTC'");
    await db.query("SET LOCAL DateStyle = 'ISO, YMD'");
    await db.query('SET LOCAL extra_float_digits = 1');
    const { rows } = await db.query<Record<string, string>>(`
      SELECT (SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM users t) AS users,
             (SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM "EventType" t) AS "eventTypes",
             (SELECT md5(string_agg(t::text, E'\\n' ORDER BY "A", "B")) FROM "_user_eventtype" t) AS links,
             (SELECT last_value::text FROM users_id_seq) AS "usersSeq",
             (SELECT last_value::text FROM "EventType_id_seq") AS "eventTypeSeq"`);
    return rows[0]!;
  } finally {
    await db.query('ROLLBACK');
  }
}

for (const kind of DB_KINDS) {
  test(`${kind}: the reference finds exactly the planted cases, and a set-based UPDATE agrees`, async () => {
    await withDb(kind, async ({ db }) => {
      const truth = await generate(db, { rows: 2000, seed: 42 });
      assert.equal(truth.rows, 2000);
      const ref = await expectedAfter(db);
      assertMatchesTruth(truth, ref);
      assert.equal(ref.renamed.size, 0);

      const before = await currentOwners(db);
      const want = ownersFromTruth(truth, before, 'skip');
      assert.deepEqual(ref.owner, want);
      assert.deepEqual(await ownersAfterSqlUpdate(db, 'skip'), want);

      // Inconsistent rows are reported with the users their links point to, never their own.
      assert.deepEqual([...ref.inconsistencies.keys()], truth.categories.inconsistent);
      for (const [id, users] of ref.inconsistencies) assert.ok(!users.includes(before.get(id)!));
    });
  });

  test(`${kind}: policy ambiguous=lowest picks the lowest valid user, then applies the slug rule`, async () => {
    await withDb(kind, async ({ db }) => {
      const truth = await generate(db, { rows: 2000, seed: 7 });
      assert.ok(truth.lowestPolicyConflicts.size > 0);
      const ref = await expectedAfter(db, { ambiguous: 'lowest' });
      assert.deepEqual(ref.categories, truth.categories, 'categories do not depend on the policy');
      assert.deepEqual(ref.conflicts, new Map([...truth.conflictCounterpart, ...truth.lowestPolicyConflicts]));
      const want = ownersFromTruth(truth, await currentOwners(db), 'lowest');
      assert.deepEqual(ref.owner, want);
      assert.deepEqual(await ownersAfterSqlUpdate(db, 'lowest'), want);
    });
  });

  test(`${kind}: policy slugConflict=rename gives every conflicting row <slug>-<id> and its owner`, async () => {
    await withDb(kind, async ({ db }) => {
      const truth = await generate(db, { rows: 1000, seed: 11 });
      const ref = await expectedAfter(db, { slugConflict: 'rename' });
      const { rows } = await db.query<{ id: number; slug: string }>('SELECT id::int AS id, slug FROM "EventType"');
      const slugOf = new Map(rows.map((r) => [Number(r.id), r.slug]));
      assert.deepEqual(
        [...ref.renamed.keys()].sort((a, b) => a - b),
        [...truth.conflictCounterpart.keys()].sort((a, b) => a - b),
      );
      assert.deepEqual(ref.renameSkipped, []);
      for (const [id, slug] of ref.renamed) {
        assert.equal(slug, `${slugOf.get(id)}-${id}`);
        assert.notEqual(ref.owner.get(id), null);
      }
    });
  });

  test(`${kind}: the data is realistic: sparse ids, awkward slugs, orphans both ways, proportions`, async () => {
    await withDb(kind, async ({ db }) => {
      const truth = await generate(db, { rows: 2000, seed: 3 });
      const { rows } = await db.query<Record<string, number>>(`
        SELECT (SELECT count(*)::int FROM "EventType") AS n,
               (SELECT max(id)::int FROM "EventType") AS "maxId",
               (SELECT count(*)::int FROM users) AS users,
               (SELECT max(id)::int FROM users) AS "maxUser",
               (SELECT count(*)::int FROM "EventType" WHERE slug LIKE '%''%') AS "singleQuote",
               (SELECT count(*)::int FROM "EventType" WHERE slug LIKE '%"%') AS "doubleQuote",
               (SELECT count(*)::int FROM "EventType" WHERE slug LIKE '% %') AS space,
               (SELECT count(*)::int FROM "EventType" WHERE slug LIKE '%;%') AS semicolon,
               (SELECT count(*)::int FROM "EventType" WHERE slug LIKE '%drop table%') AS "sqlLooking",
               (SELECT count(*)::int FROM "EventType" WHERE octet_length(slug) > length(slug)) AS "nonAscii",
               (SELECT count(*)::int FROM "EventType" WHERE metadata IS NULL) AS "nullMetadata",
               (SELECT count(*)::int FROM "EventType" WHERE metadata IS NOT NULL) AS "jsonMetadata",
               (SELECT count(*)::int FROM "_user_eventtype") AS links,
               (SELECT count(*)::int FROM (SELECT slug FROM "EventType" WHERE "userId" IS NOT NULL
                  GROUP BY slug HAVING count(*) > 1) s) AS "sharedSlugs"`);
      const r = rows[0]!;
      assert.equal(r.n, 2000);
      assert.ok(r.maxId! > r.n!, 'EventType ids have gaps');
      assert.ok(r.maxUser! > r.users!, 'users ids have gaps');
      assert.equal(r.users, truth.users);
      assert.equal(r.links, truth.links);
      for (const k of ['singleQuote', 'doubleQuote', 'space', 'semicolon', 'sqlLooking', 'nonAscii', 'nullMetadata', 'jsonMetadata']) {
        assert.ok(r[k]! > 0, `some slugs/rows have ${k}`);
      }
      assert.ok(r.sharedSlugs! > 0, 'different owners share slugs such as 30min');

      const share = (c: keyof Truth['counts']) => truth.counts[c] / truth.rows;
      assert.ok(share('assign') > 0.5 && share('assign') < 0.62);
      assert.ok(share('owned') > 0.12 && share('owned') < 0.18);
      for (const orphans of [truth.orphanLinks.missingUser, truth.orphanLinks.missingEventType]) {
        const pct = orphans.length / truth.links;
        assert.ok(pct > 0.01 && pct < 0.06, `orphan links ${(pct * 100).toFixed(1)}%`);
      }
      // Pairs are far apart: one row in each half of the table.
      const ids = (await db.query<{ id: number }>('SELECT id::int AS id FROM "EventType" ORDER BY id')).rows.map((x) => Number(x.id));
      const middle = ids[1000]!;
      const pairIds = truth.categories.conflictPair;
      for (const id of pairIds) {
        const other = truth.conflictCounterpart.get(id)!;
        assert.ok(pairIds.includes(other));
        assert.ok(id < middle !== other < middle, `pair ${id}/${other} spans both halves`);
      }
      // The sequences stand past every id, deleted ones included: the next insert gets a new id.
      const next = await db.query<{ id: number }>(`INSERT INTO "EventType" (title, slug) VALUES ('t', 'new-row') RETURNING id::int AS id`);
      assert.equal(Number(next.rows[0]!.id), truth.lastEventTypeId + 1);
      assert.ok(truth.orphanLinks.missingEventType.every(([a]) => a < truth.lastEventTypeId + 1));
    });
  });

  test(`${kind}: the generator is deterministic for a seed, and small databases hold every case`, async () => {
    await withDb(kind, async ({ db }) => {
      const a = await generate(db, { rows: 1000, seed: 5 });
      const da = await digest(db);
      const b = await generate(db, { rows: 1000, seed: 5 });
      const db2 = await digest(db);
      assert.deepEqual(b, a);
      assert.deepEqual(db2, da);
      await generate(db, { rows: 1000, seed: 6 });
      const dc = await digest(db);
      assert.notEqual(dc.eventTypes, da.eventTypes);
      assert.notEqual(dc.links, da.links);

      const small = await generate(db, { rows: 200, seed: 1 });
      assertMatchesTruth(small, await expectedAfter(db));
      const tiny = 50;
      const t = await generate(db, { rows: tiny, seed: 2 });
      assertMatchesTruth(t, await expectedAfter(db));
      assert.throws(() => plannedCounts(20), RangeError);
      await assert.rejects(generate(db, { rows: 20 }), RangeError);
    });
  });
}
