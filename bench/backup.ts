// Figure: a verified backup (copy + row count + checksum of source and copy, one snapshot, no file) against
// `CREATE TABLE … AS TABLE "EventType"` on the same table. Target: backup time <= 1.25x CTAS (0.8x its speed).
// Both run on the same session (same settings: jit off, as every server session of belay), alternating in
// each run. The gzip file export is timed separately; the backup without its second session (the source
// checksummed after the copy, as on PGlite) and one checksum scan are measured for comparison.
// Usage: node --import tsx bench/backup.ts [rows=1000000] [--db postgres://…/db] [--no-generate]
// Without --db it creates (and drops) a database on BELAY_BENCH_SERVER (default the local server).
import { copyOf, flagshipTemplate, median, withScratchDb } from './template.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { generate } from '../examples/event-type-owner/generate.ts';
import { copySqlName, dropBackup, takeBackup } from '../src/backup/backup.ts';
import { exportFiles } from '../src/backup/files.ts';
import type { Db } from '../src/db/connection.ts';
import { checksumTable } from '../src/db/checksum.ts';

export interface BackupBench {
  rows: number;
  runs: number;
  /** Medians, ms. */
  ctasMs: number;
  backupMs: number;
  /** backupMs / ctasMs: the target is 1.25 or less. */
  ratio: number;
  /** Median of each run's backup / CTAS (the two measured back to back, so less swayed by load on the machine). */
  pairedRatio: number;
  /** gzip (level 1) COPY export of the copy, with sha256 and manifest, ms. */
  exportMs: number;
  exportBytes: number;
  /** One checksum scan of the source alone (checksumTable), ms: what verification costs per pass. */
  checksumMs: number;
  /** The backup with concurrent: false: the source is checksummed by the backup's own session, after the copy. */
  sequentialMs: number;
  /**
   * The floor of any copy verified by reading it back: CREATE TABLE … AS, then one checksum of the copy with
   * parallel workers, and nothing else (no source read, no bookkeeping), ms. The copy cannot be read back
   * before it is written, so no verified backup can take less than this.
   */
  floorMs: number;
  copyBytes: number;
}

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
  const sequential: number[] = [];
  const floor: number[] = [];
  let exportBytes = 0;
  let copyBytes = 0;
  try {
    for (let i = 0; i < runs; i++) {
      const plain = async () => {
        ctas.push(await timed(() => db.query('CREATE TABLE bench_ctas AS TABLE "EventType"')));
        await db.query('DROP TABLE bench_ctas');
      };
      let rec: Awaited<ReturnType<typeof takeBackup>>[number] | undefined;
      const belay = async () => {
        backup.push(
          await timed(async () => {
            [rec] = await takeBackup(db, null, ['EventType']);
          }),
        );
      };
      // whichever goes first finds the other's dropped files being unlinked: take turns
      if (i % 2 === 0) {
        await plain();
        await belay();
      } else {
        await belay();
        await plain();
      }
      copyBytes = rec!.sizeBytes ?? 0;
      exp.push(
        await timed(async () => {
          const r = await exportFiles(
            db,
            dir,
            `bench-${i}`,
            [
              {
                backupId: rec!.id,
                table: 'EventType',
                copySql: copySqlName(rec!),
                copyName: rec!.copyTable,
                columns: rec!.columns,
                keyColumns: rec!.keyColumns,
                rows: rec!.rows ?? 0,
                checksum: rec!.checksum ?? '0',
                checksumMethod: rec!.checksumMethod,
              },
            ],
            { runId: null, migrationId: null },
          );
          exportBytes = r.manifest.tables[0]!.bytes;
        }),
      );
      await dropBackup(db, rec!.id);

      chk.push(await timed(() => checksumTable(db, '"EventType"')));

      sequential.push(
        await timed(async () => {
          [rec] = await takeBackup(db, null, ['EventType'], { concurrent: false });
        }),
      );
      await dropBackup(db, rec!.id);

      floor.push(
        await timed(async () => {
          await db.query('CREATE TABLE bench_floor AS TABLE "EventType"');
          await checksumTable(db, 'bench_floor');
        }),
      );
      await db.query('DROP TABLE bench_floor');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const ctasMs = median(ctas);
  const backupMs = median(backup);
  return {
    rows,
    runs,
    ctasMs,
    backupMs,
    ratio: backupMs / ctasMs,
    pairedRatio: median(backup.map((b, i) => b / ctas[i]!)),
    exportMs: median(exp),
    exportBytes,
    checksumMs: median(chk),
    sequentialMs: median(sequential),
    floorMs: median(floor),
    copyBytes,
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
    `| belay backup (copy + count + checksum of source and copy, one snapshot; source read by a second session) | ${s(b.backupMs)} | ${rate(b.backupMs)} | ${b.ratio.toFixed(2)} |`,
    `| the same backup in one session (source checksummed after the copy, as on PGlite) | ${s(b.sequentialMs)} | ${rate(b.sequentialMs)} | ${(b.sequentialMs / b.ctasMs).toFixed(2)} |`,
    `| floor: CREATE TABLE … AS, then one checksum of the copy (parallel), nothing else | ${s(b.floorMs)} | ${rate(b.floorMs)} | ${(b.floorMs / b.ctasMs).toFixed(2)} |`,
    `| one checksum scan of the source | ${s(b.checksumMs)} | ${rate(b.checksumMs)} | ${(b.checksumMs / b.ctasMs).toFixed(2)} |`,
    `| gzip COPY export of the copy (level 1, sha256, manifest) | ${s(b.exportMs)} | ${rate(b.exportMs)} | ${(b.exportMs / b.ctasMs).toFixed(2)} |`,
    '',
    `ratio backup / CTAS: ${b.ratio.toFixed(2)}x (median of each run's ratio ${b.pairedRatio.toFixed(2)}x; target 1.25x or less, i.e. 0.8x its speed); the floor of any copy verified by reading it back: ${(b.floorMs / b.ctasMs).toFixed(2)}x, belay at ${(b.backupMs / b.floorMs).toFixed(2)}x that floor; export file ${(b.exportBytes / 2 ** 20).toFixed(1)} MB`,
  ].join('\n');
}

/** For npm run bench (bench/run.ts): a fresh copy of the flagship template, the figure as Markdown. */
export async function report(rows: number): Promise<string> {
  const c = await copyOf(await flagshipTemplate(rows), 'backup');
  try {
    return format(await benchBackup(c.db, rows, { generate: false }));
  } finally {
    await c.drop();
  }
}

async function main(argv: string[]): Promise<void> {
  const dbAt = argv.indexOf('--db');
  const url = dbAt >= 0 ? argv[dbAt + 1] : undefined;
  const rows = Number(argv.find((a, i) => /^\d/.test(a) && argv[i - 1] !== '--db') ?? 1_000_000);
  const gen = !argv.includes('--no-generate');
  console.log(await withScratchDb('backup', url, (db) => benchBackup(db, rows, { generate: gen }).then(format)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
