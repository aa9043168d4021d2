// SQL of the undo replay, in one place. $1 run, $2 step, $3 batch, $4 force (overwrite rows changed since).
import { ident, literal } from '../db/sql.ts';

export interface UndoTarget {
  table: string;
  key: string;
  columns: readonly string[];
}

/**
 * The before- and after-images of one undo record side by side: `i.b` and `i.a`, rows of the table's type.
 * ROWS FROM zips the two arrays by position (apply aggregates both in one pass over the same rows), so no
 * join between two function scans is planned: with their default estimate that join is a nested loop,
 * 10,000 × 10,000 comparisons for one batch.
 */
function zippedImages(table: string, source: string): string {
  return `SELECT jsonb_populate_record(NULL::${table}, z.b) AS b, jsonb_populate_record(NULL::${table}, z.a) AS a
    FROM ${source}, ROWS FROM (jsonb_array_elements(${source}.before), jsonb_array_elements(${source}.after)) AS z(b, a)`;
}

/**
 * Restores one undo record. A row is restored only while its current values equal what the migration
 * wrote (re-checked on the newest row version under concurrency); the others are conflicts, listed by key.
 */
export function restoreBatchSql(t: UndoTarget): string {
  const k = ident(t.key);
  const set = t.columns.map((c) => `${ident(c)} = (i.b).${ident(c)}`).join(', ');
  const same = t.columns.map((c) => `t.${ident(c)} IS NOT DISTINCT FROM (i.a).${ident(c)}`).join(' AND ');
  return `WITH u AS (
  SELECT before, after FROM belay.undo WHERE run_id = $1 AND step_no = $2 AND batch_no = $3 AND rolled_back_at IS NULL
), i AS (
  ${zippedImages(t.table, 'u')}
), r AS (
  UPDATE ${t.table} t SET ${set}
    FROM i
   WHERE t.${k} = (i.b).${k} AND ($4::boolean OR (${same}))
  RETURNING t.${k}
), m AS (
  UPDATE belay.undo SET rolled_back_at = clock_timestamp(), restored = (SELECT count(*) FROM r),
         conflicts = (SELECT coalesce(jsonb_agg(to_jsonb((i.b).${k}) ORDER BY (i.b).${k}), '[]'::jsonb) FROM i WHERE (i.b).${k} NOT IN (SELECT ${k} FROM r))
   WHERE run_id = $1 AND step_no = $2 AND batch_no = $3 AND rolled_back_at IS NULL
  RETURNING restored, conflicts
)
SELECT restored::int AS restored, conflicts FROM m`;
}

export const UNDO_BATCHES_SQL = `SELECT step_no AS "stepNo", batch_no AS "batchNo", table_name AS "tableName", key_column AS "keyColumn",
       columns, row_count AS "rowCount"
  FROM belay.undo WHERE run_id = $1 AND rolled_back_at IS NULL ORDER BY step_no DESC, batch_no DESC`;

// ---- The standalone script (belay rollback --sql): the same restore, data embedded, psql alone. ----
// Every value below is either quoted by ident()/literal() or a number checked by the caller.

/** Opens the script: stop on the first error, one lock against a concurrent belay run, a result table. */
export function scriptHeaderSql(p: { runId: number; migrationId: string; lockClass: number }): string {
  return `\\set ON_ERROR_STOP on
SET standard_conforming_strings = on;
SET client_min_messages = notice;
DO $belay$ BEGIN
  -- the advisory lock belay itself takes for this migration: never undo under a running apply
  IF NOT pg_try_advisory_lock(${p.lockClass}, hashtext(${literal(p.migrationId)})) THEN
    RAISE EXCEPTION 'belay: migration % is being applied or rolled back right now; run this script when it has stopped', ${literal(p.migrationId)};
  END IF;
END $belay$;
CREATE TEMP TABLE IF NOT EXISTS belay_rollback_result (
  step_no int, batch_no int, table_name text, restored int, already int, conflicts jsonb);
TRUNCATE belay_rollback_result;
`;
}

/**
 * Restores one undo batch from embedded before/after images, in its own transaction. A row is restored
 * while it still holds what the migration wrote (re-checked on the newest row version); a row that already
 * holds its before-image counts as already restored (so a second run changes nothing); every other row
 * (changed or deleted since) is a conflict, left alone and listed.
 */
