// belay apply of the flagship against the limit a user compares it with: the whole contract written
// set-based (reference.sql). Side by side in one run, each on its own copy of the same generated data:
// the reference, belay apply as the command line runs it (in a child process: its peak RSS), the
// breakdown of that run from its own events and state (decision, batches, catch-up, pre-flight,
// backup, verification, the longest batch), and naive peers. Every contender that writes the whole
// table must leave exactly the reference's "EventType" (id, "userId"), or the bench fails.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Db } from '../src/db/connection.ts';
import { loadMigration } from '../src/spec/load.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';
import { copyOf, flagshipTemplate, median } from './template.ts';
import { type ApplyRun, readApplyRun } from './apply-run.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REFERENCE_SQL = path.join(HERE, 'reference.sql');

/** Targets of issue 16, as ratios to the reference and absolute limits. */
export const TARGETS = { step: 0.7, command: 1.2, batchMs: 200, rssMb: 200, rssMb10M: 250 } as const;

export interface Figure {
  work: string;
  seconds: number;
  /** Time over the reference's. */
  ratio: number;
  target?: string;
  note?: string;
}

export interface ApplyBench {
  rows: number;
  changed: number;
  reference: number;
  belay: ApplyRun;
  figures: Figure[];
}

/** The final "EventType" as the contract defines it: (id, "userId") of every row, in id order. */
const RESULT_SQL = `SELECT md5(string_agg(id::text || ':' || coalesce("userId"::text, '-'), ',' ORDER BY id)) AS sum,
       count(*) FILTER (WHERE "userId" IS NOT NULL)::int AS owned
  FROM "EventType"`;

async function resultOf(db: Db): Promise<{ sum: string; owned: number }> {
  return (await db.query<{ sum: string; owned: number }>(RESULT_SQL)).rows[0]!;
}

async function decideRule(): Promise<string> {
  const m = await loadMigration(FLAGSHIP_DIR);
  const s = m.spec.steps[0]!;
  if (s.kind !== 'batched' || !s.decide) throw new Error('the flagship step has no set-based rule (decide)');
  return s.decide;
}

/** On a fresh copy: fn's time in seconds (or the time it returns), and the table it leaves. */
async function onCopy(
  template: string,
  label: string,
  fn: (db: Db, url: string) => Promise<number | undefined>,
): Promise<{ seconds: number; result: { sum: string; owned: number } }> {
  const c = await copyOf(template, label);
  try {
    const t0 = performance.now();
    const own = await fn(c.db, c.url);
    const seconds = typeof own === 'number' ? own : (performance.now() - t0) / 1000;
    return { seconds, result: await resultOf(c.db) };
  } finally {
    await c.drop();
  }
}

function spawnApply(
  url: string,
  profile: boolean,
  flags: string[] = [],
): Promise<{ lines: Array<Record<string, unknown>>; spawnedAt: number; exitedAt: number }> {
  const spawnedAt = Date.now();
  return new Promise((resolve, reject) => {
    const preload = profile ? ['--import', path.join(HERE, 'statement-times.ts')] : [];
    execFile(
      process.execPath,
      ['--import', 'tsx', ...preload, path.join(HERE, 'apply-child.ts'), url, ...flags],
      { encoding: 'utf8', maxBuffer: 1 << 30 },
      (err, stdout, stderr) => {
        const exitedAt = Date.now();
        const lines = stdout
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as Record<string, unknown>);
        if (err && !lines.some((l) => l.type === 'bench-child')) reject(new Error(`belay apply crashed: ${err.message}\n${stderr}`));
        else resolve({ lines, spawnedAt, exitedAt });
      },
    );
  });
}

export interface WorkersFigure {
  workers: number;
  run: ApplyRun;
}

/**
 * belay apply --workers N for each N, on fresh copies of the same data, against the reference: the whole
 * command, the batched step and its batches phase, and the longest a committed batch held its locks.
 * Each run must leave exactly the reference's "EventType".
 */
