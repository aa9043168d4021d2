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
const severity = z.enum(['error', 'warn', 'info']);
const code = z.string().regex(/^[A-Z][A-Z0-9_-]{1,40}$/, 'must be an upper-case code like ORPHAN_LINK');

/** A check with SQL that returns the offending rows (no rows = pass). */
const sqlCheck = z.strictObject({
  kind: z.literal('sql'),
  code,
  severity,
  message: z.string().min(1),
  sql,
  fix: z.string().optional(),
});
/**
 * One SELECT that sorts rows into categories (a column of its rows names each row's category), reported
 * as one finding per declared category: one pass over the data instead of one query per category, and
 * no row counted in two categories. Rows whose category is NULL are not reported.
 */
const classifyCheck = z.strictObject({
  kind: z.literal('classify'),
  /** Names the classification itself (errors, runbook); each category has its own code. */
  code,
  sql,
  /** The column of the rows that holds the category; default "category". */
  column: name.default('category'),
  categories: z.array(z.strictObject({
    /** The value of the category column. */
    value: z.string().min(1),
    code,
    severity: severity.default('warn'),
    message: z.string().min(1),
    fix: z.string().optional(),
  })).min(1, 'must declare at least one category'),
});
/** Rows of `table.column` whose value is missing from `references.table.column`. */
const orphansCheck = z.strictObject({
  kind: z.literal('orphans'),
  code,
  severity: severity.default('warn'),
  table: tableName,
  column: name,
  references: z.strictObject({ table: tableName, column: name }),
  message: z.string().optional(),
  fix: z.string().optional(),
});
/** Rows that would violate a unique index after `step` wrote its projected values. */
const uniqueAfterCheck = z.strictObject({
  kind: z.literal('unique-after'),
  code,
  severity: severity.default('error'),
  step: name,
  index: name,
  message: z.string().optional(),
  fix: z.string().optional(),
});
/** NULLs in a column that is about to become NOT NULL (after `step`, when given). */
const notNullCheck = z.strictObject({
  kind: z.literal('not-null'),
  code,
  severity: severity.default('error'),
  table: tableName,
  column: name,
  step: name.optional(),
  message: z.string().optional(),
  fix: z.string().optional(),
});
export const checkSchema = z.discriminatedUnion('kind', [sqlCheck, classifyCheck, orphansCheck, uniqueAfterCheck, notNullCheck]);

/**
 * A change over key ranges of a driving table, declared as a projection: SQL that, for the keys in
 * [$1, $2] (inclusive, cast to the key's type), returns the key column and the new value of every
 * column in `writes`. belay derives the UPDATE, the undo log and the predictions from it.
 */
const batchedStep = z.strictObject({
  kind: z.literal('batched'),
  name,
  table: tableName,
  /** Defaults to the table's single-column primary key. */
  key: name.optional(),
  writes: z.array(name).min(1, 'must name at least one column'),
  projection: sql,
  /**
   * Optional: the same projection for every row of the table at once, written set-based (it may ignore
   * $1/$2). A projection made for key ranges can cost a nested loop per row when run over the whole
   * table; the whole-table predictions (unique-after, not-null after the step) use this form instead.
   * `belay dry-run` proves both forms agree: the rows and values the batches would write must equal
   * what this form yields, or the dry run fails.
   */
  wholeTableProjection: sql.optional(),
  /**
   * Runs inside each batch after the write and must return no rows. It may read `written`
   * (the rows this batch wrote: key and written columns, after the change) and $1/$2 (the range).
   */
  verify: sql.optional(),
  batchSize: z.number().int().positive().max(MAX_BATCH_SIZE).optional(),
});
/** Plain SQL for small or schema changes, with its reverse (null = irreversible, said so everywhere). */
const sqlStep = z.strictObject({
  kind: z.literal('sql'),
  name,
  up: sql,
  down: z.union([sql, z.null()]),
});
export const stepSchema = z.discriminatedUnion('kind', [batchedStep, sqlStep]);

const tempIndex = z.strictObject({
  name,
  table: tableName,
  /** Column list or expression, as in CREATE INDEX … ON t (<columns>). */
  columns: sql,
  where: sql.optional(),
});

/** Evaluated after every batch (see docs/rollback.md): when the condition holds, the run pauses or rolls back. */
const abortTrigger = z.strictObject({
  when: z.enum(['verification-failed', 'conflicts-over', 'batch-slower-than-ms', 'lock-retries-over', 'skipped-over']),
  threshold: z.number().nonnegative().optional(),
  action: z.enum(['rollback', 'pause']).default('rollback'),
  /**
   * conflicts-over / skipped-over: SQL whose rows count, run after each batch with $1/$2 = the batch's
   * key range (it may read `written`); totals add up over the run. Required for skipped-over.
   */
  sql: sql.optional(),
});

const verification = z.strictObject({
  name,
  /** Returns offending rows; none = pass. */
  sql,
  message: z.string().optional(),
});

const monitorCheck = z.strictObject({
  name,
  sql,
  /** Alert when the number of returned rows is above this (default 0). */
  alertAbove: z.number().int().nonnegative().default(0),
  message: z.string().optional(),
});

export const migrationSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be lower-case letters, digits, ".", "_" or "-", at most 63'),
  purpose: z.string().min(10, 'must say in a sentence or more what the migration does and why'),
  tables: z.array(tableName).min(1, 'must list every table the migration touches'),
  checks: z.array(checkSchema).default([]).superRefine((checks, ctx) => {
    // findings, stored results and verification are keyed by code: one code, one meaning
    const seen = new Set<string>();
    for (const [i, c] of checks.entries()) {
      for (const x of c.kind === 'classify' ? [c.code, ...c.categories.map((k) => k.code)] : [c.code]) {
        if (seen.has(x)) ctx.addIssue({ code: 'custom', path: [i, 'code'], message: `code ${x} is used twice: every check and category needs its own code` });
        seen.add(x);
      }
      if (c.kind === 'classify' && new Set(c.categories.map((k) => k.value)).size !== c.categories.length) {
        ctx.addIssue({ code: 'custom', path: [i, 'categories'], message: 'two categories have the same value' });
      }
    }
  }),
  tempIndexes: z.array(tempIndex).default([]),
  steps: z.array(stepSchema).min(1, 'must have at least one step'),
  verify: z.array(verification).default([]),
  abort: z.array(abortTrigger).default([]),
  monitor: z.array(monitorCheck).default([]),
  options: z
    .strictObject({
      mode: z.enum(['batched', 'single']).default('batched'),
      batchSize: z.number().int().positive().max(MAX_BATCH_SIZE).default(10_000),
      // bounded like every number belay takes: a lock wait of hours or a thousand retries is a typo, not a plan
      lockTimeoutMs: z.number().int().positive().max(600_000).default(2_000),
      statementTimeoutMs: z.number().int().positive().max(86_400_000).default(60_000),
      maxRetries: z.number().int().nonnegative().max(100).default(8),
    })
    .prefault({}),
});

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
