// Figures for belay prisma check: each prediction on a table of N rows (default 1,000,000) against the time of
// the statement it predicts, run in a transaction that is rolled back (target: 1x or less); the per-row cast
// test when rows do fail; and the check of 50 pending files on an empty database (target: under 2 s).
// Usage: node --import tsx bench/prisma.ts [rows=1000000] [--runs 3]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Db } from '../src/db/connection.ts';
import { prismaCheck } from '../src/prisma/check.ts';
import { prismaChecksum } from '../src/prisma/migrations-dir.ts';
import { parseFile } from '../src/prisma/parse.ts';
import { CREATE_MIGRATIONS_TABLE_SQL } from '../src/prisma/prisma-sql.ts';
import { median, withScratchDb } from './template.ts';

const INIT = `CREATE TYPE "Role" AS ENUM ('USER', 'ADMIN', 'GUEST');
CREATE TABLE "Org" ("id" SERIAL NOT NULL, "name" TEXT NOT NULL, CONSTRAINT "Org_pkey" PRIMARY KEY ("id"));
CREATE TABLE "User" (
    "id" SERIAL NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "role" "Role" NOT NULL DEFAULT 'USER',
    "orgId" INTEGER,
    "age" INTEGER,
    "price" TEXT,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);`;

const SEED = (rows: number) => `
INSERT INTO "Org" ("name") SELECT 'org ' || g FROM generate_series(1, 1000) g;
INSERT INTO "User" ("email", "name", "role", "orgId", "age", "price")
SELECT 'user' || g || '@example.com', 'User number ' || g, (ARRAY['USER', 'ADMIN', 'USER']::"Role"[])[1 + g % 3],
       CASE WHEN g % 10 = 0 THEN NULL ELSE 1 + g % 1000 END, g % 97, (g % 5000)::text
  FROM generate_series(1, ${rows}) g;`;

/** One pending migration per figure: the statement(s), and what the figure compares. */
const CASES: Array<{ name: string; sql: string; note?: string }> = [
  { name: 'unique index (duplicates)', sql: 'CREATE UNIQUE INDEX "User_email_key" ON "User"("email");' },
  { name: 'SET NOT NULL (NULLs)', sql: 'ALTER TABLE "User" ALTER COLUMN "name" SET NOT NULL;' },
  {
    name: 'foreign key (orphans)',
    sql: 'ALTER TABLE "User" ADD CONSTRAINT "User_orgId_fkey" FOREIGN KEY ("orgId") REFERENCES "Org"("id") ON DELETE SET NULL ON UPDATE CASCADE;',
  },
  { name: 'CHECK (violations)', sql: 'ALTER TABLE "User" ADD CONSTRAINT "User_age_check" CHECK ("age" >= 0);' },
  { name: 'ALTER TYPE varchar(n) (too long)', sql: 'ALTER TABLE "User" ALTER COLUMN "name" SET DATA TYPE VARCHAR(64);' },
  { name: 'ALTER TYPE text to integer USING (casts)', sql: 'ALTER TABLE "User" ALTER COLUMN "price" SET DATA TYPE INTEGER USING "price"::integer;' },
  {
    name: 'enum rebuild (values outside the labels)',
    sql: `BEGIN;
CREATE TYPE "Role_new" AS ENUM ('USER', 'ADMIN');
ALTER TABLE "User" ALTER COLUMN "role" DROP DEFAULT;
ALTER TABLE "User" ALTER COLUMN "role" TYPE "Role_new" USING ("role"::text::"Role_new");
ALTER TYPE "Role" RENAME TO "Role_old";
ALTER TYPE "Role_new" RENAME TO "Role";
DROP TYPE "Role_old";
ALTER TABLE "User" ALTER COLUMN "role" SET DEFAULT 'USER';
COMMIT;`,
  },
  {
    name: 'ADD COLUMN, UPDATE, SET NOT NULL, unique index',
    sql: `ALTER TABLE "User" ADD COLUMN "slug" TEXT;
UPDATE "User" SET "slug" = lower("email");
ALTER TABLE "User" ALTER COLUMN "slug" SET NOT NULL;
CREATE UNIQUE INDEX "User_slug_key" ON "User"("slug");`,
  },
];

export interface PrismaFigure {
  work: string;
  /** The predictions' own queries (every probe between a savepoint and its release). */
  predictMs: number;
  /** The whole belay prisma check: snapshot, history, catalog, lock estimates and the predictions. */
  checkMs: number;
  statementMs: number;
  ratio: number;
  note?: string;
}