export async function benchWorkers(rows: number, runs: number, counts: readonly number[]): Promise<{ reference: number; figures: WorkersFigure[] }> {
  const template = await flagshipTemplate(rows);
  const reference = await readFile(REFERENCE_SQL, 'utf8');
  const refRuns = [];
  for (let i = 0; i < runs; i++) refRuns.push(await onCopy(template, 'reference', async (db) => void (await db.exec(reference))));
  const want = refRuns[0]!.result;
  const figures: WorkersFigure[] = [];
  for (const n of counts) {
    const applies: ApplyRun[] = [];
    for (let i = 0; i < runs; i++) {
      let run: ApplyRun | undefined;
      const r = await onCopy(template, `workers${n}`, async (db, url) => {
        run = await readApplyRun(db, await spawnApply(url, false, ['--workers', String(n)]));
        return run.commandMs / 1000;
      });
      if (r.result.sum !== want.sum)
        throw new Error(`belay apply --workers ${n} left a different "EventType" than the reference (${r.result.sum}, want ${want.sum})`);
      applies.push(run!);
    }
    applies.sort((a, b) => a.commandMs - b.commandMs);
    figures.push({ workers: n, run: applies[Math.floor(applies.length / 2)]! });
  }
  return { reference: median(refRuns.map((r) => r.seconds)), figures };
}

