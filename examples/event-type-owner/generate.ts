// Data generator for the flagship example: a Cal.com-like database in which every case of the
// event-type-owner contract is planted, deterministically from a seed, with the ground truth returned.
//
// Every "EventType" row is in exactly one category:
//   assign            eligible (userId and teamId NULL), exactly one valid link: gets that user.
//                     A few also have orphan links to deleted users: still assign.
//   unowned           eligible, no valid link: no link at all, or only links to deleted users.
//   ambiguous         eligible, 2 or 3 valid links to distinct users.
//   conflictExisting  eligible, one valid link to user u, and u already owns another row with that slug.
//   conflictPair      two eligible rows far apart in id (one in each half of the table), same slug,
//                     each with one valid link to the same user u, who owns no row with that slug.
//   owned             userId set, teamId NULL, links agree (a link to userId, or no link at all).
//   inconsistent      userId set to u, but the valid links point only to other users.
//   team              teamId set, userId NULL; some have valid links (never to be written).
// Orphan links are planted in both directions: "B" not in users, and "A" not in "EventType".
// Slugs are unique per owner except where a conflict is planted; ids are sparse.
import { readFile } from 'node:fs/promises';
import { type Db, transaction } from '../../src/db/connection.ts';

export const CATEGORIES = ['assign', 'unowned', 'ambiguous', 'conflictExisting', 'conflictPair', 'owned', 'inconsistent', 'team'] as const;
export type Category = (typeof CATEGORIES)[number];

export type Link = [a: number, b: number];

export interface OrphanLinks {
  /** Links whose "A" is an existing EventType and whose "B" is not in users, sorted by (A, B). */
  missingUser: Link[];
  /** Links whose "A" is not an EventType id (whatever "B" is), sorted by (A, B). */
  missingEventType: Link[];
}

export interface Truth {
  rows: number;
  users: number;
  teams: number;
  /** Rows in "_user_eventtype", orphans included. */
  links: number;
  seed: number;
  /** EventType ids per category, sorted ascending. */
  categories: Record<Category, number[]>;
  counts: Record<Category, number>;
  /** Every assign row: id -> the user it must get. */
  expectedOwner: Map<number, number>;
  /** Every conflictExisting / conflictPair row: id -> the row it conflicts with. */
  conflictCounterpart: Map<number, number>;
  /** Every ambiguous row: id -> its lowest valid user id (what policy ambiguous=lowest picks). */
  lowestOwner: Map<number, number>;
  /**
   * Ambiguous rows whose lowest user already owns a row with the same slug: under policy
   * ambiguous=lowest they are slug conflicts (id -> that owned row) and stay NULL. Empty effect under skip.
   */
  lowestPolicyConflicts: Map<number, number>;
  orphanLinks: OrphanLinks;
  /** The sequences' positions after the load (ids of deleted rows are never reused). */
  lastUserId: number;
  lastEventTypeId: number;
}

export interface GenerateOptions {
  rows: number;
  /** Default 1. */
  seed?: number;
  /** Drop and create the tables first. Default true. With false the tables must exist and be empty. */
  schema?: boolean;
  /** Rows per INSERT statement. Default 20,000. */
  chunkSize?: number;
}

// ---------------------------------------------------------------------------------------------
// A small seeded PRNG (mulberry32): the same seed gives the same database, on any machine.

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Integer in [lo, hi], both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }
}

// ---------------------------------------------------------------------------------------------
// Vocabulary. Slug bases never end in "-<digits>", and every numbered slug ends in a unique
// "-<n>", so two numbered slugs are equal only when they were copied on purpose.

interface Base {
  slug: string;
  title: string;
}

const NORMAL_BASES: readonly Base[] = [
  { slug: 'discovery-call', title: 'Discovery Call' },
  { slug: 'intro', title: 'Intro' },
  { slug: 'onboarding', title: 'Onboarding' },
  { slug: 'office-hours', title: 'Office Hours' },
  { slug: 'interview', title: 'Interview' },
  { slug: 'product-demo', title: 'Product Demo' },
  { slug: 'consultation', title: 'Consultation' },
  { slug: 'coffee-chat', title: 'Coffee Chat' },
  { slug: 'one-on-one', title: 'One on One' },
  { slug: 'quick-sync', title: 'Quick Sync' },
  { slug: 'support', title: 'Support Session' },
  { slug: 'strategy-session', title: 'Strategy Session' },
  { slug: 'tutoring', title: 'Tutoring' },
  { slug: 'mentoring', title: 'Mentoring' },
  { slug: 'sales-call', title: 'Sales Call' },
  { slug: 'pairing', title: 'Pair Programming' },
];