export interface PrismaBench {
  rows: number;
  runs: number;
  figures: PrismaFigure[];
  /** The per-row test of ALTER TYPE when 1 % of the rows fail: ms, the count it found. */
  failingCast: { checkMs: number; count: number; statementMs: number };
  /** prisma check over 50 pending files on an empty database. */
  fiftyFiles: { files: number; statements: number; checkMs: number };
}

function folder(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-bench-prisma-'));
  for (const [name, sql] of Object.entries(files)) {
    mkdirSync(path.join(dir, name));
    writeFileSync(path.join(dir, name, 'migration.sql'), sql);
  }
  return dir;
}

/** The same session, with the time of every query run inside a prediction's savepoint added up. */
function probeTimer(db: Db): { db: Db; take(): number } {
  let inProbe = false;
  let total = 0;
  const query: Db['query'] = async (sql, params) => {
    if (sql.startsWith('SAVEPOINT belay_prisma_probe')) inProbe = true;
    if (sql.startsWith('RELEASE SAVEPOINT belay_prisma_probe') || sql.startsWith('ROLLBACK TO SAVEPOINT belay_prisma_probe')) inProbe = false;
    const t0 = performance.now();
    try {
      return await db.query(sql, params);
    } finally {
      if (inProbe && !sql.startsWith('SAVEPOINT')) total += performance.now() - t0;
    }
  };
  return {
    db: { ...db, query } as Db,
    take: () => {
      const t = total;
      total = 0;
      return t;
    },
  };
}

/** The statement(s) as Prisma sends them, rolled back: the file's BEGIN/COMMIT become a savepoint-free block. */
async function timeStatement(db: Db, sql: string): Promise<number> {
  const body = sql.replace(/^BEGIN;$/m, '').replace(/^COMMIT;$/m, '');
  await db.query('BEGIN');
  const t0 = performance.now();
  try {
    await db.exec(body);
    return performance.now() - t0;
  } catch {
    return performance.now() - t0;
  } finally {
    await db.query('ROLLBACK');
  }
}

