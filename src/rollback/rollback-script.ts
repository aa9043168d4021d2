// `belay rollback <run> --sql`: the run's undo as one standalone SQL file that psql alone can run. Same
// order and conflict rule as rollback(): steps newest first, batches newest first, one transaction per
// batch, only the row versions a batch wrote are restored; the before-images are embedded as typed literals
// (INSERT values). The script covers the batches committed when it was made, and says so; it marks the
// run rolled back only when no committed batch is left. Re-running it changes nothing.
import type { Db } from '../db/connection.ts';
import { pinnedSettingsSql, qualified } from '../db/sql.ts';
import { StateError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import { resolveStep } from '../spec/resolve.ts';
import { storedDecision } from '../state/decision.ts';
import { batchImagesSql, DECISION_TYPES_SQL, dropFenceSql, fenceNames } from '../state/decision-sql.ts';
import { MIGRATION_LOCK_CLASS } from '../state/lock.ts';
import { BATCHES_TO_UNDO_SQL, getRun, getSteps } from '../state/runs.ts';
import { ensureState } from '../state/schema.ts';
import { irreversibleApplied } from './rollback.ts';
import { scriptBatchSql, scriptFooterSql, scriptHeaderSql, scriptSqlStepSql, scriptStepDoneSql } from './rollback-sql.ts';

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
  /** The run had not ended when the script was made: batches committed after this are not in it. */
  unfinished: boolean;
  /** The whole script when no write callback was given. */
  text?: string;
}

