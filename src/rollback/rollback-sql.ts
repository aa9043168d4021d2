// SQL of the undo replay, in one place. $1 run, $2 step, $3 batch, $4 force (overwrite rows changed since).
import { ident } from '../db/sql.ts';

export interface UndoTarget {
  table: string;
  key: string;
  columns: readonly string[];
}

/**
 * Restores one undo record. A row is restored only while its current values equal what the migration
 * wrote (re-checked on the newest row version under concurrency); the others are conflicts, listed by key.
 */
export function restoreBatchSql(t: UndoTarget): string {
  const k = ident(t.key);
  const set = t.columns.map((c) => `${ident(c)} = b.${ident(c)}`).join(', ');
  const same = t.columns.map((c) => `t.${ident(c)} IS NOT DISTINCT FROM a.${ident(c)}`).join(' AND ');
  return `WITH u AS (
  SELECT before, after FROM belay.undo WHERE run_id = $1 AND step_no = $2 AND batch_no = $3 AND rolled_back_at IS NULL
), b AS (
  SELECT x.* FROM u, jsonb_populate_recordset(NULL::${t.table}, u.before) x
), a AS (
  SELECT x.* FROM u, jsonb_populate_recordset(NULL::${t.table}, u.after) x
), r AS (
  UPDATE ${t.table} t SET ${set}
    FROM b JOIN a ON a.${k} = b.${k}
   WHERE t.${k} = b.${k} AND ($4::boolean OR (${same}))
  RETURNING t.${k}
), m AS (
  UPDATE belay.undo SET rolled_back_at = clock_timestamp(), restored = (SELECT count(*) FROM r),
         conflicts = (SELECT coalesce(jsonb_agg(to_jsonb(b.${k}) ORDER BY b.${k}), '[]'::jsonb) FROM b WHERE b.${k} NOT IN (SELECT ${k} FROM r))
   WHERE run_id = $1 AND step_no = $2 AND batch_no = $3 AND rolled_back_at IS NULL
  RETURNING restored, conflicts
)
SELECT restored::int AS restored, conflicts FROM m`;
}

export const UNDO_BATCHES_SQL = `SELECT step_no AS "stepNo", batch_no AS "batchNo", table_name AS "tableName", key_column AS "keyColumn",
       columns, row_count AS "rowCount"
  FROM belay.undo WHERE run_id = $1 AND rolled_back_at IS NULL ORDER BY step_no DESC, batch_no DESC`;
