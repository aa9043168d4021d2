// The one definition of every event a run emits: the BelayEvent type (events.ts) is inferred from these
// schemas, and the published JSON Schema of the --json lines (schemas/events.schema.json, npm run schemas) is
// generated from them, so the type, the output and the document cannot drift apart. events.ts imports this
// file for its types only: zod is loaded when the schema is generated or checked, never by a run.
import { z } from 'zod';
import { JSON_VERSION } from './events.ts';

const int = z.number().int();
const count = int.min(0);
const ms = z.number().min(0);
/** A BelayError as JSON (code, message, fix, details). */
const err = z.record(z.string(), z.unknown());

const ev = <T extends string, S extends z.ZodRawShape>(type: T, shape: S, description: string) =>
  z.object({ type: z.literal(type), ...shape }).describe(description);

export const FIRED_TRIGGER = {
  /** Index in spec.abort, or -1 for the built-in default. */
  index: int,
  when: z.enum(['verification-failed', 'conflicts-over', 'batch-slower-than-ms', 'lock-retries-over', 'skipped-over']),
  threshold: z.number().optional(),
  decision: z.enum(['pause', 'rollback']),
  value: z.number(),
  reason: z.string(),
  batchNo: int.optional(),
  step: z.string().optional(),
};

const tuneSettings = z.object({
  targetMs: z.number().optional(),
  maxLockWaiters: z.number().nullable().optional(),
  maxTransactionAgeMs: z.number().nullable().optional(),
  maxReplicationLagMs: z.number().nullable().optional(),
});

const asker = z.object({
  role: z.string().optional(),
  application: z.string().optional(),
  address: z.string().nullable().optional(),
  osUser: z.string().optional(),
  host: z.string().optional(),
});

const batched = { runId: int, stepNo: int, step: z.string(), batchNo: int };

