// SQL of the standalone rollback script (belay rollback --sql), in one place: psql alone runs it, with or
// without schema belay. Every value below is quoted by ident()/literal() or a number checked by the caller.
import { hasRow, isComposite, keyIs, keyOrder, keyValue, noRow } from '../db/key-sql.ts';
import { ident, literal } from '../db/sql.ts';

/** lock_timeout for the transaction that restores one batch. */
export const SET_LOCK_TIMEOUT_SQL = `SELECT set_config('lock_timeout', $1, true)`;

/** The images of one batch, as the script embeds them: the key and the before-image of every written column. */
export interface ScriptBatch {
  table: string;
  tableName: string;
  key: string;
  /** The key's columns: several for a composite primary key. */
  keyColumns: readonly string[];
  columns: readonly string[];
  /** The SQL types of k, o0, o1 … as the decision holds them (format_type, with a collation where not the default). */
  types: readonly string[];
  runId: number;
  stepNo: number;
  batchNo: number;
  /** The batch's xid: without schema belay, only the row versions it wrote are restored. */
  xid: string;
  /** The step's write fence (a table of schema belay): with it, rows nobody else wrote since are restored. */
  fence?: string;
  lockTimeoutMs: number;
  /** The rows (k, o0, o1, …), each value as its text form under pinned settings (NULL as null). */
  rows: ReadonlyArray<ReadonlyArray<string | null>>;
}

/** Opens the script: stop on the first error, one lock against a concurrent belay run, result tables. */
export function scriptHeaderSql(p: { runId: number; migrationId: string; lockClass: number }): string {
  return `\\set ON_ERROR_STOP on
SET standard_conforming_strings = on;
SET client_min_messages = notice;
-- the embedded images were written under these settings; their text reads back to the same values
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';
DO $belay$ BEGIN
  -- the advisory lock belay itself takes for this migration: never undo under a running apply
  IF NOT pg_try_advisory_lock(${p.lockClass}, hashtext(${literal(p.migrationId)})) THEN
    RAISE EXCEPTION 'belay: migration % is being applied or rolled back right now; run this script when it has stopped', ${literal(p.migrationId)};
  END IF;
END $belay$;
CREATE TEMP TABLE IF NOT EXISTS belay_rollback_result (
  step_no int, batch_no int, table_name text, restored int, already int, changed jsonb, deleted jsonb);
TRUNCATE belay_rollback_result;
-- the script's own transactions: a row one of them restored (a later step's batch) may be restored again
CREATE TEMP TABLE IF NOT EXISTS belay_rollback_xids (xid xid8);
`;
}

/**
 * Restores one batch from its embedded before-images, in its own transaction. A row is restored while its
 * current version is the one the batch wrote (or one this script restored); a row that already holds its
 * before-image counts as already restored (a second run changes nothing); any other row (written since, or
 * deleted) is left alone and listed. With schema belay present, the batch is marked rolled back.
 */
