// Temporary indexes a migration declares (spec.tempIndexes): created before the first write, dropped at
// cleanup. On a server CREATE INDEX CONCURRENTLY (no write lock on the table), which runs outside any
// transaction with its own statement_timeout and can leave an INVALID index behind: that is checked.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { StateError } from '../errors.ts';
import type { Stage } from '../contract.ts';
import type { Migration } from '../spec/define.ts';
import { mergeSummaryPart } from '../state/summary.ts';
import { createIndexSql, dropIndexSql, GET_STATEMENT_TIMEOUT_SQL, INDEX_VALID_SQL, SET_STATEMENT_TIMEOUT_SQL, TABLE_SCHEMA_SQL } from './cleanup-sql.ts';

export type TempIndex = Migration['tempIndexes'][number];

/** Building an index on a large table takes minutes: its own timeout, not the batches'. */
export const DEFAULT_INDEX_TIMEOUT_MS = 30 * 60_000;

export interface TempIndexResult {
  name: string;
  table: string;
  /** created: built now; existed: a valid index of that name was there already (a resumed run). */
  status: 'created' | 'existed';
  durationMs: number;
}

async function schemaOf(db: Db, table: string): Promise<string> {
  const r = await db.query<{ schema: string | null }>(TABLE_SCHEMA_SQL, [qualified(table)]);
  const s = r.rows[0]?.schema;
  if (!s) throw new StateError('BELAY_TEMP_INDEX', `table ${qualified(table)} of a temporary index does not exist`, { fix: 'Check tempIndexes[].table.' });
  return s;
}

async function isValid(db: Db, schema: string, name: string): Promise<boolean | null> {
  const r = await db.query<{ valid: boolean }>(INDEX_VALID_SQL, [qualified([schema, name])]);
  return r.rows[0] ? r.rows[0].valid : null;
}

/** Creates every declared temporary index that is not there yet; fails (after dropping it) if one ends up invalid. */
export async function createTempIndexes(db: Db, indexes: readonly TempIndex[], opts: { timeoutMs?: number } = {}): Promise<TempIndexResult[]> {
  const out: TempIndexResult[] = [];
  const concurrently = db.kind === 'postgres';
  for (const ix of indexes) {
    const schema = await schemaOf(db, ix.table);
    const t0 = performance.now();
    const before = await isValid(db, schema, ix.name);
    if (before === true) {
      out.push({ name: ix.name, table: ix.table, status: 'existed', durationMs: 0 });
      continue;
    }
    // an INVALID leftover of an interrupted CONCURRENTLY build would satisfy IF NOT EXISTS: rebuild it
    if (before === false) await db.query(dropIndexSql(schema, ix.name, concurrently));
    const sql = createIndexSql({ schema, name: ix.name, table: qualified(ix.table), columns: ix.columns, where: ix.where, concurrently });
    const prev = (await db.query<{ v: string }>(GET_STATEMENT_TIMEOUT_SQL)).rows[0]!.v;
    try {
      await db.query(SET_STATEMENT_TIMEOUT_SQL, [`${opts.timeoutMs ?? DEFAULT_INDEX_TIMEOUT_MS}ms`]);
      await db.query(sql);
    } catch (err) {
      await db.query(dropIndexSql(schema, ix.name, concurrently)).catch(() => undefined);
      throw new StateError('BELAY_TEMP_INDEX', `temporary index "${ix.name}" on ${qualified(ix.table)} could not be built: ${(err as Error).message}`, {
        details: { index: ix.name, sql },
        fix: 'Check the index definition (tempIndexes) and the server load, then run again.',
      });
    } finally {
      await db.query(SET_STATEMENT_TIMEOUT_SQL, [prev]);
    }
    if ((await isValid(db, schema, ix.name)) !== true) {
      await db.query(dropIndexSql(schema, ix.name, concurrently)).catch(() => undefined);
      throw new StateError(
        'BELAY_TEMP_INDEX',
        `temporary index "${ix.name}" on ${qualified(ix.table)} is invalid after CREATE INDEX CONCURRENTLY; it was dropped`,
        {
          details: { index: ix.name, sql },
          fix: 'A concurrent build fails on deadlocks or unique violations: run again, or build the index by hand.',
        },
      );
    }
    out.push({ name: ix.name, table: ix.table, status: 'created', durationMs: performance.now() - t0 });
  }
  return out;
}

/** Drops every declared temporary index (missing ones are fine). */
export async function dropTempIndexes(db: Db, indexes: readonly TempIndex[]): Promise<string[]> {
  const dropped: string[] = [];
  for (const ix of indexes) {
    const schema = await schemaOf(db, ix.table);
    if ((await isValid(db, schema, ix.name)) === null) continue;
    await db.query(dropIndexSql(schema, ix.name, db.kind === 'postgres'));
    dropped.push(ix.name);
  }
  return dropped;
}

/** The temporary-index stage: the spec's indexes built before the first write, dropped after the last step. */
export function tempIndexStage(opts: { timeoutMs?: number } = {}): Stage {
  return {
    name: 'temp-indexes',
    async before(ctx) {
      const made = await createTempIndexes(ctx.db, ctx.migration.spec.tempIndexes, { timeoutMs: opts.timeoutMs });
      for (const ix of made)
        ctx.emit({ type: 'temp-index-ready', runId: ctx.runId, index: ix.name, table: ix.table, status: ix.status, durationMs: ix.durationMs });
    },
    async after(ctx) {
      const dropped = await cleanTempIndexes(ctx.db, ctx.runId, ctx.migration.spec);
      if (dropped.length > 0) ctx.emit({ type: 'temp-indexes-dropped', runId: ctx.runId, indexes: dropped });
    },
  };
}

/** Cleanup after a verified run: drops the spec's temporary indexes (missing ones are fine) and records their names in summary.cleanup. */
export async function cleanTempIndexes(db: Db, runId: number, spec: Migration): Promise<string[]> {
  const dropped = await dropTempIndexes(db, spec.tempIndexes);
  await mergeSummaryPart(db, runId, 'cleanup', { tempIndexes: { at: new Date().toISOString(), declared: spec.tempIndexes.map((i) => i.name), dropped } });
  return dropped;
}
