// The public migration spec API. A migration module default-exports defineMigration({...}),
// or a function (params) => defineMigration({...}) for policies chosen on the command line.
import { z } from 'zod';

/** A batch should hold its row locks about this long: short enough that no one waits noticeably. */
export const DEFAULT_TARGET_BATCH_MS = 200;
/** The batch sizer's and calibration's bounds on an adaptive batch size. */
export const MIN_BATCH_SIZE = 100;
export const MAX_BATCH_SIZE = 200_000;
/** The batch sizer aims a batch at the target ÷ this until it has learnt its own headroom; so does the plan. */
export const INITIAL_HEADROOM = 1.5;

const name = z.string().min(1, 'must not be empty').max(63, 'must be at most 63 characters (a PostgreSQL identifier)');
const tableName = z.string().min(1, 'must not be empty').max(127);
const sql = z.string().trim().min(1, 'must be a non-empty SQL text');
const severity = z.enum(['error', 'warn', 'info']).describe('error: a finding stops the apply (exit 6); warn and info are reported.');
const changes = z
  .boolean()
  .optional()
  .describe(
    "true: the rows it returns are rows the migration changes; the post-run check of the expected changes compares the run's changed rows with the sum of these counts.",
  );
const code = z
  .string()
  .regex(/^[A-Z][A-Z0-9_-]{1,40}$/, 'must be an upper-case code like ORPHAN_LINK')
  .describe('A stable upper-case code (ORPHAN_LINK): findings, stored results and verification are keyed by it.');
const message = z.string().min(1).describe('What a finding means, in a sentence.');
const optionalMessage = z.string().optional().describe('What a finding means, in a sentence (a default is written from the kind).');
const fix = z.string().optional().describe('What to do about a finding: shown with it in check, runbook and report.');

const sqlCheck = z
  .strictObject({
    kind: z.literal('sql'),
    code,
    severity,
    message,
    sql: sql.describe('A SELECT returning the offending rows (no rows = pass); the first rows are shown as the sample.'),
    fix,
    changes,
  })
  .describe('A check with SQL that returns the offending rows (no rows = pass).');
const classifyCheck = z
  .strictObject({
    kind: z.literal('classify'),
    code: code.describe('Names the classification itself (errors, runbook); each category has its own code.'),
    sql: sql.describe('One SELECT over the data whose rows each name their category in `column`; rows whose category is NULL are not reported.'),
    column: name.default('category').describe('The column of the rows that holds the category.'),
    categories: z
      .array(
        z
          .strictObject({
            value: z.string().min(1).describe('The value of the category column.'),
            code,
            severity: severity.default('warn'),
            message,
            fix,
            changes,
          })
          .describe('One category: reported as its own finding.'),
      )
      .min(1, 'must declare at least one category')
      .describe('The categories, each reported as one finding.'),
  })
  .describe(
    'One SELECT that sorts rows into categories, reported as one finding per declared category: one pass over the data, and no row counted in two categories.',
  );
const orphansCheck = z
  .strictObject({
    kind: z.literal('orphans'),
    code,
    severity: severity.default('warn'),
    table: tableName.describe('The table holding the links.'),
    column: name.describe('The column holding the referenced value.'),
    references: z
      .strictObject({ table: tableName.describe('The referenced table.'), column: name.describe('The referenced column.') })
      .describe('Where the value must exist.'),
    message: optionalMessage,
    fix,
  })
  .describe('Rows of `table.column` whose value is missing from `references.table.column`.');
const uniqueAfterCheck = z
  .strictObject({
    kind: z.literal('unique-after'),
    code,
    severity: severity.default('error'),
    step: name.describe('The step whose decided values are checked.'),
    index: name.describe('The unique index that must still hold.'),
    message: optionalMessage,
    fix,
  })
  .describe('Rows that would violate a unique index after `step` wrote its decided values (the catalog predicts every unique index without it).');
const notNullCheck = z
  .strictObject({
    kind: z.literal('not-null'),
    code,
    severity: severity.default('error'),
    table: tableName.describe('The table of the column.'),
    column: name.describe('The column about to become NOT NULL.'),
    step: name.optional().describe('Count the NULLs left after this step wrote its decided values.'),
    message: optionalMessage,
    fix,
  })
  .describe('NULLs in a column that is about to become NOT NULL (after `step`, when given).');
export const checkSchema = z
  .discriminatedUnion('kind', [sqlCheck, classifyCheck, orphansCheck, uniqueAfterCheck, notNullCheck])
  .describe('A pre-flight check, by its kind.');