export function scriptBatchSql(b: ScriptBatch): string {
  // a composite key's type is schema belay's: the script makes its own, a temporary table of the key columns
  const composite = isComposite(b);
  const keyType = composite ? `pg_temp.${ident(`belay_key_s${b.stepNo}`)}` : b.types[0]!;
  const key = { key: b.key, keyColumns: b.keyColumns, keyType };
  const cols = b.columns.map((_, i) => `o${i}`);
  const set = b.columns.map((c, i) => `${ident(c)} = u.o${i}`).join(', ');
  const same = b.columns.map((c, i) => `x.${ident(c)} IS NOT DISTINCT FROM u.o${i}`).join(' AND ');
  const version = `x.xmin = ${literal(b.xid)}::xid8::xid OR x.xmin IN (SELECT xid::xid FROM pg_temp.belay_rollback_xids)`;
  const ours = (withBelay: boolean) =>
    withBelay && b.fence
      ? `NOT EXISTS (SELECT 1 FROM ${b.fence} f WHERE ${composite ? 'f.k::text = u.k::text' : 'f.k = u.k'})`
      : `${version}${withBelay ? ` OR x.xmin IN (SELECT rollback_xid::xid FROM belay.batches WHERE run_id = ${b.runId} AND rollback_xid IS NOT NULL)` : ''}`;
  const restore = (withBelay: boolean) => `WITH r AS (
  UPDATE ${b.table} x SET ${set} FROM pg_temp.belay_undo_batch u
   WHERE ${keyIs(key, 'x', 'u.k')} AND (${ours(withBelay)})
  RETURNING ${keyValue(key, 'x')} AS k
), s AS (
  SELECT u.k, ${noRow(key, 'x')} AS deleted, (${hasRow(key, 'x')} AND ${same}) AS already
    FROM pg_temp.belay_undo_batch u LEFT JOIN r ON r.k = u.k LEFT JOIN ${b.table} x ON ${keyIs(key, 'x', 'u.k')}
   WHERE r.k IS NULL
)
INSERT INTO pg_temp.belay_rollback_result
SELECT ${b.stepNo}, ${b.batchNo}, ${literal(b.tableName)}, (SELECT count(*) FROM r), (SELECT count(*) FROM s WHERE already),
       (SELECT coalesce(jsonb_agg(to_jsonb(s.k${composite ? '::text' : ''}) ORDER BY s.k), '[]'::jsonb) FROM s WHERE NOT already AND NOT deleted),
       (SELECT coalesce(jsonb_agg(to_jsonb(s.k${composite ? '::text' : ''}) ORDER BY s.k), '[]'::jsonb) FROM s WHERE deleted)`;
  const body = `BEGIN
  IF to_regclass('belay.batches') IS NOT NULL THEN
    IF EXISTS (SELECT 1 FROM belay.batches WHERE run_id = ${b.runId} AND step_no = ${b.stepNo} AND batch_no = ${b.batchNo} AND rolled_back_at IS NOT NULL) THEN
      RAISE NOTICE 'belay: step ${b.stepNo}, batch ${b.batchNo} is already rolled back: skipped';
      RETURN;
    END IF;
    ${
      b.fence
        ? `PERFORM 1 FROM ${b.table} x JOIN pg_temp.belay_undo_batch u ON ${keyIs(key, 'x', 'u.k')} FOR UPDATE OF x;
    `
        : ''
    }EXECUTE ${literal(restore(true))};
    UPDATE belay.batches x SET rolled_back_at = clock_timestamp(), restored = r.restored, rollback_xid = pg_current_xact_id(),
           conflicts = jsonb_build_object('changed', r.changed, 'deleted', r.deleted)
      FROM pg_temp.belay_rollback_result r
     WHERE x.run_id = ${b.runId} AND x.step_no = ${b.stepNo} AND x.batch_no = ${b.batchNo} AND r.step_no = ${b.stepNo} AND r.batch_no = ${b.batchNo};
  ELSE
    EXECUTE ${literal(restore(false))};
  END IF;
  INSERT INTO pg_temp.belay_rollback_xids VALUES (pg_current_xact_id());
END`;
  const tag = dollarTag(body);
  return `BEGIN;
SET LOCAL lock_timeout = ${literal(`${b.lockTimeoutMs}ms`)};
SET LOCAL belay.writer = ${literal(String(b.runId))};
${composite ? `CREATE TEMP TABLE IF NOT EXISTS ${ident(`belay_key_s${b.stepNo}`)} AS SELECT ${keyOrder(key, 't')} FROM ${b.table} t WITH NO DATA;\n` : ''}CREATE TEMP TABLE belay_undo_batch (k ${keyType}, ${cols.map((c, i) => `${c} ${b.types[i + 1]}`).join(', ')}) ON COMMIT DROP;
${insertsOf(b.rows, `INSERT INTO pg_temp.belay_undo_batch (k, ${cols.join(', ')}) VALUES`)}
DO ${tag} ${body} ${tag};
COMMIT;
`;
}

/** The images as INSERTs of 1,000 rows each: every value a literal of its text form, read back by the column's type. */
function insertsOf(rows: ReadonlyArray<ReadonlyArray<string | null>>, head: string): string {
  const out: string[] = [];
  for (let i = 0; i < rows.length; i += 1000) {
    const chunk = rows.slice(i, i + 1000).map((r) => `(${r.map((v) => (v === null ? 'NULL' : literal(v))).join(', ')})`);
    out.push(`${head}\n${chunk.join(',\n')};`);
  }
  return out.join('\n');
}

/** A dollar-quote tag that the body does not contain (table and column names are the user's). */
function dollarTag(body: string): string {
  let n = 0;
  while (body.includes(`$belay${n}$`)) n++;
  return `$belay${n}$`;
}

/** A step whose batches the script covers: marked rolled back when none of its batches is left (schema belay present). */
export function scriptStepDoneSql(runId: number, stepNo: number, fence?: { drop: readonly string[] }): string {
  const drop = (fence?.drop ?? []).map((s) => `      EXECUTE ${literal(s)};`).join('\n');
  const tag = dollarTag(drop);
  return `DO ${tag} BEGIN
  IF to_regclass('belay.steps') IS NOT NULL THEN
    UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = ${runId} AND step_no = ${stepNo}
       AND NOT EXISTS (SELECT 1 FROM belay.batches WHERE run_id = ${runId} AND step_no = ${stepNo} AND rolled_back_at IS NULL);
    IF FOUND THEN
${drop || '      NULL;'}
      UPDATE belay.decisions SET fence = false WHERE run_id = ${runId} AND step_no = ${stepNo};
    END IF;
  END IF;
END ${tag};
`;
}

/**
 * A plain SQL step's down, in its own transaction. With schema belay present it runs only while the
 * step is recorded as done (so a second run skips it); without it, the script cannot know and runs it.
 */