/** profile: belay apply's process also times each statement it sends (statement-times.ts). */
export async function benchApply(rows: number, runs = 1, opts: { profile?: boolean; skipPeers?: boolean } = {}): Promise<ApplyBench> {
  const template = await flagshipTemplate(rows);
  const reference = await readFile(REFERENCE_SQL, 'utf8');
  const rule = await decideRule();
  const must = (work: string, got: { sum: string; owned: number }, want: { sum: string; owned: number }) => {
    if (got.sum !== want.sum) {
      throw new Error(
        `${work} left a different "EventType" than the reference (${got.owned} rows owned, checksum ${got.sum}; the reference: ${want.owned}, ${want.sum})`,
      );
    }
  };

  // the limit: the whole contract, set-based, in one transaction
  const refRuns = [];
  for (let i = 0; i < runs; i++)
    refRuns.push(
      await onCopy(template, 'reference', async (db) => {
        await db.exec(reference);
        return undefined;
      }),
    );
  const ref = refRuns[0]!.result;
  for (const r of refRuns) must('the reference', r.result, ref);
  const refSec = median(refRuns.map((r) => r.seconds));

  // belay apply, the whole command in its own process; its figures from its events and its state
  const applies: ApplyRun[] = [];
  for (let i = 0; i < runs; i++) {
    let run: ApplyRun | undefined;
    const r = await onCopy(template, 'belay', async (db, url) => {
      run = await readApplyRun(db, await spawnApply(url, !!opts.profile));
      return run.commandMs / 1000;
    });
    must('belay apply', r.result, ref);
    applies.push(run!);
  }
  applies.sort((a, b) => a.commandMs - b.commandMs);
  const belay = applies[Math.floor(applies.length / 2)]!;

  const figures: Figure[] = [];
  const add = (work: string, seconds: number, extra: Partial<Figure> = {}) => figures.push({ work, seconds, ratio: seconds / refSec, ...extra });
  add('reference: the whole contract set-based (bench/reference.sql: temp tables, one UPDATE … FROM, no batches, no undo)', refSec);
  const ms = (x: number) => x / 1000;
  add('belay apply, whole command (process start to exit)', ms(belay.commandMs), { target: `≤ ${TARGETS.command}×` });
  add('  start-up: node, loading the migration, planning the step, the run record', ms(belay.startupMs));
  add("  the decision: the rule once, set-based, into belay's table (with before-images)", ms(belay.decisionMs), {
    note: 'includes counting the touched tables',
  });
  add("  pre-flight checks, in the decision's snapshot", ms(belay.checksMs));
  add('  backup: verified in-database copies of the 3 tables', ms(belay.backupMs));
  add('  temporary indexes, schema snapshot, baseline checksums', ms(belay.setupMs));
  add(`  batches: ${belay.batches}, from step start to the last COMMIT (the fence first)`, ms(belay.batchesMs));
  add(`  catch-up: ${belay.catchUpRounds} round(s) of the rule again`, ms(belay.catchUpMs));
  add('  verification after the last batch, end of the run', ms(belay.verifyMs));
  add('  exit', ms(belay.exitMs));
  add("belay's batched step alone: decision + batches + catch-up", ms(belay.stepMs), { target: `≤ ${TARGETS.step}×` });

  // naive peers: what people write instead (--skip-peers: the 10,000,000-row run measures belay alone)
  if (opts.skipPeers) return { rows, changed: belay.changed, reference: refSec, belay, figures };
  const one = await onCopy(template, 'one_update', (db) =>
    db.query(`UPDATE "EventType" t SET "userId" = p."userId" FROM (${rule}) p WHERE t.id = p.id`).then(() => undefined),
  );
  must('the one-statement UPDATE', one.result, ref);
  add("one UPDATE … FROM of the flagship's decide rule (locks every row at once)", one.seconds);

  const keyset = await onCopy(template, 'keyset', async (db) => {
    await decideInto(db, rule);
    for (let last = -2147483648; ; ) {
      const b = (
        await db.query<{ hi: number | null }>(`SELECT max(id)::int AS hi FROM (SELECT id FROM bench_decided WHERE id > $1 ORDER BY id LIMIT 10000) s`, [last])
      ).rows[0]!;
      if (b.hi === null) break;
      await db.query('BEGIN');
      await db.query(`UPDATE "EventType" t SET "userId" = d."userId" FROM bench_decided d WHERE t.id = d.id AND d.id > $1 AND d.id <= $2`, [last, b.hi]);
      await db.query('COMMIT');
      last = b.hi;
    }
  });
  must('the keyset batches', keyset.result, ref);
  add('rule into a table, then keyset batches of 10,000, one transaction each, no undo, no checks', keyset.seconds);

  // sampled and extrapolated on one copy: OFFSET pages (they slow down as they go) and one UPDATE per row
  const sampled = await copyOf(template, 'sampled');
  try {
    const t0 = performance.now();
    const n = await decideInto(sampled.db, rule);
    const decideSec = (performance.now() - t0) / 1000;
    const pages = Math.ceil(n / 1000);
    const sample = Math.min(30, pages);
    const perPage: number[] = [];
    for (const start of [0, Math.max(0, pages - sample)]) {
      const t1 = performance.now();
      for (let i = start; i < start + sample; i++) {
        await sampled.db.query(
          `UPDATE "EventType" t SET "userId" = d."userId"
          FROM (SELECT * FROM bench_decided ORDER BY id OFFSET $1 LIMIT 1000) d WHERE t.id = d.id`,
          [i * 1000],
        );
      }
      perPage.push((performance.now() - t1) / 1000 / sample);
    }
    add('rule into a table, then OFFSET pages of 1,000, autocommit (hand-written scripts)', decideSec + ((perPage[0]! + perPage[1]!) / 2) * pages, {
      note: `extrapolated from ${sample * 2} pages`,
    });
    const perRow = Math.min(3000, n);
    const ids = await sampled.db.query<{ id: number; userId: number }>(`SELECT id, "userId" FROM bench_decided ORDER BY hashint4(id) LIMIT $1`, [perRow]);
    const t2 = performance.now();
    for (const r of ids.rows) await sampled.db.query(`UPDATE "EventType" SET "userId" = $2 WHERE id = $1`, [r.id, r.userId]);
    add('rule read into the application, then one UPDATE per row, autocommit (ORM scripts)', decideSec + ((performance.now() - t2) / 1000 / perRow) * n, {
      note: `extrapolated from ${perRow} rows`,
    });
  } finally {
    await sampled.drop();
  }

  return { rows, changed: belay.changed, reference: refSec, belay, figures };
}

/** The flagship's rule, once, into a plain keyed table (the naive peers' decision). Returns its rows. */
async function decideInto(db: Db, rule: string): Promise<number> {
  await db.query(`CREATE UNLOGGED TABLE bench_decided AS SELECT id, "userId" FROM (${rule}) p`);
  await db.query(`ALTER TABLE bench_decided ADD PRIMARY KEY (id)`);
  return (await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM bench_decided`)).rows[0]!.n;
}