const batchedStep = z
  .strictObject({
    kind: z.literal('batched'),
    name: name.describe("The step's name: unique in the migration, shown in progress, reports and errors."),
    table: tableName.describe('The driving table whose rows the step writes (listed in `tables`).'),
    key: name.optional().describe("The column the batches are ranges of; defaults to the table's primary key (a composite one is walked by row-value keyset)."),
    writes: z.array(name).min(1, 'must name at least one column').describe('The columns the step writes: the rule returns the new value of each.'),
    decide: sql
      .optional()
      .describe('The rule over the whole table at once: one SELECT returning the key and the written columns of the rows to change (preferred).'),
    projection: sql
      .optional()
      .describe(
        'The rule for the keys in [$1, $2] (inclusive, cast to the key type), when it cannot be written set-based; belay still decides it once, in chunks.',
      ),
    wholeTableProjection: sql.optional().describe('The former name of `decide` (accepted as it).'),
    verify: sql
      .optional()
      .describe(
        'Runs inside each batch after the write and must return no rows; it may read `written` (the rows the batch wrote) and $1/$2 (the key range). A returned row with the key is left unchanged and reported (past options.maxRejected the run stops); one without the key stops the run.',
      ),
    batchSize: z.number().int().positive().max(MAX_BATCH_SIZE).optional().describe("Rows per batch for this step (else options.batchSize, or the plan's)."),
    triggers: z
      .array(
        z
          .strictObject({
            name: name.describe('The trigger.'),
            sets: z.array(name).default([]).describe("Columns of the written rows a BEFORE trigger changes besides the step's own writes (e.g. updatedAt)."),
            writesTables: z.array(tableName).default([]).describe('Tables it writes (an audit log).'),
          })
          .describe("What one user trigger does on the step's UPDATE."),
      )
      .optional()
      .describe(
        'What user triggers of the table do when the step fires them, where belay cannot read it from the body (a declared trigger is reported as known).',
      ),
    disableUserTriggers: z
      .boolean()
      .optional()
      .describe(
        "true: batches run with SET LOCAL session_replication_role = replica, so the table's ordinary user triggers (and foreign-key triggers) do not fire; the role must be allowed to set it.",
      ),
  })
  .superRefine((s, ctx) => {
    const rules = [s.decide && 'decide', s.wholeTableProjection && 'wholeTableProjection', s.projection && 'projection'].filter(Boolean);
    if (rules.length === 0)
      ctx.addIssue({
        code: 'custom',
        path: ['decide'],
        message: 'a batched step needs its rule: decide (set-based, the whole table) or projection (per key range $1..$2)',
      });
    if (rules.length > 1)
      ctx.addIssue({
        code: 'custom',
        path: [rules[1] as string],
        message: `declare the rule once: ${rules.join(' and ')} are both given (keep decide, or projection alone)`,
      });
  })
  .describe(
    'A change of rows of a driving table, decided once (decide or projection: the key and the new value of every written column) and written in batches of its key, with the before-images kept for an exact undo.',
  );
const sqlStep = z
  .strictObject({
    kind: z.literal('sql'),
    name: name.describe("The step's name: unique in the migration."),
    up: sql.describe('The SQL that applies the change, in one transaction.'),
    down: z.union([sql, z.null()]).describe('The SQL that undoes it; null marks the step irreversible (said so in the runbook and by rollback).'),
  })
  .describe('Plain SQL for small or schema changes, with its reverse.');
export const stepSchema = z.discriminatedUnion('kind', [batchedStep, sqlStep]).describe('A step, by its kind.');

const tempIndex = z
  .strictObject({
    name: name.describe('The index name (created CONCURRENTLY before the steps, dropped by belay cleanup).'),
    table: tableName.describe('The table it indexes.'),
    columns: sql.describe('Column list or expression, as in CREATE INDEX … ON t (<columns>).'),
    where: sql.optional().describe('A partial index predicate.'),
  })
  .describe('An index belay builds for the run (a rule or check that would scan) and drops at clean-up.');

const abortTrigger = z
  .strictObject({
    when: z
      .enum(['verification-failed', 'conflicts-over', 'batch-slower-than-ms', 'lock-retries-over', 'skipped-over'])
      .describe('The condition, evaluated after every batch.'),
    threshold: z.number().nonnegative().optional().describe('The limit the condition compares with (rows, milliseconds or retries).'),
    action: z.enum(['rollback', 'pause']).default('rollback').describe('What the run does when the condition holds.'),
    sql: sql
      .optional()
      .describe(
        'conflicts-over / skipped-over: SQL whose rows count, run after each batch with $1/$2 = its key range (it may read `written`); totals add up over the run. Required for skipped-over.',
      ),
  })
  .describe('Evaluated after every batch (docs/rollback.md): when the condition holds, the run pauses or rolls back.');

const verification = z
  .strictObject({
    name: name.describe('The verification, as reports name it.'),
    sql: sql.describe('Returns offending rows after the run; none = pass.'),
    message: z.string().optional().describe('What a failure means.'),
  })
  .describe('A post-run verification (belay verify runs them again).');

