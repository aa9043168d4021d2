// belay apply against the physical limit (one set-based UPDATE of the same projection) and naive peers.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../src/db/connection.ts';
import { loadMigration } from '../src/spec/load.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';
import { copyOf, flagshipTemplate, median } from './template.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export interface Figure {
  work: string;
  seconds: number;
  rowsPerSec: number;
  vsUpdate: number;
  note?: string;
}

async function projection(): Promise<string> {
  const m = await loadMigration(FLAGSHIP_DIR);
  const s = m.spec.steps[0]!;
  if (s.kind !== 'batched') throw new Error('flagship step is not batched');
  return s.decide ?? s.projection!;
}

async function keyRange(db: Db): Promise<[number, number]> {
  const r = await db.query<{ lo: number; hi: number }>(`SELECT min(id)::int AS lo, max(id)::int AS hi FROM "EventType"`);
  return [r.rows[0]!.lo, r.rows[0]!.hi];
}

async function timed(template: string, label: string, fn: (db: Db, url: string) => Promise<number | undefined>): Promise<number> {
  const c = await copyOf(template, label);
  try {
    const t0 = performance.now();
    const override = await fn(c.db, c.url);
    return typeof override === 'number' ? override : (performance.now() - t0) / 1000;
  } finally {
    await c.drop();
  }
}

export async function benchApply(rows: number, runs = 3): Promise<{ figures: Figure[]; peakRssMb: number; changed: number }> {
  const template = await flagshipTemplate(rows);
  const proj = await projection();
  const updateSql = `UPDATE "EventType" t SET "userId" = p."userId" FROM (${proj}) p WHERE t.id = p.id AND t."userId" IS DISTINCT FROM p."userId"`;
  const figures: Figure[] = [];
  const add = (work: string, seconds: number, note?: string) => figures.push({ work, seconds, rowsPerSec: rows / seconds, vsUpdate: 0, note });

  const single: number[] = [];
  for (let i = 0; i < runs; i++) {
    single.push(await timed(template, 'single', async (db) => {
      const [lo, hi] = await keyRange(db);
      await db.query(updateSql, [lo, hi]);
    }));
  }
  add('one set-based UPDATE of the same projection (locks every row at once)', median(single));

  let peak = 0;
  let changed = 0;
  for (const mode of ['verify', 'no-verify'] as const) {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      times.push(await timed(template, 'belay', async (_db, url) => {
        const out = execFileSync(process.execPath, ['--import', 'tsx', path.join(HERE, 'apply-child.ts'), url, '10000', mode], { encoding: 'utf8' });
        const r = JSON.parse(out.trim().split('\n').pop()!) as { ms: number; maxRssMb: number; changed: number; status: string; error?: string };
        if (r.status !== 'completed') throw new Error(`belay apply ${r.status}: ${r.error}`);
        peak = Math.max(peak, r.maxRssMb);
        changed = r.changed;
        return r.ms / 1000;
      }));
    }
    add(mode === 'verify' ? 'belay apply, 10k batches, undo log + in-batch verification' : 'belay apply, 10k batches, undo log, no verification', median(times));
  }

  const keyset: number[] = [];
  for (let i = 0; i < runs; i++) {
    keyset.push(await timed(template, 'keyset', async (db) => {
      let last: number | null = null;
      for (;;) {
        const b: { rows: Array<{ lo: number | null; hi: number | null }> } = await db.query<{ lo: number | null; hi: number | null }>(
          `SELECT min(id)::int AS lo, max(id)::int AS hi FROM (SELECT id FROM "EventType" WHERE id > $1 ORDER BY id LIMIT 10000) s`, [last ?? -1]);
        const { lo, hi } = b.rows[0]!;
        if (lo === null || hi === null) break;
        await db.query('BEGIN');
        await db.query(updateSql, [lo, hi]);
        await db.query('COMMIT');
        last = hi;
      }
    }));
  }
  add('keyset batches of 10,000, one transaction each, no safety', median(keyset));

  // OFFSET pagination: sampled at the start and the end of the table, extrapolated linearly
  const batches = Math.ceil(rows / 1000);
  const sample = Math.min(30, batches);
  const offsetSec = await timed(template, 'offset', async (db) => {
    const perBatch: number[] = [];
    for (const start of [0, Math.max(0, batches - sample)]) {
      const t0 = performance.now();
      for (let i = start; i < start + sample; i++) {
        const r = await db.query<{ lo: number | null; hi: number | null }>(
          `SELECT min(id)::int AS lo, max(id)::int AS hi FROM (SELECT id FROM "EventType" ORDER BY id OFFSET $1 LIMIT 1000) s`, [i * 1000]);
        if (r.rows[0]!.lo === null) break;
        await db.query(updateSql, [r.rows[0]!.lo, r.rows[0]!.hi]);
      }
      perBatch.push((performance.now() - t0) / 1000 / sample);
    }
    return ((perBatch[0]! + perBatch[1]!) / 2) * batches;
  });
  add('OFFSET pagination, batches of 1,000 (hand-written scripts)', offsetSec, `extrapolated from ${sample * 2} sampled batches`);

  // one UPDATE per row, autocommit, as ORM scripts do: sampled and extrapolated
  const perRowSample = Math.min(3000, rows);
  const perRowSec = await timed(template, 'perrow', async (db) => {
    const ids = await db.query<{ id: number }>(`SELECT id FROM "EventType" ORDER BY hashint4(id) LIMIT $1`, [perRowSample]);
    const t0 = performance.now();
    for (const { id } of ids.rows) await db.query(updateSql, [id, id]);
    return ((performance.now() - t0) / 1000 / perRowSample) * rows;
  });
  add('one UPDATE per row, autocommit (ORM scripts)', perRowSec, `extrapolated from ${perRowSample} rows`);

  const limit = figures[0]!.seconds;
  for (const f of figures) f.vsUpdate = limit / f.seconds;
  return { figures, peakRssMb: peak, changed };
}
