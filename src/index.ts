// belay's library: everything the CLI does, code can do. Only the public API is exported here; the
// stage folders' internals are not part of it.

// Writing and loading a migration
/** Identity with types for a migration module's default export. */
export { defineMigration, migrationSchema } from './spec/define.ts';
/** The spec types: a migration, its steps and checks. */
export type { BatchedStep, Check, Migration, MigrationInput, MigrationParams, SqlStep, Step } from './spec/define.ts';
/** Loads a migration file or folder, validates it with zod and parses every SQL text with the PostgreSQL parser. */
export { type LoadedMigration, loadMigration, validate } from './spec/load.ts';

// Databases
/** Opens postgres://… (pg) or pglite:<dir> / pglite:memory (PGlite) behind one narrow interface. */
export { type Db, openDb, type QueryResult, type Row } from './db/connection.ts';
/** A connection string with its password masked: safe to print. */
export { redactUrl } from './db/redact.ts';
/** Order-independent checksum of a table's rows under pinned text settings. */
export { checksumTable, type TableChecksum } from './db/checksum.ts';
/** What the catalog knows of a table the migration writes: keys, unique indexes, foreign keys, checks, triggers, types. */
export { type CatalogFacts, catalogFacts } from './db/catalog-facts.ts';
/** What the database does on a migration's writes (triggers, foreign-key actions, cascades, keys): the notes check, plan and runbook show. */
export { type IndirectTable, type StepFacts, stepFacts, type StepNote } from './spec/step-facts.ts';

// The pipeline
/** belay apply: check → backup → batches → verify, resumable, with the result of every step. */
export { applyStages, type CleanupResult, cleanupRun, plan, type SafeApplyOptions, safeApply } from './run/pipeline.ts';
/** What a run did, what a stage sees. */
export type { BatchController, BatchRecord, RunContext, RunResult, Stage, StepResult } from './contract.ts';
/** belay dry-run: every batch run and rolled back; the expected changes. */
export { type DryRunOptions, type DryRunResult, type DryRunStep, dryRun } from './run/dry-run.ts';
/** belay rehearse: apply, verify, roll back, prove by checksums the data is back. */
export { type RehearseOptions, type RehearseResult, rehearse, type TableEvidence } from './run/rehearse.ts';

// Before
/** belay check: the read-only pre-flight. */
export { type CheckFinding, type CheckReport, type RunChecksOptions, runChecks } from './checks/run-checks.ts';
/** The pre-flight results recorded with a run. */
export { checkResults, type StoredCheckResult } from './checks/preflight.ts';
/** belay plan: sizes, EXPLAIN, calibration, batch size and expected time; the plan file. */
export { assertPlanCurrent, type Plan, type PlanOptions, readPlanFile, writePlanFile } from './plan/plan.ts';
/** Verified backups: take, verify, list, drop, restore, archive. */
export { type BackupRecord, dropBackup, getBackup, listBackups, takeBackup, verifyBackup } from './backup/backup.ts';
/** Restore a backup into its table (foreign-key order, a preview of every row it deletes, cascades included). */
export {
  type CascadeEffect,
  previewEffects,
  previewRestore,
  type RestoreEffects,
  type RestoreOptions,
  type RestoreResult,
  restoreBackup,
} from './backup/restore.ts';
/** Which tables a migration writes and which it only reads (what is backed up and restored by default). */
export { type TableRoles, tableRoles } from './spec/written-tables.ts';
/** Backups archived to files, copies past their retention dropped. */
export { type ArchiveOptions, type ArchiveResult, archiveBackups } from './backup/archive.ts';

