// belay's library entry: everything the CLI does, code can do.
export { defineMigration, migrationSchema } from './spec/define.ts';
export type { Migration, MigrationInput, MigrationParams, Step, BatchedStep, SqlStep, Check } from './spec/define.ts';
export { loadMigration, validate, type LoadedMigration } from './spec/load.ts';
export { openDb, transaction, type Db, type Row, type QueryResult } from './db/connection.ts';
export { ident, qualified, literal, PINNED_TEXT_SETTINGS } from './db/sql.ts';
export { redactUrl } from './db/redact.ts';
export { checksumTable, type TableChecksum } from './db/checksum.ts';
export { ensureState, STATE_VERSION } from './state/schema.ts';
export { getRun, getSteps, getBatches, listRuns, latestRun, type RunRecord, type StepRecord } from './state/store.ts';
export { apply, type ApplyOptions, type ApplyResult } from './execute/apply.ts';
export { safeApply, type SafeApplyOptions } from './execute/safe-apply.ts';
export { rollback, type RollbackOptions, type RollbackResult } from './rollback/rollback.ts';
export { rollbackScript, type RollbackScriptOptions, type RollbackScriptResult } from './rollback/rollback-script.ts';
export { rollbackFromBackup, previewRollbackFromBackup, type BackupRollbackOptions, type BackupRollbackResult, type BackupRollbackPreview } from './rollback/from-backup.ts';
export { reversibility, type Reversibility, type StepReversibility } from './rollback/reversibility.ts';
export { abortController, validateAbortTriggers, type AbortTrigger, type FiredTrigger } from './execute/abort-triggers.ts';
export { composeControllers } from './execute/hooks.ts';
export { runChecks, type CheckReport, type CheckFinding, type RunChecksOptions } from './checks/run-checks.ts';
export { preflight, preflightHook, withPreflight, checkResults, type Preflight, type PreflightOptions, type StoredCheckResult } from './checks/preflight.ts';
export { CHECK_KINDS, CHECK_ERROR_CODES, describeChecks, type CheckDescription, type CheckKind } from './checks/registry.ts';
export {
  takeBackup, verifyBackup, listBackups, dropBackup, getBackup, backupHook, copySqlName,
  type BackupRecord, type TakeBackupOptions, type VerifyBackupResult, type ListBackupsOptions, type BackupHookOptions,
} from './backup/backup.ts';
export { restoreBackup, previewRestore, type RestoreOptions, type RestoreResult, type RestorePreview, type RestoreTableResult } from './backup/restore.ts';
export { MANIFEST_FORMAT, type Manifest, type ManifestTable } from './backup/files.ts';
export {
  verifyRun, verificationHooks, captureBaseline, assertVerified, type VerifyResult, type VerifyCheck, type VerifyOptions, type CheckOutcome,
} from './verify/verify.ts';
export { getRounds, type RoundRecord } from './verify/record.ts';
export { archiveBackups, cleanupRun, DEFAULT_RETENTION_MS, type ArchiveOptions, type ArchiveResult, type CleanupResult } from './verify/archive.ts';
export { monitorRun, alertError, MONITOR_ALERT_CODE, type MonitorOptions, type MonitorResult, type Alert } from './monitor/monitor.ts';
export { parseDuration } from './monitor/duration.ts';
export { runbook, RUNBOOK_SECTIONS, type RunbookOptions } from './report/runbook.ts';
export { report, buildReport, renderReportMarkdown, REPORT_SECTIONS, type RunReport, type ReportOptions } from './report/report.ts';
export { renderReportHtml } from './report/html.ts';
export { schemaSnapshotHook, snapshotSchema, diffTable, type SchemaSnapshot, type TableSchema, type TableDiff } from './report/schema-snapshot.ts';
export { writeRunDocs, type RunDocs } from './report/write-docs.ts';
export { composeHooks, type WriteHooks } from './execute/compose-hooks.ts';
export { ERROR_CODES, errorCodeInfo, type ErrorCodeInfo } from './error-codes.ts';
export { plan, assertPlanCurrent, readPlanFile, writePlanFile, isPlanFile, PLAN_VERSION, type Plan, type PlanOptions, type TablePlan, type StepPlan } from './plan/plan.ts';
export { dryRun, type DryRunOptions, type DryRunResult, type DryRunStep } from './plan/dry-run.ts';
export { rehearse, type RehearseOptions, type RehearseResult, type TableEvidence } from './plan/rehearse.ts';
export { applyPlanned, tempIndexHooks, type PlannedApplyOptions } from './plan/apply-planned.ts';
export { createTempIndexes, dropTempIndexes, type TempIndexResult } from './plan/temp-indexes.ts';
export { planController, throttleReasons, DEFAULT_THROTTLE, type ThrottleOptions } from './plan/throttle.ts';
export { BatchSizer } from './plan/batch-sizer.ts';
export {
  loadProjectConfig, parseConfig, resolveEnvironment, ledgerFor, recordLedger, readLedger, assertApplyAllowed,
  type Environment, type ProjectConfig, type Ledger, type LedgerEntry,
} from './plan/environments.ts';
export type { BelayEvent, EventSink } from './events.ts';
export { prismaCheck, type PrismaCheckOptions, type PrismaCheckReport } from './prisma/check.ts';
export { prismaDeploy, type PrismaDeployOptions, type PrismaDeployResult } from './prisma/deploy.ts';
export { FINDINGS as PRISMA_FINDINGS, type FindingCode as PrismaFindingCode } from './prisma/predictors/registry.ts';
export * from './errors.ts';