export function scriptBatchSql(t: UndoTarget & { tableName: string; runId: number; stepNo: number; batchNo: number; lockTimeoutMs: number; before: string; after: string }): string {
  const k = ident(t.key);
  const set = t.columns.map((c) => `${ident(c)} = (i.b).${ident(c)}`).join(', ');
  const is = (row: string, img: string) => t.columns.map((c) => `${row}.${ident(c)} IS NOT DISTINCT FROM ${img}.${ident(c)}`).join(' AND ');
  const restore = `WITH d AS (
  SELECT ${literal(t.before)}::jsonb AS before, ${literal(t.after)}::jsonb AS after
), i AS (
  ${zippedImages(t.table, 'd')}
), b AS (
  SELECT (i.b).* FROM i
), r AS (
  UPDATE ${t.table} t SET ${set}
    FROM i
   WHERE t.${k} = (i.b).${k} AND ${is('t', '(i.a)')}
  RETURNING t.${k}
), s AS (
  SELECT b.${k} AS k, (cur.${k} IS NOT NULL AND ${is('cur', 'b')}) AS already
    FROM b LEFT JOIN ${t.table} cur ON cur.${k} = b.${k}
   WHERE NOT EXISTS (SELECT 1 FROM r WHERE r.${k} = b.${k})
)
INSERT INTO pg_temp.belay_rollback_result
SELECT ${t.stepNo}, ${t.batchNo}, ${literal(t.tableName)}, (SELECT count(*) FROM r), (SELECT count(*) FROM s WHERE already),
       (SELECT coalesce(jsonb_agg(to_jsonb(s.k) ORDER BY s.k), '[]'::jsonb) FROM s WHERE NOT already)`;
  // the restore runs through EXECUTE so that a batch belay already marks as undone is not even planned
  // (its columns may have been dropped since by a SQL step's down)
  const q = dollarQuote(restore);
  return `BEGIN;
SET LOCAL lock_timeout = ${literal(`${t.lockTimeoutMs}ms`)};
DO ${q.tag} BEGIN
  IF to_regclass('belay.undo') IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM belay.undo WHERE run_id = ${t.runId} AND step_no = ${t.stepNo} AND batch_no = ${t.batchNo} AND rolled_back_at IS NOT NULL) THEN
      RAISE NOTICE 'belay: step ${t.stepNo}, batch ${t.batchNo} is already rolled back: skipped';
      RETURN;
    END IF;
  END IF;
  EXECUTE ${q.quoted};
  IF to_regclass('belay.undo') IS NOT NULL THEN
    UPDATE belay.undo u SET restored = r.restored, rolled_back_at = clock_timestamp(), conflicts = r.conflicts
      FROM pg_temp.belay_rollback_result r
     WHERE u.run_id = ${t.runId} AND u.step_no = ${t.stepNo} AND u.batch_no = ${t.batchNo} AND r.step_no = ${t.stepNo} AND r.batch_no = ${t.batchNo};
  END IF;
END ${q.tag};
COMMIT;
`;
}

/** The restore statement as a string literal, inside a DO body whose dollar tag the data does not contain. */
function dollarQuote(stmt: string): { tag: string; quoted: string } {
  const quoted = literal(stmt);
  let n = 0;
  while (quoted.includes(`$belay${n}$`)) n++;
  return { tag: `$belay${n}$`, quoted };
}

/** A step's undo is complete: mark it in belay.steps when the schema exists. */
export function scriptStepDoneSql(runId: number, stepNo: number): string {
  return `DO $belay$ BEGIN
  IF to_regclass('belay.steps') IS NOT NULL THEN
    UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = ${runId} AND step_no = ${stepNo};
  END IF;
END $belay$;
`;
}

/**
 * A plain SQL step's down, in its own transaction. With schema belay present it runs only while the
 * step is recorded as done (so a second run skips it); without it, the script cannot know and runs it.
 */
export function scriptSqlStepSql(p: { runId: number; stepNo: number; name: string; down: string }): string {
  const q = dollarQuote(p.down);
  return `BEGIN;
DO ${q.tag} BEGIN
  IF to_regclass('belay.steps') IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM belay.steps WHERE run_id = ${p.runId} AND step_no = ${p.stepNo} AND status = 'done') THEN
      RAISE NOTICE 'belay: step ${p.stepNo} is already rolled back: skipped';
      RETURN;
    END IF;
  END IF;
  EXECUTE ${q.quoted};
  IF to_regclass('belay.steps') IS NOT NULL THEN
    UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = ${p.runId} AND step_no = ${p.stepNo};
  END IF;
END ${q.tag};
COMMIT;
`;
}

/** Closes the script: run status, event, a summary line, the conflicts listed (NOTICE and rows). */
export function scriptFooterSql(p: { runId: number; migrationId: string; lockClass: number }): string {
  return `DO $belay$
DECLARE
  n_restored bigint; n_already bigint; n_conflicts bigint; c record;
BEGIN
  SELECT coalesce(sum(restored), 0), coalesce(sum(already), 0), coalesce(sum(jsonb_array_length(conflicts)), 0)
    INTO n_restored, n_already, n_conflicts FROM pg_temp.belay_rollback_result;
  IF to_regclass('belay.runs') IS NOT NULL THEN
    UPDATE belay.runs SET status = 'rolled_back', finished_at = clock_timestamp(),
           summary = summary || jsonb_build_object('rollback', jsonb_build_object('by', 'sql-script', 'restored', n_restored, 'conflictCount', n_conflicts))
     WHERE id = ${p.runId} AND status <> 'rolled_back';
    INSERT INTO belay.events (run_id, type, data)
    VALUES (${p.runId}, 'rollback-script', jsonb_build_object('restored', n_restored, 'alreadyRestored', n_already, 'conflictCount', n_conflicts));
  END IF;
  RAISE NOTICE 'belay rollback of run ${p.runId}: % rows restored, % already restored, % conflicts (rows changed since the migration, left alone)', n_restored, n_already, n_conflicts;
  FOR c IN SELECT r.table_name, r.step_no, r.batch_no, k.key FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.conflicts) k(key)
            ORDER BY r.step_no, r.batch_no, k.key LIMIT 1000 LOOP
    RAISE NOTICE 'belay conflict: % key % (step %, batch %) changed since the migration: left alone', c.table_name, c.key, c.step_no, c.batch_no;
  END LOOP;
  PERFORM pg_advisory_unlock(${p.lockClass}, hashtext(${literal(p.migrationId)}));
END $belay$;
SELECT sum(restored)::bigint AS restored, sum(already)::bigint AS already_restored, sum(jsonb_array_length(conflicts))::bigint AS conflicts
  FROM pg_temp.belay_rollback_result;
SELECT r.table_name, r.step_no, r.batch_no, k.key AS conflict_key
  FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.conflicts) k(key) ORDER BY 2, 3, 4;
`;
}
