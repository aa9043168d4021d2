// Figure: a verified backup (copy + row count + checksum of source and copy, one snapshot, no file) against
// `CREATE TABLE … AS TABLE "EventType"` on the same table. Target: backup time <= 1.25x CTAS (0.8x its speed).
// The gzip file export is timed separately, and two other ways to verify are measured for comparison.
// Usage: node --import tsx bench/backup.ts [rows=1000000] [--db postgres://…/db] [--no-generate]
// Without --db it creates (and drops) a database on BELAY_BENCH_SERVER (default the local server).
import { withScratchDb } from './template.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { generate } from '../examples/event-type-owner/generate.ts';
import { copySqlName, dropBackup, takeBackup } from '../src/backup/backup.ts';
import { exportFiles } from '../src/backup/files.ts';
import type { Db } from '../src/db/connection.ts';
import { pinnedSettingsSql } from '../src/db/sql.ts';

export interface BackupBench {
  rows: number;
  runs: number;
  /** Medians, ms. */
  ctasMs: number;
  backupMs: number;
  /** backupMs / ctasMs: the target is 1.25 or less. */
  ratio: number;
  /** gzip (level 1) COPY export of the copy, with sha256 and manifest, ms. */
  exportMs: number;
  exportBytes: number;
  /** One checksum scan of the source alone, ms (what verification costs per pass). */
  checksumMs: number;
  /** Alternative: CTAS, then both checksums in one UNION ALL statement (parallel append). */
  unionMs: number;
  copyBytes: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** Generates `rows` event types into db (unless generate: false), then times CTAS, backup and export, median of `runs`. */
export async function benchBackup(db: Db, rows: number, opts: { generate?: boolean; runs?: number } = {}): Promise<BackupBench> {
  const runs = opts.runs ?? 3;
  if (opts.generate !== false) await generate(db, { rows });
  await db.query('VACUUM ANALYZE "EventType"');
  await db.query('SELECT count(*) FROM "EventType"'); // warm the cache alike for every side
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-bench-backup-'));
  const ctas: number[] = [];
  const backup: number[] = [];
  const exp: number[] = [];
  const chk: number[] = [];
  const union: number[] = [];
  let exportBytes = 0;
  let copyBytes = 0;
  try {
    for (let i = 0; i < runs; i++) {
      ctas.push(await timed(() => db.query('CREATE TABLE bench_ctas AS TABLE "EventType"')));
      await db.query('DROP TABLE bench_ctas');

      let rec: Awaited<ReturnType<typeof takeBackup>>[number] | undefined;
      backup.push(await timed(async () => {
        [rec] = await takeBackup(db, null, ['EventType']);
      }));
      copyBytes = rec!.sizeBytes ?? 0;
      exp.push(await timed(async () => {
        const r = await exportFiles(db, dir, `bench-${i}`, [{
          backupId: rec!.id, table: 'EventType', copySql: copySqlName(rec!), copyName: rec!.copyTable, columns: rec!.columns,
          keyColumns: rec!.keyColumns, rows: rec!.rows ?? 0, checksum: rec!.checksum ?? '0',
        }], { runId: null, migrationId: null });
        exportBytes = r.manifest.tables[0]!.bytes;
      }));
      await dropBackup(db, rec!.id);

      chk.push(await timed(async () => {
        await db.query('BEGIN');
        await db.exec(pinnedSettingsSql());
        await db.query('SELECT count(*), sum(hashtextextended(t::text, 0)) FROM "EventType" t');
        await db.query('COMMIT');
      }));

      union.push(await timed(async () => {
        await db.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
        await db.exec(pinnedSettingsSql());
        await db.query('CREATE TABLE bench_union AS TABLE "EventType"');
        await db.query(`SELECT 's' AS side, count(*), sum(hashtextextended(t::text, 0)) FROM "EventType" t
                        UNION ALL SELECT 'c', count(*), sum(hashtextextended(c::text, 0)) FROM bench_union c`);
        await db.query('COMMIT');
      }));
      await db.query('DROP TABLE bench_union');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const ctasMs = median(ctas);
  const backupMs = median(backup);
  return {
    rows, runs, ctasMs, backupMs, ratio: backupMs / ctasMs, exportMs: median(exp), exportBytes, checksumMs: median(chk), unionMs: median(union), copyBytes,
  };
}

export function format(b: BackupBench): string {
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  const rate = (ms: number) => `${Math.round(b.rows / (ms / 1000)).toLocaleString('en-US')} rows/s`;
  return [
    `backup of "EventType", ${b.rows.toLocaleString('en-US')} rows (${(b.copyBytes / 2 ** 20).toFixed(0)} MB copy), median of ${b.runs}:`,
    '| work | time | rows/s | vs CTAS |',
    '| --- | ---: | ---: | ---: |',
    `| CREATE TABLE … AS TABLE "EventType" | ${s(b.ctasMs)} | ${rate(b.ctasMs)} | 1.00 |`,
    `| belay backup (copy + count + checksum of source and copy, one snapshot) | ${s(b.backupMs)} | ${rate(b.backupMs)} | ${b.ratio.toFixed(2)} |`,
    `| alternative: CTAS + both checksums in one UNION ALL | ${s(b.unionMs)} | ${rate(b.unionMs)} | ${(b.unionMs / b.ctasMs).toFixed(2)} |`,
    `| one checksum scan of the source | ${s(b.checksumMs)} | ${rate(b.checksumMs)} | ${(b.checksumMs / b.ctasMs).toFixed(2)} |`,
    `| gzip COPY export of the copy (level 1, sha256, manifest) | ${s(b.exportMs)} | ${rate(b.exportMs)} | ${(b.exportMs / b.ctasMs).toFixed(2)} |`,
    '',
    `ratio backup / CTAS: ${b.ratio.toFixed(2)}x (target 1.25x or less, i.e. 0.8x its speed); export file ${(b.exportBytes / 2 ** 20).toFixed(1)} MB`,
  ].join('\n');
}

/** For npm run bench (bench/run.ts): a fresh server database, the figure as Markdown. */
export async function report(rows: number): Promise<string> {
  return withScratchDb('backup', undefined, (db) => benchBackup(db, rows).then(format));
}

async function main(argv: string[]): Promise<void> {
  const dbAt = argv.indexOf('--db');
  const url = dbAt >= 0 ? argv[dbAt + 1] : undefined;
  const rows = Number(argv.find((a, i) => /^\d/.test(a) && argv[i - 1] !== '--db') ?? 1_000_000);
  const gen = !argv.includes('--no-generate');
  console.log(await withScratchDb('backup', url, (db) => benchBackup(db, rows, { generate: gen }).then(format)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
