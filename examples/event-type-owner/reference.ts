// An independent, plain-JavaScript implementation of the event-type-owner contract (DESIGN.md,
// "The flagship"). It reads the database as it is now and says what every row must look like after
// the migration. It shares nothing with the engine or the generator but the category names: it is
// the oracle the tests hold both against.
//
// Definitions used here:
// - a link is valid when "B" is in users and "A" is in "EventType"; other links are orphans:
//   missingEventType when "A" is not an EventType id (whatever "B" is), else missingUser;
// - team: "teamId" set (whatever "userId" is); never written;
// - owned: "userId" set, "teamId" NULL, and either no valid link or a valid link to "userId";
// - inconsistent: "userId" set, "teamId" NULL, valid links exist and none is to "userId";
// - eligible ("userId" and "teamId" NULL): no valid link -> unowned; several distinct valid users ->
//   ambiguous (the category stays ambiguous under policy lowest, whatever then happens to the row);
//   one -> the candidate owner, then the slug rule: conflictExisting when the owner already owns a row
//   (any row with that "userId", team or not) with the same slug, else conflictPair when other eligible
//   candidates go to the same owner with the same slug, else assign.
// - policy slugConflict=rename: every conflicting row gets slug `<slug>-<id>` and its owner, unless
//   that (owner, slug) is taken in the final state (an existing row, a row being assigned, or another
//   renamed row getting the same pair): then it is skipped and stays as it is.
import type { Db } from '../../src/db/connection.ts';
import { CATEGORIES, type Category, type Link, type OrphanLinks } from './generate.ts';

export interface Policy {
  /** Several valid links: leave NULL (skip, default) or pick the lowest valid user id. */
  ambiguous?: 'skip' | 'lowest';
  /** Slug conflicts: leave the rows alone (skip, default) or rename them `<slug>-<id>`. */
  slugConflict?: 'skip' | 'rename';
}

export interface Snapshot {
  users: Set<number>;
  /** EventType rows sorted by id. userId/teamId null for NULL. */
  eventTypes: { id: number[]; slug: string[]; userId: (number | null)[]; teamId: (number | null)[] };
  /** All links, sorted by (A, B). */
  links: Link[];
}

export interface Expected {
  /** Every EventType id -> its "userId" after the migration. */
  owner: Map<number, number | null>;
  /** Ids whose "userId" changes, ascending. */
  changed: number[];
  /** Ids per category (see the definitions above), ascending. */
  categories: Record<Category, number[]>;
  counts: Record<Category, number>;
  /** Every eligible row in a slug conflict -> the row it conflicts with (the lowest such id). */
  conflicts: Map<number, number>;
  /** Policy rename: id -> new slug, for each conflicting row that was renamed (and assigned). */
  renamed: Map<number, string>;
  /** Policy rename: conflicting rows whose renamed slug is taken too; they stay as they are. */
  renameSkipped: number[];
  /** Rows with "userId" set that disagrees with the links -> their valid link users. */
  inconsistencies: Map<number, number[]>;
  orphanLinks: OrphanLinks;
}

const PAGE = 50_000;

/** Reads users' ids, every EventType's (id, slug, userId, teamId) and every link, page by page. */
export async function readSnapshot(db: Db): Promise<Snapshot> {
  const users = new Set<number>();
  for (let after = -2147483648; ; ) {
    const { rows } = await db.query<{ id: number }>('SELECT id::int AS id FROM users WHERE id > $1 ORDER BY id LIMIT $2', [after, PAGE]);
    for (const r of rows) users.add(Number(r.id));
    if (rows.length < PAGE) break;
    after = Number(rows[rows.length - 1]!.id);
  }
  const eventTypes: Snapshot['eventTypes'] = { id: [], slug: [], userId: [], teamId: [] };
  for (let after = -2147483648; ; ) {
    const { rows } = await db.query<{ id: number; slug: string; userId: number | null; teamId: number | null }>(
      `SELECT id::int AS id, slug, "userId"::int AS "userId", "teamId"::int AS "teamId"
       FROM "EventType" WHERE id > $1 ORDER BY id LIMIT $2`,
      [after, PAGE],
    );
    for (const r of rows) {
      eventTypes.id.push(Number(r.id));
      eventTypes.slug.push(r.slug);
      eventTypes.userId.push(r.userId === null ? null : Number(r.userId));
      eventTypes.teamId.push(r.teamId === null ? null : Number(r.teamId));
    }
    if (rows.length < PAGE) break;
    after = Number(rows[rows.length - 1]!.id);
  }
  const links: Link[] = [];
  for (let a = -2147483648, b = -2147483648; ; ) {
    const { rows } = await db.query<{ A: number; B: number }>(
      `SELECT "A"::int AS "A", "B"::int AS "B" FROM "_user_eventtype"
       WHERE ("A", "B") > ($1, $2) ORDER BY "A", "B" LIMIT $3`,
      [a, b, PAGE],
    );
    for (const r of rows) links.push([Number(r.A), Number(r.B)]);
    if (rows.length < PAGE) break;
    [a, b] = links[links.length - 1]!;
  }
  return { users, eventTypes, links };
}