// Quotes, spaces, semicolons, SQL-looking fragments, backslashes, LIKE wildcards, non-ASCII.
const AWKWARD_BASES: readonly Base[] = [
  { slug: "it's-a-call", title: "It's a call" },
  { slug: 'say "hi"', title: 'Say "hi"' },
  { slug: 'team sync', title: 'Team sync' },
  { slug: 'a;b', title: 'A; B' },
  { slug: "x'; drop table users; --", title: "x'; DROP TABLE users; --" },
  { slug: 'robert"); DROP TABLE "EventType";--', title: 'Little Bobby Tables' },
  { slug: 'café-crème', title: 'Café crème' },
  { slug: '日本語-ミーティング', title: '日本語ミーティング' },
  { slug: '🎉-party', title: '🎉 Party' },
  { slug: 'back\\slash', title: 'Back\\slash' },
  { slug: 'percent%_under', title: '100% _under_' },
  { slug: 'ünïcödé zürich', title: 'Ünïcödé Zürich' },
  { slug: ' leading-space', title: ' Leading space' },
  { slug: 'trailing-space ', title: 'Trailing space ' },
  { slug: '$1 param', title: '$1 param' },
  { slug: 'Ελληνικά', title: 'Ελληνικά' },
  { slug: 'emoji-👩‍💻', title: 'Emoji 👩‍💻' },
];

/** Slugs many users share (one each): realistic, and a test that conflicts are per owner. */
const PLAIN_BASES: readonly Base[] = [
  { slug: '15min', title: '15 Min Meeting' },
  { slug: '30min', title: '30 Min Meeting' },
  { slug: '60min', title: '60 Min Meeting' },
  { slug: 'secret', title: 'Secret Meeting' },
  { slug: 'quick-chat', title: 'Quick Chat' },
  { slug: 'café', title: 'Café' },
  { slug: "o'clock", title: "Five o'clock" },
];

const BASES: readonly Base[] = [...NORMAL_BASES, ...AWKWARD_BASES, ...PLAIN_BASES];
const AWKWARD_FROM = NORMAL_BASES.length;
const PLAIN_FROM = NORMAL_BASES.length + AWKWARD_BASES.length;

const DESCRIPTIONS: readonly string[] = [
  'A short call to get to know each other.',
  "Let's talk about your project.\nBring your questions!",
  'Réunion rapide — ordre du jour à définir.',
  'Bitte pünktlich sein. Danke!',
  'お気軽にご予約ください。',
  'Zoom link follows by e-mail; "no-shows" are charged.',
  "Don't forget: it's 'UTC', not local time.",
  '; SELECT 1; -- not a query, just a description',
  'Tabs\tand\ttrailing spaces   ',
  '',
  '🙂 Friendly chat ☕',
  'Line one\r\nLine two (CRLF)',
  'Back\\slashes \\n are literal here',
];

const FIRST_NAMES: readonly string[] = [
  'alice',
  'bob',
  'carol',
  'dave',
  'erin',
  'frank',
  'grace',
  'heidi',
  'ivan',
  'judy',
  'mallory',
  'niaj',
  'olivia',
  'peggy',
  'rupert',
  'sybil',
  'trent',
  'victor',
  'walter',
  'josé',
  'zoë',
  'françois',
  'søren',
  'łukasz',
  'анна',
  'はると',
  "o'brien",
];
const LAST_NAMES: readonly string[] = [
  'smith',
  'jones',
  'garcia',
  'müller',
  'rossi',
  'nguyen',
  'kim',
  'silva',
  'dubois',
  'tanaka',
  'kowalski',
  "o'neill",
  'van der berg',
  'ivanov',
  'núñez',
];
const MAIL_DOMAINS: readonly string[] = ['example.com', 'example.org', 'mail.test', 'cal.test'];
const LENGTHS: readonly number[] = [15, 30, 30, 30, 45, 60, 60, 90, 120];

// ---------------------------------------------------------------------------------------------