export function scriptSqlStepSql(p: { runId: number; stepNo: number; name: string; down: string }): string {
  const q = literal(p.down);
  const tag = dollarTag(q);
  return `BEGIN;
DO ${tag} BEGIN
  IF to_regclass('belay.steps') IS NOT NULL THEN
    IF NOT EXISTS (SELECT 1 FROM belay.steps WHERE run_id = ${p.runId} AND step_no = ${p.stepNo} AND status = 'done') THEN
      RAISE NOTICE 'belay: step ${p.stepNo} is already rolled back: skipped';
      RETURN;
    END IF;
  END IF;
  EXECUTE ${q};
  IF to_regclass('belay.steps') IS NOT NULL THEN
    UPDATE belay.steps SET status = 'rolled_back' WHERE run_id = ${p.runId} AND step_no = ${p.stepNo};
  END IF;
END ${tag};
COMMIT;
`;
}

/**
 * Closes the script: the run is marked rolled back only when every committed batch of it is (a script made
 * while the run went on covers the batches committed by then); an event, a summary line, the rows left alone.
 */
export function scriptFooterSql(p: { runId: number; migrationId: string; lockClass: number; batches: number }): string {
  return `DO $belay$
DECLARE
  n_restored bigint; n_already bigint; n_changed bigint; n_deleted bigint; n_left bigint; c record;
BEGIN
  SELECT coalesce(sum(restored), 0), coalesce(sum(already), 0), coalesce(sum(jsonb_array_length(changed)), 0), coalesce(sum(jsonb_array_length(deleted)), 0)
    INTO n_restored, n_already, n_changed, n_deleted FROM pg_temp.belay_rollback_result;
  IF to_regclass('belay.runs') IS NOT NULL THEN
    SELECT count(*) INTO n_left FROM belay.batches WHERE run_id = ${p.runId} AND rolled_back_at IS NULL;
    IF n_left = 0 THEN
      UPDATE belay.runs SET status = 'rolled_back', finished_at = clock_timestamp(),
             summary = summary || jsonb_build_object('rollback', jsonb_build_object('by', 'sql-script', 'restored', n_restored, 'conflictCount', n_changed + n_deleted, 'changed', n_changed, 'deleted', n_deleted))
       WHERE id = ${p.runId} AND status <> 'rolled_back';
    ELSE
      RAISE NOTICE 'belay: run ${p.runId} has % committed batch(es) this script does not cover (committed after it was made): roll them back with belay rollback ${p.runId}', n_left;
    END IF;
    INSERT INTO belay.events (run_id, type, data)
    VALUES (${p.runId}, 'rollback-script', jsonb_build_object('batches', ${p.batches}, 'restored', n_restored, 'alreadyRestored', n_already,
            'changed', n_changed, 'deleted', n_deleted, 'batchesLeft', n_left));
  END IF;
  RAISE NOTICE 'belay rollback of run ${p.runId}: % rows restored, % already restored, % changed since and % deleted since (left alone)', n_restored, n_already, n_changed, n_deleted;
  FOR c IN SELECT r.table_name, r.step_no, r.batch_no, k.key FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.changed) k(key)
            ORDER BY r.step_no, r.batch_no, k.key LIMIT 1000 LOOP
    RAISE NOTICE 'belay conflict: % key % (step %, batch %) changed since the migration: left alone', c.table_name, c.key, c.step_no, c.batch_no;
  END LOOP;
  -- a deleted row has nothing left to update: no rerun of this script brings it back, the run's backup holds it
  FOR c IN SELECT r.table_name, r.step_no, r.batch_no, k.key FROM pg_temp.belay_rollback_result r, jsonb_array_elements(r.deleted) k(key)
            ORDER BY r.step_no, r.batch_no, k.key LIMIT 1000 LOOP
    RAISE NOTICE 'belay deleted: % key % (step %, batch %) was deleted since the migration: not restored (its row as the run found it is in the run''s backup)', c.table_name, c.key, c.step_no, c.batch_no;
  END LOOP;
  PERFORM pg_advisory_unlock(${p.lockClass}, hashtext(${literal(p.migrationId)}));
END $belay$;
SELECT sum(restored)::bigint AS restored, sum(already)::bigint AS already_restored,
       sum(jsonb_array_length(changed))::bigint AS changed_since, sum(jsonb_array_length(deleted))::bigint AS deleted_since
  FROM pg_temp.belay_rollback_result;
SELECT r.table_name, r.step_no, r.batch_no, k.key AS conflict_key, k.kind
  FROM pg_temp.belay_rollback_result r,
       LATERAL (SELECT key, 'changed since' AS kind FROM jsonb_array_elements(r.changed) c(key)
                UNION ALL SELECT key, 'deleted since' FROM jsonb_array_elements(r.deleted) d(key)) k ORDER BY 2, 3, 5, 4;
`;
}

/** A step run with disableUserTriggers is restored the same way: its user triggers do not fire on the before-images either. */
export const REPLICA_ROLE_SQL = `SET LOCAL session_replication_role = replica`;
