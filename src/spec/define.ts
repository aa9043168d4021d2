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
/**
 * true: the rows this check (or category) returns are the rows the migration changes. The post-run
 * verification (expected-changes) compares the rows the run changed with the sum of these counts; a
 * finding without it, informational or not, is never taken for rows to change.
 */
const changes = z.boolean().optional();
const code = z.string().regex(/^[A-Z][A-Z0-9_-]{1,40}$/, 'must be an upper-case code like ORPHAN_LINK');

/** A check with SQL that returns the offending rows (no rows = pass). */
const sqlCheck = z.strictObject({
  kind: z.literal('sql'),
  code,
  severity,
  message: z.string().min(1),
  sql,
  fix: z.string().optional(),
  changes,
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
  categories: z
    .array(
      z.strictObject({
        /** The value of the category column. */
        value: z.string().min(1),
        code,
        severity: severity.default('warn'),
        message: z.string().min(1),
        fix: z.string().optional(),
        changes,
      }),
    )
    .min(1, 'must declare at least one category'),
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
 * A change of rows of a driving table, decided once and written in batches of its key. The rule is
 * declared once: `decide`, set-based over the whole table (preferred), or `projection`, per key range
 * for a rule that cannot be written set-based. Either returns the key column and the new value of every
 * column in `writes`; belay keeps the rows whose values change, with their before-images, and derives
 * the writes, the undo, the dry run and the predictions from that one decision.
 */
const batchedStep = z
  .strictObject({
    kind: z.literal('batched'),
    name,
    table: tableName,
    /** Defaults to the table's single-column primary key. */
    key: name.optional(),
    writes: z.array(name).min(1, 'must name at least one column'),
    /** The rule over the whole table at once: one SELECT returning the key and the written columns of the rows to change. */
    decide: sql.optional(),
    /** The rule for the keys in [$1, $2] (inclusive, cast to the key's type), when it cannot be written set-based. */
    projection: sql.optional(),
    /** The former name of `decide` (accepted as it). */
    wholeTableProjection: sql.optional(),
    /**
     * Runs inside each batch after the write and must return no rows. It may read `written` (the table's
     * rows this batch wrote, after the write) and $1/$2 (the batch's key range). A returned row that
     * carries the key is left unchanged and reported (past options.maxRejected the run stops); a row without
     * the key stops the run.
     */
    verify: sql.optional(),
    batchSize: z.number().int().positive().max(MAX_BATCH_SIZE).optional(),
    /**
     * What user triggers of the table do when the step's UPDATE fires them, declared where belay cannot read
     * it from the function's body (or to confirm what it read): `sets`, the columns of the written rows a
     * BEFORE trigger changes besides the step's own writes (e.g. "updatedAt"); `writesTables`, the tables
     * it writes (an audit log). A declared trigger is reported as known (info) instead of a warning.
     */
    triggers: z
      .array(
        z.strictObject({
          name,
          sets: z.array(name).default([]),
          writesTables: z.array(tableName).default([]),
        }),
      )
      .optional(),
    /**
     * true: the step's batches run with `SET LOCAL session_replication_role = replica`, so that the table's
     * ordinary user triggers (ENABLE, the default) do not fire. The role must be allowed to set it
     * (superuser, or GRANT SET ON PARAMETER session_replication_role): `belay check` refuses otherwise.
     * Under it the server does not enforce foreign keys either (their triggers are ordinary ones) and
     * ENABLE ALWAYS / ENABLE REPLICA triggers fire: belay check lists them.
     */
    disableUserTriggers: z.boolean().optional(),
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
  checks: z
    .array(checkSchema)
    .default([])
    .superRefine((checks, ctx) => {
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
      /** Catch-up rounds after the last batch: rows the rule gives by then that were not decided (0 = none). */
      catchUpRounds: z.number().int().nonnegative().max(100).default(3),
      /**
       * Decided rows an in-batch check or a constraint may reject (left unchanged and reported) before the run
       * stops with BELAY_VERIFY; default max(10, 0.1 % of the decided rows).
       */
      maxRejected: z.number().int().nonnegative().optional(),
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
