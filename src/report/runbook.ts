// The runbook: everything a reviewer needs to approve a migration before it runs, as Markdown. It opens
// with one screen of summary (runbook-summary.ts); each section's detail is folded in <details>.
// Works without a database (the SQL then assumes the key); with one it adds table sizes and real key types.
import path from 'node:path';
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import type { BatchedStep } from '../spec/define.ts';
import { DEFAULT_TARGET_BATCH_MS } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { code, details, fence, mdTable } from './markdown.ts';
import { migrationPath } from './project-path.ts';
import { TABLE_OID_SQL, TABLE_SIZE_SQL } from './report-sql.ts';
import { rolesOf } from '../spec/written-tables.ts';
import { backupPlan, execution, planFigures, preflightChecks, rollbackPlan, troubleshooting, whatChanges } from './runbook-sections.ts';
import { type CatalogSources, runbookSummary, type TableFacts } from './runbook-summary.ts';
import type { ReportSources } from './sources.ts';

export interface RunbookOptions {
  /** What other stages know: the SQL of checks and batches, the built-in check kinds (the pipeline passes them). */
  sources?: ReportSources;
  /** Read-only: table sizes and key types. Without it the document is still complete. */
  db?: Db;
  /** A parsed plan.json (from belay plan), read generically. */
  plan?: unknown;
  /** Where the plan came from, shown in the document. */
  planFile?: string;
  /** Where backup files will be written (belay apply --backup-dir), if any. */
  backupDir?: string;
  /** How the migration is named in the commands (default: its path relative to the working directory). */
  target?: string;
  /** Timestamp shown in the header (tests pin it). */
  now?: Date;
}

/** The runbook's level-2 headings, in order: tests and docs name them. */
export const RUNBOOK_SECTIONS = [
  'Summary',
  'What changes',
  'Pre-flight checks',
  'Backup plan',
  'Plan figures',
  'Execution',
  'Verification',
  'Rollback',
  'Monitoring',
  'Troubleshooting',
  'Sign-off',
] as const;