const monitorCheck = z
  .strictObject({
    name: name.describe('The check, as alerts name it.'),
    sql: sql.describe('Run at every interval of belay monitor; its rows are counted.'),
    alertAbove: z.number().int().nonnegative().default(0).describe('Alert when the number of returned rows is above this.'),
    message: z.string().optional().describe('What an alert means.'),
  })
  .describe('A check of the monitoring window after the run (belay monitor), alerting by webhook, stderr and exit code.');

export const migrationSchema = z
  .strictObject({
    id: z
      .string()
      .regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be lower-case letters, digits, ".", "_" or "-", at most 63')
      .describe('The migration id: runs, locks and the ledger are recorded under it (belay new makes it the folder name).'),
    purpose: z
      .string()
      .min(10, 'must say in a sentence or more what the migration does and why')
      .describe('What the migration does and why, in a sentence or more: the runbook and the report open with it.'),
    tables: z
      .array(tableName)
      .min(1, 'must list every table the migration touches')
      .describe('Every table the migration writes: each is backed up before the first write and verified after.'),
    checks: z
      .array(checkSchema)
      .default([])
      .superRefine((checks, ctx) => {
        // findings, stored results and verification are keyed by code: one code, one meaning
        const seen = new Set<string>();
        for (const [i, c] of checks.entries()) {
          for (const x of c.kind === 'classify' ? [c.code, ...c.categories.map((k) => k.code)] : [c.code]) {
            if (seen.has(x))
              ctx.addIssue({ code: 'custom', path: [i, 'code'], message: `code ${x} is used twice: every check and category needs its own code` });
            seen.add(x);
          }
          if (c.kind === 'classify' && new Set(c.categories.map((k) => k.value)).size !== c.categories.length) {
            ctx.addIssue({ code: 'custom', path: [i, 'categories'], message: 'two categories have the same value' });
          }
        }
      })
      .describe('Pre-flight checks, run by belay check and before the first write (the catalog adds its own predictions).'),
    tempIndexes: z.array(tempIndex).default([]).describe('Indexes built for the run and dropped at clean-up.'),
    steps: z.array(stepSchema).min(1, 'must have at least one step').describe('The steps, run in order.'),
    verify: z.array(verification).default([]).describe('Post-run verifications.'),
    abort: z.array(abortTrigger).default([]).describe('Abort triggers, evaluated after every batch.'),
    monitor: z.array(monitorCheck).default([]).describe('Checks of the monitoring window (belay monitor).'),
    options: z
      .strictObject({
        mode: z
          .enum(['batched', 'single'])
          .default('batched')
          .describe('batched: one transaction per batch; single: all or nothing, one transaction (small migrations).'),
        batchSize: z
          .number()
          .int()
          .positive()
          .max(MAX_BATCH_SIZE)
          .default(10_000)
          .describe('Rows per batch before the batch sizer adapts it to the target duration.'),
        // bounded like every number belay takes: a lock wait of hours or a thousand retries is a typo, not a plan
        lockTimeoutMs: z
          .number()
          .int()
          .positive()
          .max(600_000)
          .default(2_000)
          .describe('SET LOCAL lock_timeout of every batch: a batch that waits longer retries.'),
        statementTimeoutMs: z.number().int().positive().max(86_400_000).default(60_000).describe('SET LOCAL statement_timeout of every batch.'),
        maxRetries: z
          .number()
          .int()
          .nonnegative()
          .max(100)
          .default(8)
          .describe('Retries of a batch after a lock timeout, deadlock or serialization failure (with backoff).'),
        catchUpRounds: z
          .number()
          .int()
          .nonnegative()
          .max(100)
          .default(3)
          .describe('Catch-up rounds after the last batch: rows the rule gives by then that were not decided (0 = none).'),
        maxRejected: z
          .number()
          .int()
          .nonnegative()
          .optional()
          .describe(
            'Decided rows an in-batch check or a constraint may reject (left unchanged, reported) before the run stops; default max(10, 0.1 % of the decided rows).',
          ),
      })
      .prefault({})
      .describe("The run's settings."),
  })
  .describe('A belay migration: the default export of a migration module (or of a function of its --param values).');

export type MigrationInput = z.input<typeof migrationSchema>;
export type Migration = z.output<typeof migrationSchema>;
export type Step = Migration['steps'][number];
export type BatchedStep = Extract<Step, { kind: 'batched' }>;
export type SqlStep = Extract<Step, { kind: 'sql' }>;
export type Check = Migration['checks'][number];
export type MigrationParams = Readonly<Record<string, string>>;
export type MigrationModule = MigrationInput | ((params: MigrationParams) => MigrationInput);

/** Identity with types: validation happens when belay loads the module (see loadMigration). */
export function defineMigration(spec: MigrationInput): MigrationInput {
  return spec;
}