/** The contract, applied in memory to a snapshot. */
export function computeExpected(snap: Snapshot, policy: Policy = {}): Expected {
  const ambiguousPolicy = policy.ambiguous ?? 'skip';
  const slugPolicy = policy.slugConflict ?? 'skip';
  const { id: ids, slug, userId, teamId } = snap.eventTypes;
  const n = ids.length;
  const indexOf = new Map<number, number>();
  for (let i = 0; i < n; i++) indexOf.set(ids[i]!, i);

  // Valid links per row, and the orphans.
  const valid: (number[] | undefined)[] = new Array(n);
  const orphanLinks: OrphanLinks = { missingUser: [], missingEventType: [] };
  for (const [a, b] of snap.links) {
    const i = indexOf.get(a);
    if (i === undefined) orphanLinks.missingEventType.push([a, b]);
    else if (!snap.users.has(b)) orphanLinks.missingUser.push([a, b]);
    else {
      const v = valid[i] ?? [];
      valid[i] = v;
      if (!v.includes(b)) v.push(b);
    }
  }
  const byId = (x: Link, y: Link) => x[0] - y[0] || x[1] - y[1];
  orphanLinks.missingUser.sort(byId);
  orphanLinks.missingEventType.sort(byId);

  const key = (owner: number, s: string) => `${owner}\u0000${s}`;
  // Who owns what now: every row with "userId" set, team rows included (the unique index covers them).
  const existing = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const u = userId[i];
    if (u === null || u === undefined) continue;
    const k = key(u, slug[i]!);
    const prev = existing.get(k);
    if (prev === undefined || ids[i]! < prev) existing.set(k, ids[i]!);
  }

  const cat = new Array<Category>(n);
  const candidate = new Map<number, number>(); // row index -> owner it would get
  const inconsistencies = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    const v = valid[i] ?? [];
    if (teamId[i] !== null) cat[i] = 'team';
    else if (userId[i] !== null) {
      if (v.length > 0 && !v.includes(userId[i]!)) {
        cat[i] = 'inconsistent';
        inconsistencies.set(
          ids[i]!,
          [...v].sort((x, y) => x - y),
        );
      } else cat[i] = 'owned';
    } else if (v.length === 0) cat[i] = 'unowned';
    else if (v.length > 1) {
      cat[i] = 'ambiguous';
      if (ambiguousPolicy === 'lowest') candidate.set(i, Math.min(...v));
    } else {
      cat[i] = 'assign'; // until a conflict says otherwise
      candidate.set(i, v[0]!);
    }
  }

  // Slug conflicts among candidates.
  const groups = new Map<string, number[]>(); // (owner, slug) -> candidate row indexes, ascending
  for (const [i, owner] of candidate) {
    const k = key(owner, slug[i]!);
    const g = groups.get(k);
    if (g) g.push(i);
    else groups.set(k, [i]);
  }
  const conflicts = new Map<number, number>();
  const assigned = new Map<number, number>(); // row index -> owner
  for (const [i, owner] of candidate) {
    const k = key(owner, slug[i]!);
    const ex = existing.get(k);
    const g = groups.get(k)!;
    if (ex !== undefined) {
      conflicts.set(ids[i]!, ex);
      if (cat[i] === 'assign') cat[i] = 'conflictExisting';
    } else if (g.length > 1) {
      const other = Math.min(...g.filter((j) => j !== i).map((j) => ids[j]!));
      conflicts.set(ids[i]!, other);
      if (cat[i] === 'assign') cat[i] = 'conflictPair';
    } else {
      assigned.set(i, owner);
    }
  }

  const renamed = new Map<number, string>();
  const renameSkipped: number[] = [];
  if (slugPolicy === 'rename') {
    const taken = new Set<string>(existing.keys());
    for (const [i, owner] of assigned) taken.add(key(owner, slug[i]!));
    const wanted = new Map<string, number>();
    const tries: Array<[number, number, string]> = [];
    for (const [i, owner] of candidate) {
      if (!conflicts.has(ids[i]!)) continue;
      const s = `${slug[i]}-${ids[i]}`;
      tries.push([i, owner, s]);
      wanted.set(key(owner, s), (wanted.get(key(owner, s)) ?? 0) + 1);
    }
    for (const [i, owner, s] of tries) {
      const k = key(owner, s);
      if (taken.has(k) || wanted.get(k)! > 1) renameSkipped.push(ids[i]!);
      else {
        renamed.set(ids[i]!, s);
        assigned.set(i, owner);
      }
    }
    renameSkipped.sort((x, y) => x - y);
  }

  const owner = new Map<number, number | null>();
  const changed: number[] = [];
  const categories = Object.fromEntries(CATEGORIES.map((c) => [c, [] as number[]])) as Record<Category, number[]>;
  for (let i = 0; i < n; i++) {
    const before = userId[i] ?? null;
    const after = assigned.get(i) ?? before;
    owner.set(ids[i]!, after);
    if (after !== before) changed.push(ids[i]!);
    categories[cat[i]!].push(ids[i]!);
  }
  return {
    owner,
    changed,
    categories,
    counts: Object.fromEntries(CATEGORIES.map((c) => [c, categories[c].length])) as Record<Category, number>,
    conflicts,
    renamed,
    renameSkipped,
    inconsistencies,
    orphanLinks,
  };
}

/** Reads the database and computes what the migration must leave, under the given policy. */
export async function expectedAfter(db: Db, policy: Policy = {}): Promise<Expected> {
  return computeExpected(await readSnapshot(db), policy);
}
