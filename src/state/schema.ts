// belay's own state lives in schema "belay" of the target database, versioned here.
// Each entry upgrades from the previous version; never edit a released entry, append a new one.
import { type Db, transaction } from '../db/connection.ts';
import { ident, literal } from '../db/sql.ts';
import { DbError, serverFields } from '../errors.ts';
import { assertOwnSchemas, ownerOnly, SCHEMA_MARK } from './privileges.ts';

export const STATE_SCHEMA = 'belay';
/** The schema that holds every in-database backup copy (backup/); created here with the state schema. */
export const BACKUP_SCHEMA = 'belay_backup';
const SCHEMAS = [STATE_SCHEMA, BACKUP_SCHEMA] as const;

/** Serialises schema upgrades between concurrent belay processes (pg_advisory_xact_lock key). */
export const SCHEMA_LOCK_KEY = 1650814049; // 'bela' as int4

export const STATE_MIGRATIONS: ReadonlyArray<{ version: number; sql: string }> = [
  {
    version: 1,
    sql: `
CREATE TABLE belay.runs (
  id            bigserial PRIMARY KEY,
  migration_id  text NOT NULL,
  checksum      text NOT NULL,
  params        jsonb NOT NULL DEFAULT '{}',
  spec          jsonb NOT NULL,
  file          text,
  mode          text NOT NULL,               -- batched | single
  status        text NOT NULL,               -- running | completed | failed | paused | rolling_back | rolled_back | abandoned
  started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  finished_at   timestamptz,
  error         jsonb,
  summary       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX runs_migration_idx ON belay.runs (migration_id, id);
CREATE TABLE belay.steps (
  run_id        bigint NOT NULL REFERENCES belay.runs(id) ON DELETE CASCADE,
  step_no       int NOT NULL,
  name          text NOT NULL,
  kind          text NOT NULL,               -- batched | sql
  status        text NOT NULL,               -- pending | running | done | rolled_back
  rows_total    bigint,
  rows_done     bigint NOT NULL DEFAULT 0,
  rows_changed  bigint NOT NULL DEFAULT 0,
  last_key      text,                        -- checkpoint: the highest key of the last committed batch
  started_at    timestamptz,
  finished_at   timestamptz,
  PRIMARY KEY (run_id, step_no)
);
CREATE TABLE belay.batches (
  run_id        bigint NOT NULL,
  step_no       int NOT NULL,
  batch_no      int NOT NULL,
  lo            text NOT NULL,
  hi            text NOT NULL,
  rows_in_range int NOT NULL,
  rows_changed  int NOT NULL,
  duration_ms   real NOT NULL,
  attempts      int NOT NULL DEFAULT 1,
  committed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (run_id, step_no, batch_no),
  FOREIGN KEY (run_id, step_no) REFERENCES belay.steps(run_id, step_no) ON DELETE CASCADE
);
-- One undo record per batch: before- and after-images of the written columns, as jsonb arrays
-- of objects keyed by column name (restored with jsonb_populate_recordset on the table's row type).
CREATE TABLE belay.undo (
  run_id        bigint NOT NULL,
  step_no       int NOT NULL,
  batch_no      int NOT NULL,
  table_name    text NOT NULL,
  key_column    text NOT NULL,
  columns       text[] NOT NULL,
  row_count     int NOT NULL,
  before        jsonb NOT NULL,
  after         jsonb NOT NULL,
  rolled_back_at timestamptz,
  restored      int,
  conflicts     jsonb,
  PRIMARY KEY (run_id, step_no, batch_no),
  FOREIGN KEY (run_id, step_no) REFERENCES belay.steps(run_id, step_no) ON DELETE CASCADE
);
CREATE TABLE belay.events (
  id            bigserial PRIMARY KEY,
  run_id        bigint REFERENCES belay.runs(id) ON DELETE CASCADE,
  at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  type          text NOT NULL,
  data          jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_run_idx ON belay.events (run_id, id);
`,
  },
  {
    // verified table backups taken before a run's first write (src/backup)
    version: 2,
    sql: `
CREATE TABLE belay.backups (
  id            bigserial PRIMARY KEY,
  run_id        bigint REFERENCES belay.runs(id) ON DELETE SET NULL,
  migration_id  text,
  source_table  text NOT NULL,               -- the table as the spec names it
  copy_schema   text NOT NULL,               -- belay_backup
  copy_table    text NOT NULL,
  columns       jsonb NOT NULL,              -- [{name, type}] of the copy, in order
  key_columns   text[] NOT NULL DEFAULT '{}', -- the source's primary key when backed up (restore merges on it)
  row_count     bigint,
  checksum      text,                        -- order-independent checksum with pinned settings (see checksum_method)
  size_bytes    bigint,                      -- pg_total_relation_size of the copy
  file          text,                        -- gzip COPY export, when --backup-dir was given
  file_sha256   text,
  file_bytes    bigint,
  manifest      text,
  status        text NOT NULL,               -- verified | dropped
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  verified_at   timestamptz,
  restored_at   timestamptz,
  dropped_at    timestamptz
);
CREATE INDEX backups_run_idx ON belay.backups (run_id, id);
`,
  },
  {
    // pre-flight check results of each apply, with its run id (src/checks)
    version: 3,
    sql: `
CREATE TABLE belay.check_results (
  id            bigserial PRIMARY KEY,
  run_id        bigint NOT NULL REFERENCES belay.runs(id) ON DELETE CASCADE,
  checked_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  code          text NOT NULL,
  kind          text NOT NULL,               -- sql | orphans | unique-after | not-null | (skipped)
  severity      text NOT NULL,               -- error | warn | info
  outcome       text NOT NULL,               -- passed | found | blocked (error with rows) | skipped
  row_count     bigint NOT NULL,
  message       text,
  fix           text,
  sample        jsonb NOT NULL DEFAULT '[]',
  duration_ms   real
);
CREATE INDEX check_results_run_idx ON belay.check_results (run_id, id);
`,
  },
  {
    // dry runs and rehearsals: never real runs, recorded apart (src/plan)
    version: 4,
    sql: `
CREATE TABLE belay.trials (
  id            bigserial PRIMARY KEY,
  kind          text NOT NULL,               -- dry-run | rehearse
  migration_id  text NOT NULL,
  checksum      text NOT NULL,
  result        text NOT NULL,               -- pass | fail
  summary       jsonb NOT NULL DEFAULT '{}',
  at            timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX trials_migration_idx ON belay.trials (migration_id, id);
`,
  },
  {
    // post-run verification and monitoring rounds (src/verify, src/monitor)
    version: 6,
    sql: `
CREATE TABLE belay.verifications (
  id            bigserial PRIMARY KEY,
  run_id        bigint NOT NULL REFERENCES belay.runs(id) ON DELETE CASCADE,
  source        text NOT NULL,               -- apply | verify | monitor
  at            timestamptz NOT NULL DEFAULT clock_timestamp(),
  ok            boolean NOT NULL,
  duration_ms   real NOT NULL,
  alerts        jsonb                        -- monitor rounds: alerts raised and their webhook delivery
);
CREATE INDEX verifications_run_idx ON belay.verifications (run_id, id);
CREATE TABLE belay.verification_results (
  seq             bigserial PRIMARY KEY,
  verification_id bigint NOT NULL REFERENCES belay.verifications(id) ON DELETE CASCADE,
  run_id          bigint NOT NULL,
  name            text NOT NULL,
  kind            text NOT NULL,             -- writes | categories | constraints | spec | untouched | monitor
  result          text NOT NULL,             -- pass | fail | error | warn | skipped
  count           int NOT NULL,
  threshold       int,
  message         text,
  sample          jsonb NOT NULL DEFAULT '[]',
  error           jsonb
);
CREATE INDEX verification_results_round_idx ON belay.verification_results (verification_id);
`,
  },
  {
    // backups record how their checksum was computed: rows from before stay NULL (the text checksum)
    version: 7,
    sql: `
ALTER TABLE belay.backups ADD COLUMN checksum_method text;
ALTER TABLE belay.backups ALTER COLUMN checksum_method SET DEFAULT 'typed';
`,
  },
  {
    // decided once, written in batches (src/state/decision.ts): the registry of a run's decisions, the
    // xid of every batch (the row version it wrote, rollback's fence), rounds, and rollback per batch
    version: 8,
    sql: `
CREATE TABLE belay.decisions (
  run_id        bigint NOT NULL REFERENCES belay.runs(id) ON DELETE CASCADE,
  step_no       int NOT NULL,
  relation      text NOT NULL,               -- belay."decision_r<run>_s<step>"
  table_name    text NOT NULL,
  key_column    text NOT NULL,
  key_type      text NOT NULL,
  columns       text[] NOT NULL,             -- the written columns, in the order of n0/o0, n1/o1, …
  row_count     bigint NOT NULL,             -- rows decided (all rounds)
  checksum      text NOT NULL,               -- of the decision as first made (typed, order-independent)
  rounds        int NOT NULL DEFAULT 0,      -- catch-up rounds run after the decision
  decided_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  status        text NOT NULL DEFAULT 'live', -- live | dropped
  fence         boolean NOT NULL DEFAULT false, -- a trigger records who else writes the written columns
  PRIMARY KEY (run_id, step_no)
);
ALTER TABLE belay.steps ADD COLUMN round int NOT NULL DEFAULT 0;
ALTER TABLE belay.batches ADD COLUMN round int NOT NULL DEFAULT 0;
ALTER TABLE belay.batches ADD COLUMN xid xid8;
ALTER TABLE belay.batches ADD COLUMN rows_skipped int NOT NULL DEFAULT 0;
ALTER TABLE belay.batches ADD COLUMN rolled_back_at timestamptz;
ALTER TABLE belay.batches ADD COLUMN restored int;
ALTER TABLE belay.batches ADD COLUMN conflicts jsonb;
ALTER TABLE belay.batches ADD COLUMN rollback_xid xid8;
`,
  },
  {
    // control of a running apply from another terminal (belay pause | resume | abort | tune)
    version: 9,
    sql: `
CREATE TABLE belay.controls (
  id            bigserial PRIMARY KEY,
  run_id        bigint NOT NULL REFERENCES belay.runs(id) ON DELETE CASCADE,
  command       text NOT NULL,               -- pause | resume | abort | abort-rollback | tune
  settings      jsonb NOT NULL DEFAULT '{}', -- tune: targetMs, maxLockWaiters, maxTransactionAgeMs, maxReplicationLagMs
  requested_by  jsonb NOT NULL,              -- role, application, client address, OS user and host of the asker
  requested_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  seen_at       timestamptz                  -- when the running apply took it
);
CREATE INDEX controls_unseen ON belay.controls (run_id) WHERE seen_at IS NULL;
`,
  },
  {
    // parallel key-range workers (apply --workers N): a round split into disjoint key ranges, each with its
    // own checkpoint. Runs of earlier versions have no ranges and resume from steps.last_key as before.
    version: 10,
    sql: `
CREATE TABLE belay.ranges (
  run_id        bigint NOT NULL,
  step_no       int NOT NULL,
  round         int NOT NULL,
  worker        int NOT NULL,                -- 0 … N-1, in key order
  after_key     text,                        -- the range starts after this key (NULL: at the round's first)
  upper_key     text,                        -- its last key, inclusive (NULL: to the round's last)
  last_key      text,                        -- checkpoint: the highest key of the worker's last committed batch
  done          boolean NOT NULL DEFAULT false,
  PRIMARY KEY (run_id, step_no, round, worker),
  FOREIGN KEY (run_id, step_no) REFERENCES belay.steps(run_id, step_no) ON DELETE CASCADE
);
`,
  },
  {
    // the rows decided in the pre-flight's snapshot, kept apart from row_count (all rounds): a catch-up round
    // that decides a row again moves it to its round, and the post-run expected-changes compares with these
    version: 11,
    sql: `
ALTER TABLE belay.decisions ADD COLUMN first_rows bigint;
UPDATE belay.decisions SET first_rows = row_count WHERE rounds = 0;
`,
  },
];