export async function benchPrisma(db: Db, rows: number, runs = 3): Promise<PrismaBench> {
  await db.exec(INIT);
  await db.exec(CREATE_MIGRATIONS_TABLE_SQL);
  await db.query(
    `INSERT INTO _prisma_migrations (id, checksum, migration_name, finished_at, applied_steps_count) VALUES ('init', $1, '20240101000000_init', now(), 1)`,
    [prismaChecksum(INIT)],
  );
  const t0 = performance.now();
  await db.exec(SEED(rows));
  await db.query('VACUUM ANALYZE "Org", "User"');
  process.stderr.write(`seeded ${rows} rows in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
  await db.query(`SELECT count(*) FROM "User"`);
  await parseFile('SELECT 1'); // the parser's WebAssembly module loads once per process, not per check
  const figures: PrismaFigure[] = [];
  const dirs: string[] = [];
  try {
    for (const c of CASES) {
      const dir = folder({ '20240101000000_init': INIT, '20240601000000_change': `${c.sql}\n` });
      dirs.push(dir);
      const checks: number[] = [];
      const predicts: number[] = [];
      const stmts: number[] = [];
      const timer = probeTimer(db);
      for (let i = 0; i < runs; i++) {
        timer.take();
        const r = await prismaCheck(timer.db, { dir });
        if (!r.ok) throw new Error(`${c.name}: the passing data was predicted to fail: ${r.findings.map((f) => f.message).join('; ')}`);
        checks.push(r.durationMs);
        predicts.push(timer.take());
        stmts.push(await timeStatement(db, c.sql));
      }
      const predictMs = median(predicts);
      const statementMs = median(stmts);
      figures.push({ work: c.name, predictMs, checkMs: median(checks), statementMs, ratio: predictMs / statementMs, note: c.note });
    }
    // 1 % of the prices are not numbers: the check counts them one by one (PL/pgSQL on PostgreSQL 15)
    await db.query('BEGIN');
    await db.query(`UPDATE "User" SET "price" = 'n/a' WHERE "id" % 100 = 0`);
    await db.query('COMMIT');
    const castDir = folder({ '20240101000000_init': INIT, '20240601000000_change': `${CASES[5]!.sql}\n` });
    dirs.push(castDir);
    const r = await prismaCheck(db, { dir: castDir });
    const failingCast = {
      checkMs: r.durationMs,
      count: r.findings.find((f) => f.code === 'PRISMA_CAST_FAILS')?.count ?? -1,
      statementMs: await timeStatement(db, CASES[5]!.sql),
    };
    return { rows, runs, figures, failingCast, fiftyFiles: await fiftyFiles(runs) };
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
}

/** 50 migration files of the shape Prisma writes (enums, tables, indexes, columns, foreign keys) on an empty database. */
async function fiftyFiles(runs: number): Promise<PrismaBench['fiftyFiles']> {
  const files: Record<string, string> = {};
  let statements = 0;
  for (let i = 1; i <= 50; i++) {
    const t = `Model${i}`;
    const prev = i > 1 ? `Model${i - 1}` : null;
    const sql = [
      `-- CreateEnum\nCREATE TYPE "Kind${i}" AS ENUM ('A', 'B', 'C');`,
      `-- CreateTable\nCREATE TABLE "${t}" (\n    "id" SERIAL NOT NULL,\n    "name" TEXT NOT NULL,\n    "kind" "Kind${i}" NOT NULL DEFAULT 'A',\n    "parentId" INTEGER,\n    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,\n\n    CONSTRAINT "${t}_pkey" PRIMARY KEY ("id")\n);`,
      `-- CreateIndex\nCREATE UNIQUE INDEX "${t}_name_key" ON "${t}"("name");`,
      `-- CreateIndex\nCREATE INDEX "${t}_createdAt_idx" ON "${t}"("createdAt");`,
      ...(prev
        ? [
            `-- AlterTable\nALTER TABLE "${prev}" ADD COLUMN     "note" TEXT,\nALTER COLUMN "name" SET DATA TYPE VARCHAR(191);`,
            `-- AlterTable\nALTER TABLE "${prev}" ALTER COLUMN "parentId" SET NOT NULL;`,
            `-- AddForeignKey\nALTER TABLE "${t}" ADD CONSTRAINT "${t}_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "${prev}"("id") ON DELETE SET NULL ON UPDATE CASCADE;`,
          ]
        : []),
    ];
    statements += sql.length;
    files[`2024${String(i).padStart(4, '0')}000000_step_${i}`] = `${sql.join('\n\n')}\n`;
  }
  const dir = folder(files);
  try {
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      await withScratchDb('prisma50', undefined, async (db) => {
        const r = await prismaCheck(db, { dir });
        if (!r.ok || r.status.pending.length !== 50) throw new Error(`50 files: ${r.findings.map((f) => f.message).join('; ')}`);
        times.push(r.durationMs);
      });
    }
    return { files: 50, statements, checkMs: median(times) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function markdown(b: PrismaBench): string {
  const f = (ms: number) => (ms / 1000).toFixed(3);
  return [
    `belay prisma check on a table of ${b.rows.toLocaleString('en-US')} rows (PostgreSQL server), median of ${b.runs}:`,
    '| prediction | the prediction (s) | the statement itself (s) | ratio (target ≤ 1) | whole check (s) | whole check / statement |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...b.figures.map(
      (x) => `| ${x.work} | ${f(x.predictMs)} | ${f(x.statementMs)} | ${x.ratio.toFixed(2)} | ${f(x.checkMs)} | ${(x.checkMs / x.statementMs).toFixed(2)} |`,
    ),
    '',
    `ALTER TYPE text to integer when 1 % of the rows fail: the check counts ${b.failingCast.count.toLocaleString('en-US')} failing rows one by one in ${f(b.failingCast.checkMs)} s (the statement stops at the first in ${f(b.failingCast.statementMs)} s)`,
    `prisma check of ${b.fiftyFiles.files} pending files (${b.fiftyFiles.statements} statements) on an empty database: ${f(b.fiftyFiles.checkMs)} s (target < 2 s)`,
  ].join('\n');
}

/** For npm run bench (bench/run.ts). */
export async function report(rows: number, runs = 3): Promise<string> {
  return withScratchDb('prisma', undefined, async (db) => markdown(await benchPrisma(db, rows, runs)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const argv = process.argv.slice(2);
  const at = argv.indexOf('--runs');
  const runs = at >= 0 ? Number(argv[at + 1]) : 3;
  const rows = Number(argv.find((a, i) => /^\d/.test(a) && argv[i - 1] !== '--runs') ?? 1_000_000);
  console.log(await report(rows, runs));
}
