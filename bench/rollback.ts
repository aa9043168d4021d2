// Rollback against apply on the flagship: both move the same rows (the ones the migration changes), so
// the ratio of their throughputs is apply time / rollback time. Target: rollback >= 0.8x apply.
import { generate } from '../examples/event-type-owner/generate.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';
import { checksumTable } from '../src/db/checksum.ts';
import { openDb } from '../src/db/connection.ts';
import { apply } from '../src/execute/apply.ts';
import { rollback } from '../src/rollback/rollback.ts';
import { loadMigration } from '../src/spec/load.ts';
import { copyOf, flagshipTemplate } from './template.ts';

export interface RollbackFigures {
  rows: number;
  changed: number;
  applySeconds: number;
  rollbackSeconds: number;
  /** Rows changed (apply) or restored (rollback) per second. */
  applyRowsPerSec: number;
  rollbackRowsPerSec: number;
  /** rollback throughput / apply throughput (>= 0.8 is the target). */
  ratio: number;
  /** The table's checksum after rollback equals the one before apply. */
  exact: boolean;
}

/** Applies the flagship on the database at url (generating `rows` event types if it has none), then rolls it back. */
export async function benchRollback(url: string, rows: number): Promise<RollbackFigures> {
  const db = await openDb(url);
  try {
    const has = await db.query<{ ok: boolean }>(`SELECT to_regclass('"EventType"') IS NOT NULL AS ok`);
    if (!has.rows[0]!.ok) await generate(db, { rows, seed: 1 });
    const before = await checksumTable(db, '"EventType"');
    const m = await loadMigration(FLAGSHIP_DIR);
    let t0 = performance.now();
    const a = await apply(db, m, { again: true });
    const applySeconds = (performance.now() - t0) / 1000;
    if (a.status !== 'completed') throw new Error(`apply ended ${a.status}: ${a.error?.message}`);
    const changed = a.steps.reduce((n, s) => n + s.rowsChanged, 0);
    t0 = performance.now();
    const r = await rollback(db, a.runId);
    const rollbackSeconds = (performance.now() - t0) / 1000;
    const after = await checksumTable(db, '"EventType"');
    const applyRowsPerSec = changed / applySeconds;
    const rollbackRowsPerSec = r.restored / rollbackSeconds;
    return {
      rows,
      changed,
      applySeconds,
      rollbackSeconds,
      applyRowsPerSec,
      rollbackRowsPerSec,
      ratio: rollbackRowsPerSec / applyRowsPerSec,
      exact: after.checksum === before.checksum && after.rows === before.rows,
    };
  } finally {
    await db.close();
  }
}

/** npm run bench: on a fresh copy of the flagship template. */
export async function report(rows: number): Promise<string> {
  const c = await copyOf(await flagshipTemplate(rows), 'rollback');
  try {
    await c.db.close();
    const f = await benchRollback(c.url, rows);
    const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
    return [
      `| work | time (s) | rows/s |`,
      `| --- | ---: | ---: |`,
      `| apply (${fmt(f.changed)} rows changed of ${fmt(f.rows)}) | ${f.applySeconds.toFixed(2)} | ${fmt(f.applyRowsPerSec)} |`,
      `| rollback (same rows restored) | ${f.rollbackSeconds.toFixed(2)} | ${fmt(f.rollbackRowsPerSec)} |`,
      ``,
      `rollback / apply throughput: ${f.ratio.toFixed(2)}x (target >= 0.8x); checksum after rollback equals before: ${f.exact}`,
      ``,
    ].join('\n');
  } finally {
    await c.drop();
  }
}