export const EVENT_SCHEMAS = [
  // the run
  ev('run-started', { runId: int, migrationId: z.string(), checksum: z.string(), resumed: z.boolean(), mode: z.string() }, 'A run started or resumed.'),
  ev(
    'control-taken',
    {
      runId: int,
      command: z.enum(['pause', 'resume', 'abort', 'abort-rollback', 'tune']),
      settings: tuneSettings,
      requestedBy: asker,
      requestedAt: z.iso.datetime(),
    },
    'A command from belay pause | resume | abort | tune, taken by the running apply between two batches.',
  ),
  ev('run-abandoned', { runId: int, previousStatus: z.string() }, 'A run that stopped before its first write, superseded by a run of the changed migration.'),
  ev('run-resumed', { runId: int, previousStatus: z.string() }, 'A run that stopped part-way goes on.'),
  ev('run-finished', { runId: int, status: z.string(), durationMs: ms, error: err.optional() }, 'The run ended: completed, failed, paused or rolled back.'),
  ev('listener-failed', { runId: int.optional(), event: z.string(), message: z.string() }, 'An event listener threw; the run went on.'),
  // check
  ev(
    'checks-finished',
    { runId: int.optional(), ok: z.boolean(), blocking: z.array(z.string()), counts: z.record(z.string(), z.number()), durationMs: ms },
    'The pre-flight checks ran: the count of each finding, and the blocking ones.',
  ),
  ev('checks-skipped', { runId: int }, 'The pre-flight checks were skipped (--skip-checks).'),
  // backup
  ev(
    'backup-taken',
    {
      runId: int.optional(),
      backupId: int,
      table: z.string(),
      copy: z.string(),
      rows: z.number().nullable(),
      checksum: z.string().nullable(),
      sizeBytes: z.number().nullable(),
      file: z.string().nullable(),
      sha256: z.string().nullable(),
    },
    'A verified copy of a touched table (and its file, with --backup-dir).',
  ),
  ev('backup-kept', { runId: int, backupId: int, table: z.string(), copy: z.string(), rows: z.number().nullable() }, 'A resumed run keeps its earlier backup.'),
  ev('backups-verified', { runId: int, count: count, durationMs: ms, sourcesReadBy: z.string() }, 'Every backup of the run matches its source.'),
  ev('backup-failed', { runId: int, error: err }, 'A backup could not be taken: nothing was written.'),
  ev('backup-dropped', { runId: int, backupId: int, copy: z.string() }, 'A backup copy was dropped.'),
  ev(
    'backup-export-failed',
    { runId: int, backups: z.array(int), path: z.string().optional(), table: z.string().optional(), error: z.string() },
    "The verified copies' files could not be written: the backups are unverified until exported again.",
  ),
  ev(
    'backup-exported-again',
    { runId: int, backupId: int, table: z.string(), copy: z.string(), file: z.string().nullable(), sha256: z.string().nullable() },
    "A resumed run's backup whose file was missing or incomplete: its verified copy exported again (or kept, without a folder).",
  ),
  z
    .looseObject({ type: z.literal('backup-restored'), runId: int, backupId: int, table: z.string(), rows: z.number(), checksum: z.string() })
    .describe('A table restored from its backup.'),
  // temporary indexes
  ev(
    'temp-index-ready',
    { runId: int, index: z.string(), table: z.string(), status: z.enum(['created', 'existed']), durationMs: ms },
    'A temporary index the batches need is in place.',
  ),
  ev('temp-indexes-dropped', { runId: int, indexes: z.array(z.string()) }, 'The temporary indexes were dropped after verification.'),
  // steps and batches
  ev(
    'step-started',
    { runId: int, stepNo: int, step: z.string(), kind: z.enum(['batched', 'sql']), rowsTotal: count, rowsDone: count },
    'A step starts (or goes on after a resume at rowsDone).',
  ),
  ev(
    'batch-committed',
    {
      ...batched,
      lo: z.string(),
      hi: z.string(),
      round: count,
      rowsInRange: count,
      rowsChanged: count,
      rowsSkipped: count,
      attempts: int.min(1),
      rowsDone: count,
      rowsTotal: count,
      durationMs: ms.describe('BEGIN to the end of the write and its checks (what the batch size scales).'),
      heldMs: ms.describe('BEGIN to COMMIT returned: how long the batch held its row locks.'),
      worker: count.optional().describe('With --workers: the worker (its key range, 0 first) that wrote it.'),
    },
    'A batch committed with its checkpoint.',
  ),
  ev(
    'workers-started',
    { runId: int, step: z.string(), round: count, workers: int.min(1), ranges: count },
    'A round of a step split into key ranges, walked by this many workers at once (the rest were done).',
  ),
  ev(
    'batch-retry',
    { runId: int, step: z.string(), batchNo: int, attempt: int, sqlstate: z.string(), waitMs: ms },
    'A batch failed on a lock timeout, a serialization failure or a deadlock and is tried again.',
  ),
  ev(
    'batch-over-ceiling',
    { ...batched, rows: count, elapsedMs: ms, ceilingMs: ms, nextSize: int.min(1) },
    'A batch ran past the ceiling: rolled back and tried again smaller.',
  ),
  ev(
    'batch-ceiling-lifted',
    { ...batched, rows: count, durationMs: ms, ceilingMs: ms, forMs: ms },
    'Even the smallest batch ran past the ceiling: it is lifted for the step for a while.',
  ),
  ev(
    'verification-failed',
    { runId: int, step: z.string(), batchNo: int.optional(), name: z.string().optional(), count: count, sample: z.array(z.unknown()) },
    'An in-batch check returned rows.',
  ),
  ev(
    'rows-skipped',
    { runId: int, step: z.string(), batchNo: int, count: count, keys: z.array(z.string()) },
    'Decided rows the application changed (or deleted) before their batch: left as they are; keys: the first 20.',
  ),
  ev(
    'rows-rejected',
    { runId: int, step: z.string(), batchNo: int, reason: z.string(), count: count, keys: z.array(z.string()), sample: z.array(z.unknown()) },
    'Rows an in-batch check or a constraint refused: left out of the step.',
  ),
  ev('catch-up', { runId: int, step: z.string(), round: int, added: count }, 'A catch-up round decided the rows the rule gives now.'),
  ev(
    'catch-up-left',
    { runId: int, step: z.string(), rounds: count, remaining: count },
    'After the last catch-up round: rows the rule still gives that were not decided, left as they are.',
  ),
  ev('step-finished', { runId: int, stepNo: int, step: z.string(), rowsChanged: count, rowsSkipped: count, batches: count }, 'A step is done.'),
  // steering
  ev('throttled', { runId: int, step: z.string(), reasons: z.array(z.string()) }, 'The run waits before its next batch: the database is under strain.'),
  ev('throttle-released', { runId: int, step: z.string(), waitedMs: ms }, 'The strain passed: the batches go on.'),
  ev('abort-triggered', { runId: int, ...FIRED_TRIGGER }, 'An abort trigger of the spec fired.'),
  ev('abort-rolled-back', { runId: int, restored: count, conflictCount: count }, 'The run was rolled back by its abort trigger.'),
  ev('abort-rollback-failed', { runId: int, error: err }, "The abort trigger's rollback failed: belay rollback <run> finishes it."),
  // rollback
  ev('rollback-started', { runId: int, batches: count, rows: count, force: z.boolean() }, 'A rollback starts: the undo batches to replay.'),
  ev(
    'rollback-batch',
    { runId: int, step: z.string(), batchNo: int, restored: count, conflicts: count, rowsDone: count, rowsTotal: count },
    'One batch undone (its own transaction).',
  ),
  ev(
    'rollback-step-kept',
    { runId: int, step: z.string(), reason: z.literal('irreversible') },
    'An irreversible SQL step left in place (--skip-irreversible).',
  ),
  ev(
    'rollback-finished',
    {
      runId: int,
      restored: count,
      conflicts: count.describe('changed + deleted: every row left alone.'),
      changed: count.optional(),
      deleted: count.optional(),
      status: z.string(),
      sample: z.array(z.unknown()),
    },
    'The rollback is done.',
  ),
  ev('rollback-failed', { runId: int, error: err }, 'The rollback stopped on an error; it resumes with belay rollback <run>.'),
  ev(
    'rollback-interrupted',
    { runId: int, signal: z.string(), batches: count, rowsDone: count },
    'Stopped part-way by Ctrl-C or SIGTERM: the run stays rolling_back, belay rollback <run> goes on.',
  ),
  ev(
    'rollback-from-backup',
    { runId: int, tables: z.unknown(), overwritten: z.unknown(), cascades: z.unknown().optional(), readTables: z.array(z.string()).optional() },
    "The run's tables restored from its backup.",
  ),
  ev('rollback-from-backup-cancelled', { runId: int }, 'The restore from backup was not confirmed: nothing changed.'),
  // dry run
  ev(
    'trial-batch',
    { step: z.string(), batchNo: int, lo: z.string(), hi: z.string(), rows: count, changed: count, ms: ms },
    'A dry-run batch, run and rolled back.',
  ),
] as const;

