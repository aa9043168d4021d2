// The registry of every BelayError code: its exit code, what it means and what to do. A BelayError's
// exit code is looked up here and nowhere else; the runbook's troubleshooting guide renders it.

/** The process exit codes the CLI returns (README "Exit codes"). */
export const EXIT = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  spec: 3,
  connection: 4,
  locked: 5,
  checks: 6,
  verification: 7,
  state: 8,
  database: 9,
  aborted: 10,
  conflicts: 11,
  files: 12,
  /** Stopped by Ctrl-C (SIGINT, 128 + 2): the current batch committed or rolled back, the run paused. */
  interrupted: 130,
  /** Stopped by SIGTERM (128 + 15), as interrupted. */
  terminated: 143,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export interface ErrorCodeInfo {
  /** The stable code carried by BelayError.code. */
  readonly code: string;
  /** The process exit code the CLI returns for it. */
  exitCode: ExitCode;
  /** What happened, one sentence. */
  meaning: string;
  /** What the user does about it, one or two sentences. */
  whatToDo: string;
}

export const ERROR_CODES = Object.freeze([
  {
    code: 'BELAY_USAGE',
    exitCode: EXIT.usage,
    meaning: 'The command line is wrong: an unknown option, a missing argument or a value of the wrong form.',
    whatToDo: 'Read the message and `belay <command> --help`, then run the command again. Nothing was changed.',
  },
  {
    code: 'BELAY_SPEC',
    exitCode: EXIT.spec,
    meaning: 'The migration file cannot be loaded or does not validate (a field, a table, a column or its SQL).',
    whatToDo: 'Correct the field the message names in the migration file. Nothing was changed in the database.',
  },
  {
    code: 'BELAY_CONNECTION',
    exitCode: EXIT.connection,
    meaning: 'The database cannot be reached, or its URL is not supported.',
    whatToDo: 'Check --db / DATABASE_URL (postgres://… or pglite:<dir>), the network and the credentials.',
  },
  {
    code: 'BELAY_LOCKED',
    exitCode: EXIT.locked,
    meaning: 'Another belay run of the same migration holds its advisory lock.',
    whatToDo: 'Wait for it (belay status), or pass --wait to queue behind it. Never run two copies by hand.',
  },
  {
    code: 'BELAY_CHECKS',
    exitCode: EXIT.checks,
    meaning: 'A pre-flight check of severity error found offending rows; nothing was written.',
    whatToDo: 'Read the findings (belay check), fix the rows or the migration, and check again.',
  },
  {
    code: 'BELAY_CHECK_SQL',
    exitCode: EXIT.spec,
    meaning:
      "The migration's SQL is wrong: a step's rule (decide or projection) or verification that does not plan (a typo, an alias that does not match writes, a missing key column, a value its column does not take, a generated column), a pre-flight check whose SQL fails at run time, or a plain-SQL step that fails when belay check runs it (rolled back) to see what it creates.",
    whatToDo: 'Read the step or check, the spec field and the line/column shown, correct the migration and run belay check again. Nothing was changed.',
  },
  {
    code: 'BELAY_VERIFY',
    exitCode: EXIT.verification,
    meaning: 'An in-batch or post-run verification returned rows; an in-batch failure rolled its batch back.',
    whatToDo: 'Read the sample rows in the error, fix the projection or the data, then resume (belay apply) or roll back (belay rollback <run>).',
  },
  {
    code: 'BELAY_MONITOR_ALERT',
    exitCode: EXIT.verification,
    meaning: 'belay monitor: a monitor check returned more rows than its alertAbove, or a check errored; the window ended after that round.',
    whatToDo: 'Read the alert (stderr, webhook, belay report), look at the rows with belay verify <run>, fix them or roll the run back.',
  },
  {
    code: 'BELAY_SPEC_CHANGED',
    exitCode: EXIT.state,
    meaning: 'A run stopped part-way with another version of the migration; resuming with a changed spec is refused.',
    whatToDo: 'Restore the migration as it was to resume, or roll the partial run back first (belay rollback <run>).',
  },
  {
    code: 'BELAY_ROLLBACK_UNFINISHED',
    exitCode: EXIT.state,
    meaning: 'The latest run of this migration is part-way through a rollback.',
    whatToDo: 'Finish it first: belay rollback <run> (it resumes where it stopped).',
  },
  {
    code: 'BELAY_ALREADY_APPLIED',
    exitCode: EXIT.state,
    meaning: 'The latest run of this migration completed; applying it again is refused.',
    whatToDo: 'Nothing to do. To apply it again, roll it back first or pass --again.',
  },
  {
    code: 'BELAY_STATE_SCHEMA',
    exitCode: EXIT.state,
    meaning:
      "Schema belay or belay_backup exists but belay did not create it for this role: another role owns it, it is not marked as belay's, it holds other roles' objects, or it grants privileges to other roles (who could read the undo log and the backups).",
    whatToDo:
      'Run the statements the message gives (rename the schema, run belay as its owner, or REVOKE the grants as its owner), then run the command again. Nothing was written.',
  },
  {
    code: 'BELAY_LEGACY_UNDO',
    exitCode: EXIT.state,
    meaning: 'The run was applied by an earlier belay whose undo log kept images as JSON; this version does not replay it.',
    whatToDo: 'Roll it back with the belay version that applied it, or restore its tables from the backup (belay rollback <run> --from-backup).',
  },
  {
    code: 'BELAY_RUN_NOT_ACTIVE',
    exitCode: EXIT.state,
    meaning: 'belay pause, resume, abort or tune was asked of a run that no belay apply is running now (it finished, failed, or its process is gone).',
    whatToDo: 'See belay status. A stopped run goes on with belay apply <migration> (it resumes); a finished one is undone with belay rollback <run>.',
  },
  {
    code: 'BELAY_DECISION_DROPPED',
    exitCode: EXIT.state,
    meaning: "The run's decision, which holds the before-images its rollback restores, was dropped by belay cleanup after the monitoring window.",
    whatToDo: 'Restore the tables from the backup instead (belay rollback <run> --from-backup), or write the reverse as a new migration.',
  },
  {
    code: 'BELAY_KEY',
    exitCode: EXIT.spec,
    meaning:
      "A batched step's key cannot tell its rows apart: the table has no primary key (nor a key: naming a unique NOT NULL column), its primary key is composite and no key: names a single column, or the declared key: has no unique index over exactly it or is not NOT NULL.",
    whatToDo: 'Name with key: a NOT NULL column that has a unique index of its own (the message lists them), or add a primary key. Nothing was changed.',
  },
  {
    code: 'BELAY_NO_RUN',
    exitCode: EXIT.state,
    meaning: 'The run id is not recorded in this database.',
    whatToDo: 'List runs with belay status, and check --db points at the database the run used.',
  },
  {
    code: 'BELAY_IRREVERSIBLE',
    exitCode: EXIT.state,
    meaning: 'A rollback reached a plain SQL step that declares down: null.',
    whatToDo: "Restore its tables from the run's backup (belay rollback <run> --from-backup) or undo it by hand.",
  },
  {
    code: 'BELAY_NO_BACKUP',
    exitCode: EXIT.state,
    meaning: 'The backup id is not recorded in this database.',
    whatToDo: 'List backups with belay backups list.',
  },
  {
    code: 'BELAY_BACKUP_FILES',
    exitCode: EXIT.files,
    meaning:
      'A backup file (--backup-dir, belay backups archive) could not be written: the disk is full, a folder is missing or read-only, permission denied. Partial files were removed and the backups are marked unverified; nothing was written to the tables.',
    whatToDo:
      'Free space or fix the folder (or choose another --backup-dir), then run the same belay apply again: the run resumes and exports the files anew from the verified in-database copies.',
  },
  {
    code: 'BELAY_BACKUP_NO_FILE',
    exitCode: EXIT.state,
    meaning: 'A restore from file was asked for a backup that has no file (or a connection that cannot load COPY files).',
    whatToDo: 'Restore from the in-database copy instead.',
  },
  {
    code: 'BELAY_BACKUP_DROPPED',
    exitCode: EXIT.state,
    meaning: 'The in-database copy of a backup was dropped (retention or by hand).',
    whatToDo: 'Restore from its file if it was exported (--from file); otherwise no copy is left.',
  },
  {
    code: 'BELAY_BACKUP_UNVERIFIED',
    exitCode: EXIT.verification,
    meaning: 'A backup does not match its source (row count or checksum), or was never verified; the run does not start on it.',
    whatToDo: 'Take the backup again; find out what changed the table while it was copied.',
  },
  {
    code: 'BELAY_BACKUP_SCHEMA_CHANGED',
    exitCode: EXIT.state,
    meaning: "The table of a backup no longer exists or no longer has the backup's columns.",
    whatToDo: 'Recreate the table with the columns the message lists, then restore again.',
  },
  {
    code: 'BELAY_RESTORE_CYCLE',
    exitCode: EXIT.state,
    meaning: 'The tables to restore reference each other in a cycle of foreign keys that are not deferrable, so no order restores them one after the other.',
    whatToDo: 'Nothing was changed. Make one of the named foreign keys DEFERRABLE, or restore the backups one at a time (belay backups restore).',
  },
  {
    code: 'BELAY_RESTORE_BLOCKED',
    exitCode: EXIT.state,
    meaning:
      'A constraint refused a statement of a restore (a foreign key into or out of a table not restored, a unique index), so the restore was rolled back.',
    whatToDo: 'Nothing was changed. Read the table, the constraint and the detail in the message; restore the other table too, or put its rows back first.',
  },
  {
    code: 'BELAY_RESTORE_MISMATCH',
    exitCode: EXIT.verification,
    meaning: "A restore did not reproduce the backup's row count and checksum, so it was rolled back.",
    whatToDo: 'Nothing was changed. Look for rules or triggers that alter inserted rows, then verify the backup.',
  },
  {
    code: 'BELAY_PLAN_STALE',
    exitCode: EXIT.state,
    meaning:
      "A plan file no longer matches: the migration changed, a touched table's columns, indexes or constraints changed, or a row count drifted beyond the threshold.",
    whatToDo: 'Make a new plan (belay plan <migration> -o plan.json), or raise --max-drift when the counts are expected to move. Nothing was written.',
  },
  {
    code: 'BELAY_PLAN_FILE',
    exitCode: EXIT.usage,
    meaning: 'The plan file cannot be read or was made by another plan format version.',
    whatToDo: 'Make the plan again with this version of belay.',
  },
  {
    code: 'BELAY_TEMP_INDEX',
    exitCode: EXIT.state,
    meaning: 'A temporary index (tempIndexes) could not be built, or CREATE INDEX CONCURRENTLY left it invalid; it was dropped.',
    whatToDo: 'Check the index definition and the server load, then run again (the run resumes).',
  },
  {
    code: 'BELAY_REHEARSE_LIVE_RUN',
    exitCode: EXIT.state,
    meaning:
      'A rehearsal was asked where the migration already has a run that is not rolled back (completed, paused, failed or running): a rehearsal applies and rolls back a run of its own, never another.',
    whatToDo: 'Rehearse on a copy where the migration has not run (staging), or roll that run back first (belay rollback <run>).',
  },
  {
    code: 'BELAY_PROTECTED',
    exitCode: EXIT.state,
    meaning:
      'The environment is protected: this exact version of the migration lacks a passed rehearsal elsewhere or a passed dry run there (or it is a rehearsal on the protected environment itself).',
    whatToDo: 'Rehearse on staging and dry-run on the environment, or pass --override "<reason>" (recorded in the ledger).',
  },
  {
    code: 'BELAY_CONFIG',
    exitCode: EXIT.usage,
    meaning:
      'belay.config.json is malformed (the message names the field), names no such environment, or an environment URL reads a variable that is not set; or ./.env and prisma/.env give one variable two values.',
    whatToDo: 'Fix the file or the --env name, set the variable the URL names, or keep each variable in one .env file.',
  },
  {
    code: 'BELAY_DB',
    exitCode: EXIT.database,
    meaning: 'SQL failed on the server; the error keeps its SQLSTATE, detail, constraint and table.',
    whatToDo: 'Read the SQLSTATE and detail. A failed batch was rolled back; fix the cause and run belay apply again to resume.',
  },
  {
    code: 'BELAY_LOCK_TIMEOUT',
    exitCode: EXIT.database,
    meaning:
      'A batch could not take its row locks within lock_timeout in every attempt (or kept meeting deadlocks or serialization failures); the message gives the count and the sessions holding locks on the tables.',
    whatToDo:
      'Let the holder finish or end it (pg_terminate_backend(<pid>)), or raise options.lockTimeoutMs / maxRetries, then run the same belay apply again: the run resumes from its last checkpoint.',
  },
  {
    code: 'BELAY_PRIVILEGE',
    exitCode: EXIT.database,
    meaning:
      'The role belay runs as lacks a privilege a step needs (SQLSTATE 42501: CREATE on the database or a schema, UPDATE on a table, ownership for CREATE INDEX).',
    whatToDo: 'Run the GRANT the message gives (or run belay as the owner of the tables), then the same belay apply again: the run resumes.',
  },
  {
    code: 'BELAY_DISK_FULL',
    exitCode: EXIT.database,
    meaning: 'The database server ran out of disk space (SQLSTATE 53100); the failed batch was rolled back.',
    whatToDo: 'Free space on the server (or the tablespace), then run the same belay apply again: the run resumes from its last checkpoint.',
  },
  {
    code: 'BELAY_ABORTED',
    exitCode: EXIT.aborted,
    meaning: 'An abort trigger of the migration fired (pause or rollback) and stopped the run.',
    whatToDo: 'Read belay report <run> for the trigger and the batch; resume with belay apply after fixing the cause, or roll back.',
  },
  {
    code: 'BELAY_INTERRUPTED',
    exitCode: EXIT.interrupted,
    meaning:
      'The command was stopped by Ctrl-C or SIGTERM (exit 130 or 143): the batch in flight committed or rolled back, the run was left paused (a rollback: part-way), no transaction or lock held.',
    whatToDo: 'Run the command the message gives (the same belay apply, or belay rollback <run>): it goes on from the last committed batch.',
  },
  {
    code: 'BELAY_PRISMA_DIR',
    exitCode: EXIT.usage,
    meaning: 'belay prisma: the migrations folder does not exist, or one of its folders has no readable migration.sql.',
    whatToDo: 'Run from the project root (default prisma/migrations) or pass the folder; restore the missing migration.sql. Nothing was changed.',
  },
  {
    code: 'BELAY_PRISMA_PROVIDER',
    exitCode: EXIT.spec,
    meaning: 'belay prisma: migration_lock.toml names a provider other than postgresql.',
    whatToDo: 'Point belay at the migrations of a PostgreSQL datasource.',
  },
  {
    code: 'BELAY_PRISMA_LOCKED',
    exitCode: EXIT.locked,
    meaning:
      "belay prisma deploy: another session holds Prisma's migration lock (pg_advisory_lock(72707369)), a prisma migrate deploy or another belay prisma deploy.",
    whatToDo: 'Wait for it to finish, or raise --lock-wait. Nothing was changed.',
  },
  {
    code: 'BELAY_PRISMA_FAILED_MIGRATION',
    exitCode: EXIT.state,
    meaning: 'belay prisma deploy: _prisma_migrations records a failed migration, which prisma migrate deploy refuses too (P3009).',
    whatToDo: 'Repair what the failed migration left, run `prisma migrate resolve --rolled-back <name>` (or --applied), then deploy again.',
  },
  {
    code: 'BELAY_PRISMA_DELETE_INTERRUPTED',
    exitCode: EXIT.state,
    meaning:
      'belay prisma deploy: an earlier deploy of this migration stopped between the batches of a DELETE; the rows it had deleted are kept in its undo table in belay_backup.',
    whatToDo: 'Put the rows back with the INSERT the message shows and drop the undo table (or drop it if they are meant to stay deleted), then deploy again.',
  },
  {
    code: 'BELAY_PRISMA_BASELINE',
    exitCode: EXIT.state,
    meaning: "belay prisma deploy: the schema has tables but no _prisma_migrations (Prisma's P3005).",
    whatToDo: 'Baseline the database with `prisma migrate resolve --applied <name>` for the migrations it already has.',
  },
  {
    code: 'BELAY_PRISMA_PREDICTED_FAILURE',
    exitCode: EXIT.checks,
    meaning: 'belay prisma deploy: the check predicts that a pending statement fails; nothing was run.',
    whatToDo: 'Run belay prisma check for the offending rows and the fix of each finding, correct the data or the migration, and deploy again.',
  },
  {
    code: 'BELAY_PRISMA_DEPLOY_FAILED',
    exitCode: EXIT.database,
    meaning: 'belay prisma deploy: a statement failed; its migration was rolled back, its index builds dropped, and no _prisma_migrations row was written.',
    whatToDo: 'Read the SQLSTATE and the statement; fix the cause and deploy again (migrations applied before it stay applied).',
  },
  {
    code: 'BELAY_PRISMA_FOLLOW_UP',
    exitCode: EXIT.database,
    meaning:
      'belay prisma deploy: a migration is applied and recorded, but a step after its commit (VALIDATE CONSTRAINT, SET NOT NULL) failed; the constraint stays NOT VALID.',
    whatToDo: 'Fix the rows the error names, then run the SQL of the failed step yourself; later migrations were not run.',
  },
  {
    code: 'BELAY_INTERNAL',
    exitCode: EXIT.unexpected,
    meaning: 'An unexpected error inside belay.',
    whatToDo: 'Run again with BELAY_DEBUG=1 for the stack; a batch that failed was rolled back and the run can resume.',
  },
] as const satisfies readonly ErrorCodeInfo[]);

/** Every code belay reports: a BelayError takes only these. */
export type ErrorCode = (typeof ERROR_CODES)[number]['code'];

const BY_CODE: ReadonlyMap<string, ErrorCodeInfo> = new Map(ERROR_CODES.map((e) => [e.code, e]));

/** The exit code of an error code, from the registry. */
export function exitCodeOf(code: ErrorCode): ExitCode {
  return BY_CODE.get(code)!.exitCode;
}

/** The registry entry for a code, or undefined for a code belay does not know. */
export function errorCodeInfo(code: string): ErrorCodeInfo | undefined {
  return BY_CODE.get(code);
}
