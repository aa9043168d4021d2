// Benchmark databases: the flagship generated once into a template, then copied per measurement.
import { generate } from '../examples/event-type-owner/generate.ts';
import { type Db, openDb } from '../src/db/connection.ts';

export const SERVER = process.env.BELAY_BENCH_SERVER ?? 'postgres://postgres@127.0.0.1:5432';

/** Creates (or reuses) template database belay_bench_tpl_<rows>_<seed> holding the flagship data. */
export async function flagshipTemplate(rows: number, seed = 1): Promise<string> {
  const name = `belay_bench_tpl_${rows}_${seed}`;
  const admin = await openDb(`${SERVER}/postgres`);
  try {
    const exists = await admin.query(`SELECT 1 FROM pg_database WHERE datname = $1`, [name]);
    if (exists.rows.length === 0) {
      await admin.query(`CREATE DATABASE ${name}`);
      const db = await openDb(`${SERVER}/${name}`);
      const t0 = performance.now();
      await generate(db, { rows, seed });
      await db.query('VACUUM ANALYZE');
      await db.close();
      process.stderr.write(`generated ${rows} event types in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
    }
  } finally {
    await admin.close();
  }
  return name;
}

/** A fresh copy of the template; drop() removes it. */
export async function copyOf(template: string, label: string): Promise<{ url: string; db: Db; drop(): Promise<void> }> {
  const name = `belay_bench_${label}_${process.pid}`;
  const admin = await openDb(`${SERVER}/postgres`);
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  await admin.close();
  const url = `${SERVER}/${name}`;
  const db = await openDb(url);
  // a copied database starts with cold caches and no visibility map: warm both the same way for every contender
  await db.query('VACUUM ANALYZE');
  await db.query(`SELECT count(*) FROM "EventType"`);
  await db.query(`SELECT count(*) FROM "_user_eventtype"`);
  return {
    url,
    db,
    async drop() {
      await db.close();
      const a = await openDb(`${SERVER}/postgres`);
      await a.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await a.close();
    },
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Runs fn on url, or on a scratch database (belay_bench_<label>_<pid>) that is dropped afterwards. */
export async function withScratchDb<T>(label: string, url: string | undefined, fn: (db: Db) => Promise<T>): Promise<T> {
  const name = `belay_bench_${label}_${process.pid}`;
  if (!url) {
    const admin = await openDb(`${SERVER}/postgres`);
    await admin.query(`CREATE DATABASE ${name}`);
    await admin.close();
  }
  const db = await openDb(url ?? `${SERVER}/${name}`);
  try {
    return await fn(db);
  } finally {
    await db.close();
    if (!url) {
      const admin = await openDb(`${SERVER}/postgres`);
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.close();
    }
  }
}