/** How many rows of each kind a database of `rows` event types gets. */
export function plannedCounts(rows: number): {
  counts: Record<Category, number>;
  pairs: number;
  lowestConflicts: number;
} {
  if (!Number.isInteger(rows) || rows <= 0) throw new RangeError(`rows must be a positive integer, got ${rows}`);
  const pairs = Math.max(2, Math.round(rows * 0.01));
  const conflictExisting = Math.max(3, Math.round(rows * 0.03));
  const ambiguous = Math.max(4, Math.round(rows * 0.06));
  const lowestConflicts = Math.max(1, Math.round(ambiguous * 0.1));
  const counts: Record<Category, number> = {
    assign: 0,
    unowned: Math.max(5, Math.round(rows * 0.08)),
    ambiguous,
    conflictExisting,
    conflictPair: 2 * pairs,
    owned: Math.max(conflictExisting + lowestConflicts + 4, Math.round(rows * 0.15)),
    inconsistent: Math.max(3, Math.round(rows * 0.02)),
    team: Math.max(4, Math.round(rows * 0.06)),
  };
  const others = CATEGORIES.reduce((s, c) => s + counts[c], 0);
  counts.assign = rows - others;
  if (counts.assign < 5) {
    throw new RangeError(`rows must be at least ${others + 5} so that every category is planted, got ${rows}`);
  }
  return { counts, pairs, lowestConflicts };
}

/** Ascending ids with deleted ones in between: single ids, whole blocks, a few before and after. */
function sparseIds(rng: Rng, n: number, blockP: number, blockMax: number, singleP: number) {
  const ids = new Int32Array(n);
  const gaps: number[] = [];
  let id = 1;
  for (let k = rng.int(0, 5); k > 0; k--) gaps.push(id++);
  for (let i = 0; i < n; i++) {
    const r = rng.next();
    if (r < blockP) {
      for (let k = rng.int(2, blockMax); k > 0; k--) gaps.push(id++);
    } else if (r < blockP + singleP) {
      gaps.push(id++);
    }
    ids[i] = id++;
  }
  for (let k = rng.int(3, 12); k > 0; k--) gaps.push(id++);
  return { ids, gaps, last: id - 1 };
}

/** k distinct integers in [lo, hi). */
function sampleDistinct(rng: Rng, lo: number, hi: number, k: number): number[] {
  if (hi - lo < k) throw new RangeError('not enough room to sample');
  const seen = new Set<number>();
  const out: number[] = [];
  while (out.length < k) {
    const v = rng.int(lo, hi - 1);
    if (!seen.has(v)) {
      seen.add(v);
      out.push(v);
    }
  }
  return out;
}

const cmpLink = (x: Link, y: Link) => x[0] - y[0] || x[1] - y[1];

/**
 * schema.sql split in two: the tables, and the indexes (built after the load, which is three times
 * faster than maintaining them row by row).
 */
export async function schemaSql(): Promise<{ tables: string; indexes: string }> {
  const text = await readFile(new URL('./schema.sql', import.meta.url), 'utf8');
  const tables: string[] = [];
  const indexes: string[] = [];
  for (const stmt of text.split(/;\s*(?:\n|$)/)) {
    const body = stmt.replace(/^\s*--.*$/gm, '').trim();
    if (!body) continue;
    (/^CREATE\s+(UNIQUE\s+)?INDEX\b/i.test(body) ? indexes : tables).push(`${body};`);
  }
  return { tables: tables.join('\n'), indexes: indexes.join('\n') };
}

export const DROP_SQL = 'DROP TABLE IF EXISTS "_user_eventtype", "EventType", users CASCADE';

/**
 * (Re)creates the example's tables (unless schema: false) and fills them with `rows` event types,
 * deterministically from the seed. Returns the planted ground truth.
 */
