// `belay rollback <run> --sql`: the undo log as one standalone SQL file that psql alone can run.
// Same order and conflict rule as rollback(): steps newest first, batches newest first, one transaction
// per undo batch; a row changed since the migration is skipped and listed. Re-running it changes nothing.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { StateError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import { MIGRATION_LOCK_CLASS } from '../state/lock.ts';
import { ensureState } from '../state/schema.ts';
import { getRun, getSteps } from '../state/runs.ts';
import { irreversibleApplied } from './rollback.ts';
import { scriptBatchSql, scriptFooterSql, scriptHeaderSql, scriptSqlStepSql, scriptStepDoneSql, UNDO_BATCHES_SQL } from './rollback-sql.ts';

export interface RollbackScriptOptions {
  /** Leave SQL steps without a reverse in place instead of refusing. */
  skipIrreversible?: boolean;
  /** Receives the script piece by piece (a file stream); without it the text is returned. */
  write?: (chunk: string) => void | Promise<void>;
}

export interface RollbackScriptResult {
  runId: number;
  batches: number;
  rows: number;
  bytes: number;
  /** Irreversible steps left out (only with skipIrreversible). */
  skippedIrreversible: string[];
  /** The whole script when no write callback was given. */
  text?: string;
}

const UNDO_IMAGES_SQL = `SELECT before::text AS before, after::text AS after FROM belay.undo WHERE run_id = $1 AND step_no = $2 AND batch_no = $3`;

export async function rollbackScript(db: Db, runId: number, opts: RollbackScriptOptions = {}): Promise<RollbackScriptResult> {
  await ensureState(db);
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const steps = await getSteps(db, runId);
  const irreversible = irreversibleApplied(spec, steps);
  if (irreversible.length > 0 && !opts.skipIrreversible) {
    const names = irreversible.map((s) => `"${s.name}"`).join(', ');
    throw new StateError('BELAY_IRREVERSIBLE', `run ${runId} applied ${names}, which declare${irreversible.length === 1 ? 's' : ''} no reverse (down: null); no script was written`, {
      details: { runId, steps: irreversible.map((s) => s.name) },
      fix: `Restore from the run's backup (belay rollback ${runId} --from-backup), or pass --skip-irreversible to leave ${names} in place.`,
    });
  }
  const parts: string[] = [];
  let bytes = 0;
  const write = async (s: string) => {
    bytes += Buffer.byteLength(s);
    if (opts.write) await opts.write(s);
    else parts.push(s);
  };
  const undo = await db.query<{ stepNo: number; batchNo: number; tableName: string; keyColumn: string; columns: string[]; rowCount: number }>(UNDO_BATCHES_SQL, [runId]);
  const rows = undo.rows.reduce((n, u) => n + u.rowCount, 0);
  const lock = { runId, migrationId: run.migrationId, lockClass: MIGRATION_LOCK_CLASS };
  await write(`-- belay rollback script for run ${runId} of migration "${run.migrationId}" (checksum ${run.checksum})
-- ${rows} rows in ${undo.rows.length} undo batches; generated ${new Date().toISOString()}.
-- Run with psql alone:  psql -v ON_ERROR_STOP=1 -f <this file> "$DATABASE_URL"
-- One transaction per undo batch, newest first. A row is restored only while it still holds what the
-- migration wrote; rows changed since are left alone and listed (NOTICE and the last SELECT).
-- Running it again changes nothing more. With schema belay present, the run is marked rolled back.
${irreversible.length > 0 ? `-- LEFT IN PLACE (irreversible, down: null): ${irreversible.map((s) => s.name).join(', ')}\n` : ''}
${scriptHeaderSql(lock)}
`);
  const lockTimeoutMs = spec.options?.lockTimeoutMs ?? 2000;
  for (let stepNo = steps.length - 1; stepNo >= 0; stepNo--) {
    const step = spec.steps[stepNo]!;
    if (step.kind === 'sql') {
      if (steps[stepNo]!.status !== 'done') continue;
      if (step.down === null) {
        await write(`-- step ${stepNo} "${step.name}" (sql) is irreversible: left in place\n\n`);
        continue;
      }
      await write(`-- step ${stepNo} "${step.name}" (sql): its down\n${scriptSqlStepSql({ runId, stepNo, name: step.name, down: step.down })}\n`);
      continue;
    }
    const batches = undo.rows.filter((u) => u.stepNo === stepNo);
    for (const u of batches) {
      const img = (await db.query<{ before: string; after: string }>(UNDO_IMAGES_SQL, [runId, stepNo, u.batchNo])).rows[0]!;
      await write(`-- step ${stepNo} "${step.name}", batch ${u.batchNo}: ${u.rowCount} rows of ${u.tableName} (${u.columns.join(', ')})\n`);
      await write(scriptBatchSql({
        table: qualified(u.tableName), tableName: u.tableName, key: u.keyColumn, columns: u.columns,
        runId, stepNo, batchNo: u.batchNo, lockTimeoutMs, before: img.before, after: img.after,
      }));
      await write('\n');
    }
    if (steps[stepNo]!.status !== 'pending') await write(scriptStepDoneSql(runId, stepNo));
  }
  await write(`\n${scriptFooterSql(lock)}`);
  return { runId, batches: undo.rows.length, rows, bytes, skippedIrreversible: irreversible.map((s) => s.name), text: opts.write ? undefined : parts.join('') };
}
