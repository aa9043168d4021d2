// A stand-in for the application: inserts, updates and deletes event types at a steady rate on its own
// connections while belay runs, and logs what every touched row must look like afterwards.
import { type Db, openDb } from '../../src/db/connection.ts';
import { Prng } from './prng.ts';

export interface ExpectedRow {
  exists: boolean;
  title?: string;
  slug?: string;
  userId?: number | null;
  teamId?: number | null;
}

export interface LoadOptions {
  url: string;
  seed: number;
  /** Writes per second over all connections. */
  rate: number;
  maxWrites: number;
  maxMs: number;
  connections: number;
  /** Existing ids whose title may change (any row). */
  updatable: number[];
  /** Existing ids the application may delete (team event types: the migration never reads or writes them). */
  deletable: number[];
  users: number[];
}

export interface LoadLog {
  /** EventType id -> its expected final values (only the columns the application wrote). */
  rows: Map<number, ExpectedRow>;
  writes: { insert: number; update: number; delete: number };
  ms: number;
}

/**
 * Runs until stop() resolves or a bound is reached. Writes keep the migration's inputs of existing rows
 * unchanged (slug, userId, teamId, links), so its outcome stays exactly predictable: inserted rows use
 * fresh slugs, and are either owned, team rows, or personal rows without links (never assigned).
 */
export async function runLoad(o: LoadOptions, stop: Promise<void>): Promise<LoadLog> {
  const prng = new Prng(o.seed);
  const log: LoadLog = { rows: new Map(), writes: { insert: 0, update: 0, delete: 0 }, ms: 0 };
  const deletable = [...o.deletable];
  const inserted: number[] = [];
  const gone = new Set<number>();
  let stopped = false;
  void stop.then(() => (stopped = true));
  const t0 = performance.now();
  let n = 0;
  const worker = async (db: Db) => {
    while (!stopped && n < o.maxWrites && performance.now() - t0 < o.maxMs) {
      const i = n++;
      // steady pace: write i is due at i / rate seconds
      const due = t0 + (i * 1000) / o.rate;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const op = prng.next();
      if (op < 0.5) {
        const id = prng.pick(o.updatable.concat(inserted));
        if (gone.has(id)) continue;
        const title = `load title ${o.seed}-${i} 'quoted'; --`;
        const r = await db.query(`UPDATE "EventType" SET title = $2 WHERE id = $1`, [id, title]);
        if (r.rowCount === 1) log.rows.set(id, { ...(log.rows.get(id) ?? { exists: true }), exists: true, title });
        log.writes.update++;
      } else if (op < 0.8 || deletable.length === 0) {
        const kind = prng.int(0, 2);
        const slug = `load-${o.seed}-${i}`;
        const userId = kind === 0 ? prng.pick(o.users) : null;
        const teamId = kind === 1 ? prng.int(1, 50) : null;
        const title = `load insert ${i}`;
        const r = await db.query<{ id: number }>(`INSERT INTO "EventType" (title, slug, "userId", "teamId") VALUES ($1, $2, $3, $4) RETURNING id`, [
          title,
          slug,
          userId,
          teamId,
        ]);
        const id = Number(r.rows[0]!.id);
        inserted.push(id);
        if (teamId !== null) deletable.push(id);
        log.rows.set(id, { exists: true, title, slug, userId, teamId });
        log.writes.insert++;
      } else {
        const at = prng.int(0, deletable.length - 1);
        const id = deletable[at]!;
        deletable.splice(at, 1);
        gone.add(id);
        await db.query(`DELETE FROM "EventType" WHERE id = $1`, [id]);
        log.rows.set(id, { exists: false });
        log.writes.delete++;
      }
    }
  };
  const dbs = await Promise.all(Array.from({ length: o.connections }, () => openDb(o.url, { applicationName: 'belay-reliability-app' })));
  try {
    await Promise.all(dbs.map(worker));
  } finally {
    for (const d of dbs) await d.close();
  }
  log.ms = performance.now() - t0;
  return log;
}

/** Every logged write must be present: problems, if any. */
export async function checkLoggedWrites(db: Db, log: LoadLog): Promise<string[]> {
  const out: string[] = [];
  const ids = [...log.rows.keys()];
  const r = await db.query<{ id: number; title: string; slug: string; userId: number | null; teamId: number | null }>(
    `SELECT id, title, slug, "userId", "teamId" FROM "EventType" WHERE id = ANY($1::int[])`,
    [ids],
  );
  const now = new Map(r.rows.map((x) => [Number(x.id), x]));
  for (const [id, want] of log.rows) {
    const got = now.get(id);
    if (!want.exists) {
      if (got) out.push(`row ${id} was deleted by the application but exists`);
      continue;
    }
    if (!got) {
      out.push(`row ${id} written by the application is missing`);
      continue;
    }
    for (const k of ['title', 'slug', 'userId', 'teamId'] as const) {
      if (want[k] !== undefined && want[k] !== got[k])
        out.push(`row ${id}: ${k} is ${JSON.stringify(got[k])}, the application wrote ${JSON.stringify(want[k])}`);
    }
  }
  return out.slice(0, 20);
}
