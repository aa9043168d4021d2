-- The application of the load scenario (reliability/scenarios/load.ts), installed in each trial's database.
-- Every write of the pgbench scripts next to this file logs itself into app_audit in the same statement, so
-- afterwards each one can be proven present, and each write of "userId" records where belay stood at that
-- moment: the oracle the conflicts belay reports are compared with.
CREATE TABLE app_audit (
  seq     bigserial PRIMARY KEY,
  phase   int NOT NULL,                   -- 0 baseline (belay not running), 1 during apply, 2 during rollback
  op      text NOT NULL,                  -- title | assign | transfer | insert | rename | link-add | link-del
  k       int NOT NULL,                   -- "EventType".id, or the link's "A"
  b       int,                            -- the link's "B"
  col     text,                           -- the "EventType" column written (NULL for links)
  val     text,                           -- its value as written
  covered boolean NOT NULL DEFAULT false, -- belay's batch for the row (its round) had committed
  held    boolean NOT NULL DEFAULT false, -- ... had written the row, and that batch was not rolled back yet
  decided text,                           -- the row's decision then: NULL (none visible), pending, or why it was skipped
  at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
-- Rows the migration decides to write (from the reference contract, before the run) with their owner by the
-- rule and slug: owner assignments and transfers pick among them.
CREATE TABLE app_assign (i int PRIMARY KEY, id int NOT NULL, owner int NOT NULL, slug text NOT NULL);
-- Decided rows and a slug their owner already has: renaming one makes belay's write of it collide on
-- "EventType_userId_slug_key".
CREATE TABLE app_rename (i int PRIMARY KEY, id int NOT NULL, slug text NOT NULL);
CREATE TABLE app_user (i int PRIMARY KEY, id int NOT NULL);

-- Where belay stands for row k, read inside the application's transaction after its UPDATE locked the row:
-- a batch that writes k cannot commit in between (it needs that lock), nor can the rollback of one (it locks
-- the batch's rows first). VOLATILE: each query takes a fresh snapshot, newer than the UPDATE's. Run 1, step 0:
-- each trial's database is a fresh copy, so the run is the first.
CREATE FUNCTION app_belay_state(k int, OUT covered boolean, OUT held boolean, OUT decided text) LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  covered := false;
  held := false;
  decided := NULL;
  IF to_regclass('belay.batches') IS NULL OR to_regclass('belay.decision_r1_s0') IS NULL THEN
    RETURN;
  END IF;
  EXECUTE 'SELECT EXISTS (SELECT 1 FROM belay.decision_r1_s0 d JOIN belay.batches b ON b.run_id = 1 AND b.step_no = 0 AND b.round = d.round
                           AND d.k BETWEEN b.lo::int AND b.hi::int WHERE d.k = $1),
                  EXISTS (SELECT 1 FROM belay.decision_r1_s0 d JOIN belay.batches b ON b.run_id = 1 AND b.step_no = 0 AND b.round = d.round
                           AND d.k BETWEEN b.lo::int AND b.hi::int WHERE d.k = $1 AND d.skipped IS NULL AND b.rolled_back_at IS NULL)'
    INTO covered, held USING k;
  EXECUTE 'SELECT coalesce(skipped, ''pending'') FROM belay.decision_r1_s0 WHERE k = $1' INTO decided USING k;
END $$;