export async function runbook(m: LoadedMigration, opts: RunbookOptions = {}): Promise<string> {
  const { spec } = m;
  const target = opts.target ?? (path.relative(process.cwd(), path.dirname(m.file)) || '.');
  const params = Object.entries(m.params)
    .map(([k, v]) => ` --param ${k}=${v}`)
    .join('');
  const mig = `${target}${params}`;
  const facts = opts.db ? await tableFacts(opts.db, spec.tables) : [];
  const catalog =
    opts.db && opts.sources?.catalog
      ? await opts.sources.catalog(opts.db, m).then(withoutOwnFences, (err: unknown) => (err instanceof Error ? err : new Error(String(err))))
      : undefined;
  const out: string[] = [];
  const h2 = (n: number) => out.push('', `## ${n + 1}. ${RUNBOOK_SECTIONS[n]}`, '');
  /** A section's detail, folded: the heading and `visible` stay on the page. */
  const section = (n: number, visible: string[], summary?: string, body?: string[]) => {
    h2(n);
    out.push(...visible);
    if (summary && body?.length) out.push(...(visible.length ? [''] : []), ...details(summary, body));
  };

  out.push(`# Runbook: ${spec.id}`);
  h2(0);
  out.push(spec.purpose, '');
  out.push(
    mdTable(
      ['', ''],
      [
        ['Migration file', code(migrationPath(m.file))],
        ['Checksum', code(m.checksum)],
        [
          'Parameters',
          Object.keys(m.params).length
            ? Object.entries(m.params)
                .map(([k, v]) => `${k}=${v}`)
                .join(', ')
            : 'none',
        ],
        [
          'Database',
          opts.db
            ? `${opts.db.label} (${opts.db.kind}), read at ${(opts.now ?? new Date()).toISOString()}`
            : 'none given: sizes unknown, SQL shown with the assumed key',
        ],
        [
          'Mode',
          spec.options.mode === 'single'
            ? `one transaction, lock_timeout ${spec.options.lockTimeoutMs} ms, statement_timeout ${spec.options.statementTimeoutMs} ms`
            : `batches sized to stay under a target duration (${DEFAULT_TARGET_BATCH_MS} ms unless the plan or --target-ms says otherwise; ` +
              `on a server a batch still running at it is rolled back and split; --batch-size N fixes the size instead), ` +
              `lock_timeout ${spec.options.lockTimeoutMs} ms, statement_timeout ${spec.options.statementTimeoutMs} ms`,
        ],
      ],
    ),
    '',
  );
  out.push(...runbookSummary(m, facts, !!opts.db, catalog));

  section(1, [], 'Tables, steps and the SQL of each step; what the database does on these writes', await whatChanges(m, opts, facts, catalog));

  const checks = await preflightChecks(m, opts, catalog);
  section(
    2,
    [
      `Run read-only with ${code(`belay check ${mig}`)}. Severity **error** blocks the apply; **warn** rows are reported and left unchanged; **info** counts what will happen.`,
      '',
      checks.table,
    ],
    "Each check's SQL, and what belay predicts from the catalog",
    checks.detail,
  );

  const roles = await rolesOf(spec, catalog instanceof Error ? [] : (catalog?.facts ?? []).flatMap((f) => f.indirectTables.map((t) => t.table)));
  section(
    3,
    [
      `Before the first write, belay copies the table${roles.written.length === 1 ? '' : 's'} the migration writes, ${roles.written.map((t) => code(t)).join(', ')}, into schema ${code('belay_backup')}` +
        `${opts.backupDir ? ` and to files under ${code(opts.backupDir)}` : ''}, and verifies each copy's row count and checksum against its source.` +
        (roles.read.length
          ? ` The tables it only reads (${roles.read.map((t) => code(t)).join(', ')}) are not copied (${code('belay apply --backup-read-tables')} copies them too) and a restore leaves them as they are.`
          : ''),
    ],
    'Where the copies go, how they are checked, listed and restored',
    backupPlan(roles.written, opts.backupDir),
  );

  if (opts.plan && typeof opts.plan === 'object')
    section(
      4,
      [`From ${opts.planFile ? code(opts.planFile) : 'the plan given'}:`],
      'The figures of the plan',
      planFigures(opts.plan as Record<string, unknown>),
    );
  else
    section(4, [
      `No plan given. Make one against the target database with ${code(`belay plan ${mig} -o plan.json`)} and pass it with ${code('--plan plan.json')} for sizes, batch size and expected time.`,
    ]);

  section(5, ['Run each command against the environment named by `--db` or `DATABASE_URL`; stop at the first that fails.', '', execution(mig, opts.backupDir)]);

  const inBatch = spec.steps.filter((s): s is BatchedStep => s.kind === 'batched' && !!s.verify);
  section(
    6,
    spec.verify.length
      ? [
          `After the last step, ${code('belay verify <run>')} runs each query below; each must return no rows.`,
          '',
          ...spec.verify.map((v) => `- **${v.name}**: ${v.message ?? ''}`),
          ...(inBatch.length
            ? ['', `In-batch verifications also run inside every batch of: ${inBatch.map((s) => s.name).join(', ')} (section What changes).`]
            : []),
        ]
      : ['_The migration declares no post-run verification: consider adding one._'],
    'The SQL of each verification',
    spec.verify.flatMap((v) => [`#### ${v.name}`, '', fence(v.sql, 'sql'), '']),
  );

  section(
    7,
    ['The triggers that stop the run by themselves, and each way back in full (the summary lists them).'],
    'Automatic triggers, exact undo, the psql script, restore from backup, irreversible steps',
    rollbackPlan(m),
  );

  section(
    8,
    [
      `After the run: ${code('belay monitor <run> --for 24h --every 5m [--webhook URL]')} runs each check below and alerts when it returns more rows than its threshold.`,
      '',
      spec.monitor.length
        ? mdTable(
            ['check', 'alert when rows >', 'meaning'],
            spec.monitor.map((x) => [x.name, x.alertAbove, x.message ?? '']),
          )
        : '_No monitoring checks declared._',
    ],
    'The SQL of each monitoring check',
    spec.monitor.flatMap((x) => [`#### ${x.name}`, '', fence(x.sql, 'sql'), '']),
  );

  section(
    9,
    [
      "What each kind of check looks for, and every belay error code with its exit code and what to do (the README's Exit codes section lists them too; this migration's own codes are in Pre-flight checks).",
    ],
    'Appendix: built-in check kinds, error codes',
    troubleshooting(opts.sources),
  );

  h2(10);
  out.push(
    ...[
      'the purpose matches the change request',
      'the SQL of every step was read',
      'the pre-flight ran on production data with no blocking findings',
      'a rehearsal passed on staging with this checksum',
      'the backups have room',
      'someone is on call for the monitoring period',
    ].map((s) => `- [ ] ${s}`),
  );
  return `${out.join('\n')}\n`;
}

/** belay's fence trigger of an earlier run (state/decision-sql.ts names it belay_fence_r<run>_s<step>). */
const OWN_FENCE = /^"?belay_fence_r\d+_s\d+"?$/;

/**
 * A runbook written after a run (the demo writes it next to the report) finds that run's fence trigger on the
 * written table: it is belay's record of other writers, not something the migration changes, so it is left out.
 */
function withoutOwnFences(c: CatalogSources): CatalogSources {
  return {
    ...c,
    facts: c.facts.map((f) => ({
      ...f,
      notes: f.notes.filter((n) => !(n.kind === 'trigger' && OWN_FENCE.test(String(n.data.trigger ?? '')))),
      indirectTables: f.indirectTables.filter((t) => !OWN_FENCE.test(t.through)),
    })),
  };
}

async function tableFacts(db: Db, tables: readonly string[]): Promise<TableFacts[]> {
  const out: TableFacts[] = [];
  for (const t of tables) {
    const r = await db.query<{ oid: number | null }>(TABLE_OID_SQL, [qualified(t)]);
    const oid = r.rows[0]?.oid;
    if (!oid) {
      out.push({ table: t, exists: false });
      continue;
    }
    const s = (await db.query<{ estimate: number; bytes: number }>(TABLE_SIZE_SQL, [oid])).rows[0]!;
    // reltuples is -1 before the first ANALYZE: count then (the runbook is read-only either way)
    if (Number(s.estimate) < 0) {
      const c = await db.query<{ n: number }>(`SELECT count(*)::float8 AS n FROM ${qualified(t)}`);
      out.push({ table: t, exists: true, rows: Number(c.rows[0]!.n), estimated: false, bytes: Number(s.bytes) });
    } else out.push({ table: t, exists: true, rows: Number(s.estimate), estimated: true, bytes: Number(s.bytes) });
  }
  return out;
}
