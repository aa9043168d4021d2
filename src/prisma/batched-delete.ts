// A large DELETE that opens a migration file, in keyset batches of one transaction each: every batch moves
// the rows it deletes into an undo table in belay_backup (one statement: DELETE … RETURNING into INSERT),
// so a later failure of the file puts them back and a deploy interrupted half-way leaves them findable.
// Taken only where nothing else changes with the rows: no foreign key that cascades or sets NULL on
// delete, no DELETE trigger, no rule, no inheritance children, no generated column, a one-column
// primary key, no USING, WITH, RETURNING or WHERE CURRENT OF.
import { createHash } from 'node:crypto';
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import { BelayError } from '../errors.ts';
import { BACKUP_SCHEMA, ensureState } from '../state/schema.ts';
import type { ActionInfo } from './analyze.ts';
import type { ParsedFile } from './parse.ts';
import {
  createUndoSql,
  DELETE_HAZARDS_SQL,
  deleteBatchSql,
  dropUndoSql,
  restoreDeletedSql,
  setLockTimeoutSql,
  UNDO_EXISTS_SQL,
  undoRowsSql,
} from './prisma-sql.ts';
import { findTop } from './sql-text.ts';
import type { Statement } from './types.ts';

export const DELETE_BATCH_ROWS = 5000;

export interface BatchedDelete {
  /** The table, schema-qualified and quoted. */
  table: string;
  /** The table with the statement's alias, as its condition reads it. */
  relation: string;
  key: string;
  where?: string;
  rows: number;
  /** belay_backup."prisma_deleted_…": the same name for the same statement of the same migration. */
  undo: string;
}

/** The DELETE as batches, or undefined when it is not one belay takes (hazards: the table's catalog facts). */
export function batchedDelete(
  p: ParsedFile,
  s: Statement,
  act: ActionInfo,
  over: number,
  migration: string,
  hazard: string | undefined,
): BatchedDelete | undefined {
  const n = s.node;
  if (s.kind !== 'DeleteStmt' || !act.live || act.touchedBefore || act.rows < over || !act.table || !act.schema || hazard !== '') return undefined;
  if (n.usingClause || n.withClause || n.returningList || (n.whereClause as Record<string, unknown> | undefined)?.CurrentOfExpr) return undefined;
  if (act.primaryKey.length !== 1) return undefined;
  const toks = p.text.tokens(s.start, s.end);
  const where = findTop(toks, 1, (t) => t.up === 'WHERE');
  const rel = n.relation as { inh?: boolean; alias?: { aliasname?: string } };
  if (rel.inh === false) return undefined; // DELETE FROM ONLY: a table with children is refused anyway
  const table = qualified([act.schema, act.table]);
  const alias = rel.alias?.aliasname;
  const id = createHash('sha256').update(`${migration}#${s.index}`).digest('hex').slice(0, 16);
  return {
    table,
    relation: `${table}${alias ? ` AS ${ident(alias)}` : ''}`,
    key: act.primaryKey[0]!,
    ...(where < toks.length ? { where: p.text.slice(toks[where + 1]!.start, toks[toks.length - 1]!.end) } : {}),
    rows: act.rows,
    undo: `${ident(BACKUP_SCHEMA)}.${ident(`prisma_deleted_${id}`)}`,
  };
}

/** Why a DELETE on the table cannot be batched ('' when it can), from the catalog. */
export async function deleteHazard(db: Db, schema: string, table: string): Promise<string> {
  const h = (await db.query<Record<'cascades' | 'triggers' | 'generated' | 'inherited' | 'rules', boolean>>(DELETE_HAZARDS_SQL, [qualified([schema, table])]))
    .rows[0]!;
  const why = [
    h.cascades && 'a foreign key deletes or changes rows of another table with it',
    h.triggers && 'a DELETE trigger',
    h.rules && 'a rule',
    h.inherited && 'inheritance children',
    h.generated && 'a generated column (its rows could not be put back as they were)',
  ].filter(Boolean);
  return why.join(', ');
}

/** Creates the undo table; refuses one an interrupted deploy left, with the rows in it (nothing changed then). */
export async function startDelete(db: Db, d: BatchedDelete): Promise<void> {
  await ensureState(db);
  if ((await db.query<{ exists: boolean }>(UNDO_EXISTS_SQL, [d.undo])).rows[0]?.exists) {
    const left = (await db.query<{ n: number }>(undoRowsSql(d.undo))).rows[0]!.n;
    throw new BelayError(
      'BELAY_PRISMA_DELETE_INTERRUPTED',
      `an earlier deploy of this migration stopped while deleting in batches: ${left} deleted row(s) of ${d.table} are kept in ${d.undo}`,
      {
        details: { undo: d.undo, rows: left },
        fix: `Put them back with INSERT INTO ${d.table} OVERRIDING SYSTEM VALUE SELECT * FROM ${d.undo}; then DROP TABLE ${d.undo}; and deploy again (or drop it if the rows are meant to stay deleted).`,
      },
    );
  }
  await db.exec(createUndoSql(d.undo, d.table));
}

/** Runs the batches (after startDelete); each retried by `retry` on a lock timeout. Returns the rows deleted. */
export async function runDelete(
  db: Db,
  d: BatchedDelete,
  lockTimeoutMs: number,
  retry: <T>(what: string, fn: () => Promise<T>) => Promise<T>,
): Promise<number> {
  let last: string | null = null;
  let total = 0;
  for (;;) {
    const r: { n: number; last: string | null } = await retry(`batch after key ${last ?? '(start)'}`, async () => {
      await db.query('BEGIN');
      try {
        await db.query(setLockTimeoutSql(lockTimeoutMs, true));
        const res = await db.query<{ n: number; last: string | null }>(
          deleteBatchSql(d, d.undo, DELETE_BATCH_ROWS, last !== null),
          last !== null ? [last] : [],
        );
        await db.query('COMMIT');
        return res.rows[0]!;
      } catch (err) {
        await db.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    total += r.n;
    if (r.n < DELETE_BATCH_ROWS || r.last === null) return total;
    last = r.last;
  }
}

/** Puts every row the batches deleted back, in one transaction, and drops the undo table. */
export async function undoDelete(db: Db, d: BatchedDelete): Promise<void> {
  await db.query('BEGIN');
  try {
    await db.exec(restoreDeletedSql(d.table, d.undo));
    await db.exec(dropUndoSql(d.undo));
    await db.query('COMMIT');
  } catch (err) {
    await db.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}