export const BELAY_EVENT = z.discriminatedUnion('type', EVENT_SCHEMAS);

/** What --json adds to every line: the version, and for an event the time it was printed (ISO 8601 UTC). */
const line = { v: z.literal(JSON_VERSION), at: z.iso.datetime() };

/** A failed command with --json: the error's stable code, the exit code, what happened and what to do. */
export const ERROR_LINE = z
  .object({
    type: z.literal('error'),
    v: z.literal(JSON_VERSION),
    code: z.string().regex(/^BELAY_[A-Z_]+$/),
    exitCode: int,
    message: z.string(),
    fix: z.string(),
    details: z.record(z.string(), z.unknown()),
  })
  .describe('A command failed: the error code (README "Exit codes"), the exit code, the message and what to do.');

/** The JSON Schema of every --json line: the events strictly, the error line, and any other line's type and version. */
export function jsonLinesSchema(): Record<string, unknown> {
  const events = EVENT_SCHEMAS.map((s) => z.toJSONSchema(s.extend(line).describe(s.description ?? s.shape.type.value), { target: 'draft-2020-12' }));
  const known = [...EVENT_SCHEMAS.map((s) => s.shape.type.value), 'error'];
  const strip = ({ $schema: _, ...rest }: Record<string, unknown>) => rest;
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://github.com/belay-pg/belay/blob/main/schemas/events.schema.json',
    title: 'belay --json output',
    description:
      "One JSON object per line. Every line has a type and the version v; events (the types listed here) carry the time they were printed, at, in ISO 8601 UTC. Other lines (result, check, plan, status, …) are the command's result object with its type and v.",
    oneOf: [
      ...events.map(strip),
      strip(z.toJSONSchema(ERROR_LINE, { target: 'draft-2020-12' })),
      {
        description: "A command's result: its type (not an event's) and the version.",
        type: 'object',
        properties: { type: { type: 'string', not: { enum: known } }, v: { const: JSON_VERSION } },
        required: ['type', 'v'],
      },
    ],
  };
}