export const STATE_VERSION = STATE_MIGRATIONS[STATE_MIGRATIONS.length - 1]!.version;

/**
 * Creates or upgrades schema belay (and belay_backup) to STATE_VERSION. Idempotent and safe to race.
 * Every call first refuses schemas of those names that belay did not create for this role, or that grant
 * anything to another role (state/privileges.ts); what belay creates is readable by its owner only.
 */
export async function ensureState(db: Db): Promise<number> {
  if (ready.has(db)) return STATE_VERSION;
  const audits = await assertOwnSchemas(db, SCHEMAS);
  const applied = await appliedVersions(db);
  if (audits.length === SCHEMAS.length && STATE_MIGRATIONS.every((m) => applied.has(m.version))) {
    ready.add(db);
    return STATE_VERSION;
  }
  return transaction(db, async () => {
    await db.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    // another session may have created them since the audit: look again under the lock
    const existing = new Set((await assertOwnSchemas(db, SCHEMAS)).map((a) => a.schema));
    for (const schema of SCHEMAS) {
      if (existing.has(schema)) continue;
      await createSchema(db, schema);
    }
    await db.query(`CREATE TABLE IF NOT EXISTS belay.state_version (version int NOT NULL)`);
    // every entry not yet recorded, in order: versions are a set, not a high-water mark
    const done = await appliedVersions(db);
    for (const m of STATE_MIGRATIONS) {
      if (done.has(m.version)) continue;
      await db.exec(m.sql);
      await db.query(`INSERT INTO belay.state_version (version) VALUES ($1)`, [m.version]);
    }
    // default privileges set for the whole database gave the new tables and sequences to others too
    await ownerOnly(db, STATE_SCHEMA);
    return STATE_VERSION;
  });
}