export async function generate(db: Db, opts: GenerateOptions): Promise<Truth> {
  const rows = opts.rows;
  const seed = opts.seed ?? 1;
  const chunkSize = opts.chunkSize ?? 20_000;
  const { counts, pairs, lowestConflicts } = plannedCounts(rows);
  const rng = new Rng(seed);

  // --- ids -----------------------------------------------------------------------------------
  const nUsers = Math.max(20, Math.round(rows / 10));
  const nTeams = Math.max(3, Math.round(rows / 150));
  const users = sparseIds(rng, nUsers, 0.01, 30, 0.05);
  const events = sparseIds(rng, rows, 0.001, 200, 0.02);
  const teams = sparseIds(rng, nTeams, 0, 0, 0.2);
  const userIds = users.ids;
  const maxUser = userIds[nUsers - 1]!;
  // Some users own many event types, most a few.
  const pickUser = () => userIds[Math.floor(nUsers * rng.next() ** 1.6)]!;
  const pickOtherUser = (...not: number[]) => {
    for (;;) {
      const u = pickUser();
      if (!not.includes(u)) return u;
    }
  };
  const pickMissingUser = (not = 0) => {
    for (;;) {
      const u = rng.pick(users.gaps);
      if (u !== not) return u;
    }
  };

  // --- categories by position (position i holds id events.ids[i]) -----------------------------
  const NONE = 255;
  const cat = new Uint8Array(rows).fill(NONE);
  const C = Object.fromEntries(CATEGORIES.map((c, i) => [c, i])) as Record<Category, number>;
  const half = Math.floor(rows / 2);
  const pairFirst = sampleDistinct(rng, 0, half, pairs);
  const pairSecond = sampleDistinct(rng, half, rows, pairs);
  for (const p of pairFirst) cat[p] = C.conflictPair;
  for (const p of pairSecond) cat[p] = C.conflictPair;
  const rest = new Uint8Array(rows - 2 * pairs);
  {
    let k = 0;
    for (const c of CATEGORIES) {
      if (c === 'conflictPair') continue;
      rest.fill(C[c], k, k + counts[c]);
      k += counts[c];
    }
    for (let i = rest.length - 1; i > 0; i--) {
      const j = Math.floor(rng.next() * (i + 1));
      const t = rest[i]!;
      rest[i] = rest[j]!;
      rest[j] = t;
    }
    k = 0;
    for (let i = 0; i < rows; i++) if (cat[i] === NONE) cat[i] = rest[k++]!;
  }
  const byCat: number[][] = CATEGORIES.map(() => []);
  for (let i = 0; i < rows; i++) byCat[cat[i]!]!.push(i);
  // Shuffled copies choose which rows get which variant; the first few get the rare variants so
  // that small databases hold every one.
  const shuffled = (c: Category) => rng.shuffle(byCat[C[c]]!.slice());
  const atLeast = (n: number, p: number, min: number) => Math.min(n, Math.max(min, Math.round(n * p)));

  // --- owners and links, by position ----------------------------------------------------------
  const userId = new Int32Array(rows); // 0 = NULL
  const teamId = new Int32Array(rows);
  const link1 = new Int32Array(rows); // valid links ("B"), 0 = none
  const link2 = new Int32Array(rows);
  const link3 = new Int32Array(rows);
  const orph1 = new Int32Array(rows); // links to deleted users, 0 = none
  const orph2 = new Int32Array(rows);
  const slugOwner = new Array<string | undefined>(rows); // who owns the slug after the migration
  const copyFrom = new Int32Array(rows).fill(-1); // position whose slug this row copies
  const conflictWith = new Int32Array(rows).fill(-1);
  const lowestConflictWith = new Int32Array(rows).fill(-1);

  const owned = shuffled('owned');
  {
    const linkP = 0.65;
    const withOrphan = atLeast(owned.length, 0.01, 1);
    owned.forEach((p, k) => {
      const u = pickUser();
      userId[p] = u;
      slugOwner[p] = `u${u}`;
      // The variants are taken from the end of the list; the counterparts of conflicts from the start.
      const r = owned.length - 1 - k;
      if (r >= 2 && (r < 4 || rng.chance(linkP))) link1[p] = u;
      if (r < withOrphan) orph1[p] = pickMissingUser();
    });
  }
  let ownedNext = 0;

  const inconsistent = shuffled('inconsistent');
  inconsistent.forEach((p, k) => {
    const u = pickUser();
    userId[p] = u;
    slugOwner[p] = `u${u}`;
    link1[p] = pickOtherUser(u);
    if (k > 0 && rng.chance(0.2)) link2[p] = pickOtherUser(u, link1[p]!);
  });

  const team = shuffled('team');
  {
    const withLinks = atLeast(team.length, 0.3, 2);
    const teamIds = Array.from(teams.ids);
    team.forEach((p, k) => {
      const t = rng.pick(teamIds);
      teamId[p] = t;
      slugOwner[p] = `t${t}`;
      if (k < withLinks) {
        link1[p] = pickUser();
        if (k === 0 || rng.chance(0.3)) link2[p] = pickOtherUser(link1[p]!);
      }
    });
  }

  const assign = shuffled('assign');
  {
    const withOrphan = atLeast(assign.length, 0.015, 2);
    assign.forEach((p, k) => {
      const u = pickUser();
      link1[p] = u;
      slugOwner[p] = `u${u}`;
      if (k < withOrphan) {
        orph1[p] = pickMissingUser();
        if (k === 0) orph2[p] = pickMissingUser(orph1[p]);
      }
    });
  }

  const unowned = shuffled('unowned');
  {
    const withOrphan = atLeast(unowned.length, 0.2, 2);
    unowned.forEach((p, k) => {
      if (k < withOrphan) {
        orph1[p] = pickMissingUser();
        if (k === 0 || rng.chance(0.2)) orph2[p] = pickMissingUser(orph1[p]);
      }
    });
  }

  const conflictExisting = shuffled('conflictExisting');
  for (const p of conflictExisting) {
    const o = owned[ownedNext++]!;
    link1[p] = userId[o]!;
    copyFrom[p] = o;
    conflictWith[p] = o;
  }

  for (let k = 0; k < pairs; k++) {
    const p = pairFirst[k]!;
    const q = pairSecond[k]!;
    const u = pickUser();
    link1[p] = u;
    link1[q] = u;
    copyFrom[q] = p;
    conflictWith[p] = q;
    conflictWith[q] = p;
  }

  const ambiguous = shuffled('ambiguous');
  {
    const withOrphan = atLeast(ambiguous.length, 0.05, 1);
    const higherUser = (u: number, not = 0) => {
      const from = userIds.indexOf(u) + 1;
      for (;;) {
        const v = userIds[rng.int(from, nUsers - 1)]!;
        if (v !== not) return v;
      }
    };
    ambiguous.forEach((p, k) => {
      if (k < lowestConflicts) {
        // Its lowest user already owns this slug: a conflict under policy ambiguous=lowest only.
        let o = owned[ownedNext++];
        while (o !== undefined && userId[o] === maxUser) o = owned[ownedNext++];
        if (o === undefined) throw new Error('not enough owned rows to plant the ambiguous conflicts');
        const m = userId[o]!;
        link1[p] = m;
        link2[p] = higherUser(m);
        if (userIds.indexOf(m) < nUsers - 2 && rng.chance(0.3)) link3[p] = higherUser(m, link2[p]!);
        copyFrom[p] = o;
        lowestConflictWith[p] = o;
      } else {
        link1[p] = pickUser();
        link2[p] = pickOtherUser(link1[p]!);
        if (k === lowestConflicts || rng.chance(0.3)) link3[p] = pickOtherUser(link1[p]!, link2[p]!);
      }
      if (k >= ambiguous.length - withOrphan) orph1[p] = pickMissingUser();
    });
  }

  // --- slugs, in id order ---------------------------------------------------------------------
  const slug = new Array<string>(rows);
  const baseOf = new Uint16Array(rows);
  const plainTaken = new Map<string, Set<number>>(); // owner -> plain bases it has
  let counter = 0;
  for (let i = 0; i < rows; i++) {
    if (copyFrom[i]! >= 0) continue;
    const c = CATEGORIES[cat[i]!]!;
    const owner = slugOwner[i];
    const plainP = c === 'owned' || c === 'inconsistent' || c === 'team' ? 0.3 : c === 'assign' || c === 'unowned' ? 0.1 : 0;
    if (plainP > 0 && rng.chance(plainP)) {
      const b = PLAIN_FROM + rng.int(0, PLAIN_BASES.length - 1);
      let taken: Set<number> | undefined;
      if (owner !== undefined) {
        taken = plainTaken.get(owner);
        if (!taken) {
          taken = new Set();
          plainTaken.set(owner, taken);
        }
      }
      if (!taken?.has(b)) {
        taken?.add(b);
        slug[i] = BASES[b]!.slug;
        baseOf[i] = b;
        continue;
      }
    }
    const b = rng.chance(0.08) ? AWKWARD_FROM + rng.int(0, AWKWARD_BASES.length - 1) : rng.int(0, NORMAL_BASES.length - 1);
    slug[i] = `${BASES[b]!.slug}-${++counter}`;
    baseOf[i] = b;
  }
  for (let i = 0; i < rows; i++) {
    const from = copyFrom[i]!;
    if (from >= 0) {
      slug[i] = slug[from]!;
      baseOf[i] = baseOf[from]!;
    }
  }

  // --- links, in "A" order, with orphans to deleted event types merged in -----------------------
  let validLinks = 0;
  for (let i = 0; i < rows; i++) validLinks += (link1[i] ? 1 : 0) + (link2[i] ? 1 : 0) + (link3[i] ? 1 : 0);
  const missingUser: Link[] = [];
  const missingEventType: Link[] = [];
  {
    const target = Math.max(3, Math.round(validLinks * 0.03));
    const seen = new Set<number>();
    while (missingEventType.length < target) {
      const a = rng.pick(events.gaps);
      const b = rng.chance(0.85) ? pickUser() : pickMissingUser();
      const key = a * 4_194_304 + b;
      if (seen.has(key)) continue;
      seen.add(key);
      missingEventType.push([a, b]);
    }
    missingEventType.sort(cmpLink);
  }
  const linkA: number[] = [];
  const linkB: number[] = [];
  {
    let m = 0;
    for (let i = 0; i < rows; i++) {
      const id = events.ids[i]!;
      while (m < missingEventType.length && missingEventType[m]![0] < id) {
        linkA.push(missingEventType[m]![0]);
        linkB.push(missingEventType[m]![1]);
        m++;
      }
      for (const b of [link1[i]!, link2[i]!, link3[i]!]) {
        if (b) {
          linkA.push(id);
          linkB.push(b);
        }
      }
      for (const b of [orph1[i]!, orph2[i]!]) {
        if (b) {
          linkA.push(id);
          linkB.push(b);
          missingUser.push([id, b]);
        }
      }
    }
    for (; m < missingEventType.length; m++) {
      linkA.push(missingEventType[m]![0]);
      linkB.push(missingEventType[m]![1]);
    }
    missingUser.sort(cmpLink);
  }

  // --- load ------------------------------------------------------------------------------------
  const deco = new Rng((seed ^ 0x9e3779b9) >>> 0); // titles, descriptions, dates, metadata
  const ddl = opts.schema === false ? undefined : await schemaSql();
  await transaction(db, async () => {
    if (ddl) {
      await db.query(DROP_SQL);
      await db.exec(ddl.tables);
    }
    // Each chunk is sent as one JSON array of arrays; the next chunk is built while the server
    // inserts the previous one.
    let pending: Promise<unknown> = Promise.resolve();
    const send = async (sql: string, chunk: unknown[]) => {
      await pending;
      pending = db.query(sql, [JSON.stringify(chunk)]);
      pending.catch(() => undefined); // awaited by the next send or at the end
    };
    for (let lo = 0; lo < nUsers; lo += chunkSize) {
      const chunk = [];
      for (let i = lo; i < Math.min(nUsers, lo + chunkSize); i++) {
        const first = deco.pick(FIRST_NAMES);
        const last = deco.pick(LAST_NAMES);
        const n = i + 1;
        chunk.push([userIds[i], deco.chance(0.5) ? `${first}.${last}${n}` : `${first}${n}`, `${ascii(first)}.${ascii(last)}.${n}@${deco.pick(MAIL_DOMAINS)}`]);
      }
      await send(
        `INSERT INTO users (id, username, email)
         SELECT (e->>0)::int, e->>1, e->>2 FROM jsonb_array_elements($1::jsonb) AS e`,
        chunk,
      );
    }
    const t0 = Date.UTC(2019, 5, 1);
    const span = 5 * 365 * 86_400_000;
    for (let lo = 0; lo < rows; lo += chunkSize) {
      const chunk = [];
      for (let i = lo; i < Math.min(rows, lo + chunkSize); i++) {
        const base = BASES[baseOf[i]!]!;
        const length = deco.pick(LENGTHS);
        chunk.push([
          events.ids[i],
          deco.chance(0.2) ? `${base.title} (${length} min)` : base.title,
          slug[i],
          userId[i] || null,
          teamId[i] || null,
          length,
          deco.chance(0.06),
          deco.chance(0.35) ? null : deco.pick(DESCRIPTIONS),
          new Date(t0 + Math.floor((i / rows) * span) + deco.int(-3 * 86_400_000, 3 * 86_400_000) + deco.int(0, 999)).toISOString(),
          metadata(deco),
        ]);
      }
      await send(
        `INSERT INTO "EventType" (id, title, slug, "userId", "teamId", length, hidden, description, "createdAt", metadata)
         SELECT (e->>0)::int, e->>1, e->>2, (e->>3)::int, (e->>4)::int, (e->>5)::int, (e->>6)::boolean, e->>7,
                (e->>8)::timestamptz, (e->>9)::jsonb
         FROM jsonb_array_elements($1::jsonb) AS e`,
        chunk,
      );
    }
    await pending;
    const linkChunk = chunkSize * 5;
    for (let lo = 0; lo < linkA.length; lo += linkChunk) {
      const hi = Math.min(linkA.length, lo + linkChunk);
      await db.query(`INSERT INTO "_user_eventtype" ("A", "B") SELECT * FROM unnest($1::int[], $2::int[])`, [
        `{${linkA.slice(lo, hi).join(',')}}`,
        `{${linkB.slice(lo, hi).join(',')}}`,
      ]);
    }
    // Deleted rows' ids are never reused: the sequences stand past every id ever handed out.
    await db.query(`SELECT setval(pg_get_serial_sequence('users', 'id'), $1)`, [users.last]);
    await db.query(`SELECT setval(pg_get_serial_sequence('"EventType"', 'id'), $1)`, [events.last]);
    if (ddl) await db.exec(ddl.indexes);
  });
  await db.query('ANALYZE users, "EventType", "_user_eventtype"');

  // --- truth -----------------------------------------------------------------------------------
  const categories = Object.fromEntries(CATEGORIES.map((c) => [c, [] as number[]])) as Record<Category, number[]>;
  const expectedOwner = new Map<number, number>();
  const conflictCounterpart = new Map<number, number>();
  const lowestOwner = new Map<number, number>();
  const lowestPolicyConflicts = new Map<number, number>();
  for (let i = 0; i < rows; i++) {
    const id = events.ids[i]!;
    const c = CATEGORIES[cat[i]!]!;
    categories[c].push(id);
    if (c === 'assign') expectedOwner.set(id, link1[i]!);
    if (conflictWith[i]! >= 0) conflictCounterpart.set(id, events.ids[conflictWith[i]!]!);
    if (c === 'ambiguous') {
      lowestOwner.set(id, Math.min(...[link1[i]!, link2[i]!, link3[i]!].filter((b) => b !== 0)));
    }
    if (lowestConflictWith[i]! >= 0) lowestPolicyConflicts.set(id, events.ids[lowestConflictWith[i]!]!);
  }
  return {
    rows,
    users: nUsers,
    teams: nTeams,
    links: linkA.length,
    seed,
    categories,
    counts: Object.fromEntries(CATEGORIES.map((c) => [c, categories[c].length])) as Record<Category, number>,
    expectedOwner,
    conflictCounterpart,
    lowestOwner,
    lowestPolicyConflicts,
    orphanLinks: { missingUser, missingEventType },
    lastUserId: users.last,
    lastEventTypeId: events.last,
  };
}