export async function rollbackScript(db: Db, runId: number, opts: RollbackScriptOptions = {}): Promise<RollbackScriptResult> {
  await ensureState(db);
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  const steps = await getSteps(db, runId);
  const irreversible = irreversibleApplied(spec, steps);
  if (irreversible.length > 0 && !opts.skipIrreversible) {
    const names = irreversible.map((s) => `"${s.name}"`).join(', ');
    throw new StateError(
      'BELAY_IRREVERSIBLE',
      `run ${runId} applied ${names}, which declare${irreversible.length === 1 ? 's' : ''} no reverse (down: null); no script was written`,
      {
        details: { runId, steps: irreversible.map((s) => s.name) },
        fix: `Restore from the run's backup (belay rollback ${runId} --from-backup), or pass --skip-irreversible to leave ${names} in place.`,
      },
    );
  }
  const unfinished = run.status === 'running' || run.status === 'paused' || run.status === 'failed';
  const parts: string[] = [];
  let bytes = 0;
  const write = async (s: string) => {
    bytes += Buffer.byteLength(s);
    if (opts.write) await opts.write(s);
    else parts.push(s);
  };
  const plan = [];
  for (let stepNo = steps.length - 1; stepNo >= 0; stepNo--) {
    const step = spec.steps[stepNo]!;
    if (step.kind !== 'batched') {
      plan.push({ stepNo, batches: [] as Array<{ batchNo: number; lo: string; hi: string; round: number; xid: string | null; rowsChanged: number }> });
      continue;
    }
    plan.push({
      stepNo,
      batches: (
        await db.query<{ batchNo: number; lo: string; hi: string; round: number; xid: string | null; rowsChanged: number }>(BATCHES_TO_UNDO_SQL, [
          runId,
          stepNo,
        ])
      ).rows,
    });
  }
  const batches = plan.reduce((n, p) => n + p.batches.length, 0);
  const rows = plan.reduce((n, p) => n + p.batches.reduce((m, b) => m + b.rowsChanged, 0), 0);
  const lock = { runId, migrationId: run.migrationId, lockClass: MIGRATION_LOCK_CLASS, batches };
  await write(`-- belay rollback script for run ${runId} of migration "${run.migrationId}" (checksum ${run.checksum})
-- ${rows} rows in ${batches} batches; generated ${new Date().toISOString()}.
-- Run with psql alone:  psql -v ON_ERROR_STOP=1 -f <this file> "$DATABASE_URL"
-- One transaction per batch, newest first. A row is restored only when no one else wrote its written columns
-- since the batch (as the run's write fence recorded it; without a fence: while it holds the version the batch
-- wrote); rows written since or deleted are left alone and listed (NOTICE and the last SELECT).
-- Running it again changes nothing more. With schema belay present, each batch is marked rolled back, and the
-- run when no batch of it is left.
${unfinished ? `-- THE RUN HAD NOT ENDED (status ${run.status}): this script covers the ${batches} batches committed by then; batches committed\n-- later are not in it (belay rollback ${runId} restores them).\n` : ''}${irreversible.length > 0 ? `-- LEFT IN PLACE (irreversible, down: null): ${irreversible.map((s) => s.name).join(', ')}\n` : ''}
${scriptHeaderSql(lock)}
`);
  const lockTimeoutMs = spec.options?.lockTimeoutMs ?? 2000;
  for (const p of plan) {
    const step = spec.steps[p.stepNo]!;
    if (step.kind === 'sql') {
      if (steps[p.stepNo]!.status !== 'done') continue;
      if (step.down === null) {
        await write(`-- step ${p.stepNo} "${step.name}" (sql) is irreversible: left in place\n\n`);
        continue;
      }
      await write(`-- step ${p.stepNo} "${step.name}" (sql): its down\n${scriptSqlStepSql({ runId, stepNo: p.stepNo, name: step.name, down: step.down })}\n`);
      continue;
    }
    if (p.batches.length === 0) continue;
    const d = await storedDecision(db, runId, p.stepNo, await resolveStep(db, step, p.stepNo));
    if (!d || p.batches.some((b) => b.xid === null)) {
      throw new StateError(
        'BELAY_LEGACY_UNDO',
        `run ${runId} was applied by an earlier belay whose undo log this version does not replay; no script was written`,
        {
          details: { runId },
          fix: `Use the belay version that applied it, or restore from the backup (belay rollback ${runId} --from-backup).`,
        },
      );
    }
    const types = (await db.query<{ type: string }>(DECISION_TYPES_SQL, [d.relation, d.writes.length])).rows.map((r) => r.type);
    for (const b of p.batches) {
      const rows = await imagesOf(db, batchImagesSql(d, b), d.writes.length);
      await write(`-- step ${p.stepNo} "${step.name}", batch ${b.batchNo}: ${b.rowsChanged} rows of ${d.tableName} (${d.writes.join(', ')})\n`);
      await write(
        scriptBatchSql({
          table: qualified(d.tableName),
          tableName: d.tableName,
          key: d.key,
          keyColumns: d.keyColumns,
          columns: d.writes,
          types,
          runId,
          stepNo: p.stepNo,
          batchNo: b.batchNo,
          xid: b.xid!,
          lockTimeoutMs,
          rows,
          fence: d.fence ? fenceNames(runId, p.stepNo).table : undefined,
        }),
      );
      await write('\n');
    }
    await write(scriptStepDoneSql(runId, p.stepNo, d.fence ? { drop: dropFenceSql(d, runId, p.stepNo) } : undefined));
  }
  await write(`\n${scriptFooterSql(lock)}`);
  return { runId, batches, rows, bytes, unfinished, skippedIrreversible: irreversible.map((s) => s.name), text: opts.write ? undefined : parts.join('') };
}

/** A batch's images as text values, read under pinned settings so that the text reads back to the same values. */
async function imagesOf(db: Db, sql: string, columns: number): Promise<Array<Array<string | null>>> {
  await db.query('BEGIN');
  try {
    await db.exec(pinnedSettingsSql());
    const r = await db.query<Record<string, string | null>>(sql);
    await db.query('COMMIT');
    return r.rows.map((x) => [x.k!, ...Array.from({ length: columns }, (_, i) => x[`o${i}`] ?? null)]);
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