// After
/** belay verify: the post-run verification, recorded as a round. */
export { verify } from './run/pipeline.ts';
/** A verification round: every check with its result. */
export type { VerifyCheck, VerifyOptions, VerifyResult } from './verify/verify.ts';
/** The recorded verification rounds of a run. */
export { getRounds, type RoundRecord } from './verify/record.ts';
/** belay monitor: the monitoring window with its alerts. */
export { type Alert, type MonitorOptions, type MonitorResult, monitorRun } from './verify/monitor.ts';
/** belay pause | resume | abort | tune: a command for the apply running a run, from any process. */
export { type Asker, controlRun, localAsker, type TuneSettings } from './run/control.ts';
/** belay watch: the live dashboard (node:http, 127.0.0.1 by default). */
export { type RunView, runView } from './watch/snapshot.ts';
/** The dashboard server (start, address, stop). */
export { startWatch, type WatchOptions, type WatchServer } from './watch/server.ts';
/** belay rollback: exact undo, the standalone psql script, or the tables from their backups. */
export { type RollbackOptions, type RollbackResult, rollback } from './rollback/rollback.ts';
/** belay rollback --sql: the undo as a standalone psql script covering the batches it names. */
export { type RollbackScriptOptions, type RollbackScriptResult, rollbackScript } from './rollback/rollback-script.ts';
/** belay rollback --from-backup: the written tables back from their backups, previewed first. */
export { type BackupRollbackPreview, type BackupRollbackResult, previewRollbackFromBackup, rollbackFromBackup } from './backup/restore-run.ts';
/** Which steps of a migration can be undone, and how. */
export { type Reversibility, reversibility } from './rollback/reversibility.ts';

// Documents
/** belay runbook and belay report (Markdown, JSON data, self-contained HTML). */
export { buildReport, report, runbook, writeRunDocs } from './run/documents.ts';
/** The report as data and as Markdown. */
export { renderReportMarkdown, type ReportOptions, type RunReport } from './report/report.ts';
/** Options of the runbook. */
export type { RunbookOptions } from './report/runbook.ts';
/** The report as one self-contained HTML page. */
export { renderReportHtml } from './report/html.ts';
/** The files writeRunDocs wrote (RUNBOOK.md, REPORT.md, report.html). */
export type { RunDocs } from './report/write-docs.ts';

// Prisma projects
/** belay prisma check: predicts from the live data whether pending prisma/migrations will fail. */
export { prismaCheck, type PrismaCheckOptions, type PrismaCheckReport } from './prisma/check.ts';
/** belay prisma deploy: runs the pending migrations the safe way and records them as Prisma does. */
export type { PrismaDeployOptions, PrismaDeployResult } from './prisma/deploy.ts';
/** belay prisma deploy with belay's own apply for large UPDATE and DELETE statements. */
export { prismaDeploy, type PrismaDeployRunOptions } from './run/prisma-deploy.ts';
/** Every finding code of belay prisma check, with its meaning and fix. */
export { FINDINGS as PRISMA_FINDINGS, type FindingCode as PrismaFindingCode } from './prisma/predictors/registry.ts';

// State, configuration, events, errors
/** Runs recorded in a database. */
export { getRun, listRuns, type RunRecord } from './state/runs.ts';
/** Named environments (belay.config.json) and the ledger of trials and applies. */
export { type Ledger, ledgerFor, loadProjectConfig, type ProjectConfig, resolveEnvironment } from './config/environments.ts';
/** belay.config.json's zod schema (published as schemas/belay.config.schema.json). */
export { type ConfigInput, configSchema } from './config/config-schema.ts';
/** ./.env, then prisma/.env, into the process environment as Prisma reads them (the real environment wins). */
export { type EnvFilesResult, loadEnvFiles } from './config/env-file.ts';
/** The project's migrations folder: find a migration by path, folder name or id; belay status's states. */
export { findMigration, listMigrationFiles, type MigrationState, type MigrationStatus, migrationStatus } from './run/migrations.ts';
/** belay init and belay new. */
export { initProject, newMigration, type ScaffoldAction } from './run/scaffold.ts';
/** The typed events progress, logs and reports listen to. */
export type { BelayEvent, EventSink } from './state/events.ts';
/** Error classes with stable codes, the exit codes, and the registry of every code. */
export * from './errors.ts';
/** The registry of every error code: exit code, meaning, what to do. */
export { ERROR_CODES, type ErrorCodeInfo, errorCodeInfo } from './error-codes.ts';