function ascii(s: string): string {
  const t = s
    .normalize('NFKD')
    .replace(/[^a-zA-Z]/g, '')
    .toLowerCase();
  return t || 'user';
}

/** The metadata column as JSON text: SQL NULL mostly, now and then a JSON null (Prisma's JsonNull). */
function metadata(r: Rng): string | null {
  if (r.chance(0.45)) return null;
  if (r.chance(0.02)) return 'null';
  return JSON.stringify(metadataValue(r));
}

function metadataValue(r: Rng): unknown {
  switch (r.int(0, 6)) {
    case 0:
      return {};
    case 1:
      return { apps: { stripe: { price: r.int(1, 500) * 100, currency: r.pick(['usd', 'eur', 'jpy']), enabled: true } } };
    case 2:
      return { multipleDuration: [15, 30, 60] };
    case 3:
      return { config: { useHostSchedulesForTeamEvent: r.chance(0.5) }, bookerLayouts: null };
    case 4:
      return { note: 'naïve "quoted" \u2713 \\ back', tags: ['a', "b'c", '日本'] };
    case 5:
      return { smartContractAddress: `0x${r.int(0, 0xffffff).toString(16).padStart(6, '0')}`, blockchainId: 1 };
    default:
      return { nested: { deep: { value: r.next() < 0.5 ? 1.5 : -2.25e-7, big: 12345678901234 } } };
  }
}
