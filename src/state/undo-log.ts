// belay.undo, the undo log: the before- and after-images of every row and column a batch wrote. This
// module owns its format; every reader and writer of belay.undo goes through the SQL here.
import { ident, literal } from '../db/sql.ts';

/**
 * Rows of a table that differ from its backup copy (changed, added or deleted since) and whose key this
 * run never wrote: other people's changes that a restore from backup would lose. $1 run, $2 table name.
 */
export function othersChangesSql(table: string, copy: string, key: string): string {
  const k = ident(key);
  return `WITH w AS (
  SELECT DISTINCT a->>${literal(key)} AS k FROM belay.undo u, jsonb_array_elements(u.after) a WHERE u.run_id = $1 AND u.table_name = $2
), d AS (
  SELECT coalesce(t.${k}, c.${k})::text AS k FROM ${table} t FULL JOIN ${copy} c ON c.${k} = t.${k}
   WHERE t.${k} IS NULL OR c.${k} IS NULL OR to_jsonb(t) <> to_jsonb(c)
)
SELECT count(*)::int AS n, coalesce((array_agg(d.k ORDER BY d.k))[1:10], '{}') AS sample
  FROM d WHERE NOT EXISTS (SELECT 1 FROM w WHERE w.k = d.k)`;
}

/** After a restore from backup the undo log is spent: mark it, and the steps and the run. $1 run. */
export const MARK_RESTORED_FROM_BACKUP_SQL = [
  `UPDATE belay.undo SET rolled_back_at = clock_timestamp(), restored = 0 WHERE run_id = $1 AND rolled_back_at IS NULL`,
  `UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = $1 AND status IN ('done', 'running')`,
];