/** Sessions whose schemas passed the audit at the current version: one audit per session, not per call. */
const ready = new WeakSet<Db>();

/** A schema of belay's, marked as such, with every privilege default privileges gave to others taken back. */
async function createSchema(db: Db, schema: string): Promise<void> {
  // asked first: after a failed statement the transaction answers nothing more
  const me = (await db.query<{ role: string; database: string }>(`SELECT current_user::text AS role, current_database()::text AS database`)).rows[0]!;
  try {
    await db.query(`CREATE SCHEMA ${ident(schema)}`);
  } catch (err) {
    if (serverFields(err).sqlstate !== '42501') throw err;
    throw new DbError(
      `role "${me.role}" may not create schemas in database "${me.database}", and belay keeps its state in schemas ${SCHEMAS.join(' and ')}: ${(err as Error).message}. Nothing was written and no run was started`,
      serverFields(err),
      {
        code: 'BELAY_PRIVILEGE',
        cause: err,
        fix: `Grant it once: GRANT CREATE ON DATABASE ${ident(me.database)} TO ${ident(me.role)}; (or have the database owner create the schemas with belay's first run), then run the command again.`,
      },
    );
  }
  await db.query(`COMMENT ON SCHEMA ${ident(schema)} IS ${literal(SCHEMA_MARK)}`);
  await ownerOnly(db, schema);
}

async function appliedVersions(db: Db): Promise<Set<number>> {
  const r = await db.query<{ exists: boolean }>(`SELECT to_regclass('belay.state_version') IS NOT NULL AS exists`);
  if (!r.rows[0]?.exists) return new Set();
  const v = await db.query<{ version: number }>(`SELECT version FROM belay.state_version`);
  return new Set(v.rows.map((x) => Number(x.version)));
}

/** 0 when belay has never run on this database. */
export async function stateVersion(db: Db): Promise<number> {
  const r = await db.query<{ exists: boolean }>(`SELECT to_regclass('belay.state_version') IS NOT NULL AS exists`);
  if (!r.rows[0]?.exists) return 0;
  const v = await db.query<{ v: number | null }>(`SELECT max(version)::int AS v FROM belay.state_version`);
  return v.rows[0]?.v ?? 0;
}
