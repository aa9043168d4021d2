// The runbook: everything a reviewer needs to approve a migration before it runs, as Markdown.
// Works without a database (the SQL then assumes the key); with one it adds table sizes and real key types.
import path from 'node:path';
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { cell, code, fence, fmtBytes, fmtInt, fmtMs, mdTable, scalarPaths } from './markdown.ts';
import { checkEntries, checkMeaning, errorEntries } from './registries.ts';
import type { ReportSources } from './sources.ts';
import { TABLE_OID_SQL, TABLE_SIZE_SQL } from './report-sql.ts';
import { resolveStep, ruleOf, type StepTarget } from '../spec/resolve.ts';
import { DEFAULT_TARGET_BATCH_MS } from '../spec/define.ts';

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
  'Purpose',
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

interface TableFacts {
  table: string;
  exists: boolean;
  rows?: number;
  estimated?: boolean;
  bytes?: number;
}

export async function runbook(m: LoadedMigration, opts: RunbookOptions = {}): Promise<string> {
  const { spec } = m;
  const target = opts.target ?? (path.relative(process.cwd(), path.dirname(m.file)) || '.');
  const params = Object.entries(m.params)
    .map(([k, v]) => ` --param ${k}=${v}`)
    .join('');
  const mig = `${target}${params}`;
  const facts = opts.db ? await tableFacts(opts.db, spec.tables) : [];
  const out: string[] = [];
  const h2 = (n: number) => out.push('', `## ${n + 1}. ${RUNBOOK_SECTIONS[n]}`, '');

  out.push(`# Runbook: ${spec.id}`, '');
  out.push(
    mdTable(
      ['', ''],
      [
        ['Migration file', code(path.relative(process.cwd(), m.file) || m.file)],
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
  );

  h2(0);
  out.push(spec.purpose);

  h2(1);
  out.push('### Tables', '');
  const written = (t: string) => spec.steps.filter((s) => s.kind === 'batched' && s.table === t).map((s) => s.name);
  out.push(
    mdTable(
      ['table', 'role', 'rows', 'size on disk'],
      spec.tables.map((t) => {
        const f = facts.find((x) => x.table === t);
        const w = written(t);
        return [
          code(t),
          w.length ? `written by ${w.join(', ')}` : 'read / backed up',
          f ? (f.exists ? `${f.estimated ? '≈ ' : ''}${fmtInt(f.rows)}` : 'missing') : 'unknown (no --db)',
          f?.exists ? fmtBytes(f.bytes) : '',
        ];
      }),
    ),
  );
  out.push('', '### Steps', '');
  out.push(
    mdTable(
      ['#', 'step', 'kind', 'table', 'writes', 'reversible'],
      spec.steps.map((s, i) => [
        i + 1,
        s.name,
        s.kind,
        s.kind === 'batched' ? code(s.table) : '',
        s.kind === 'batched' ? s.writes.map((w) => code(w)).join(', ') : '',
        s.kind === 'batched' ? 'yes: undo log (before-images)' : s.down === null ? '**NO** (down: null)' : 'yes: its down SQL',
      ]),
    ),
  );
  for (const [i, s] of spec.steps.entries()) {
    out.push('', `### Step ${i + 1}: ${s.name} (${s.kind})`, '');
    if (s.kind === 'sql') {
      out.push('Runs once, in one transaction with its checkpoint.', '', '**Up**', '', fence(s.up, 'sql'), '');
      out.push(
        '**Down**',
        '',
        s.down === null ? '**Irreversible**: this step declares `down: null`. Undo it only by restoring its tables from the backup.' : fence(s.down, 'sql'),
      );
      continue;
    }
    const { t, assumed } = await targetOf(opts.db, s, i);
    out.push(
      mdTable(
        ['', ''],
        [
          ['Table', code(s.table)],
          ['Key', `${code(t.key)} (${t.keyType})${assumed ? ' — assumed without a database; pass --db for the real key and type' : ''}`],
          ['Writes', s.writes.map((w) => code(w)).join(', ')],
          ['Batch size', fmtInt(s.batchSize ?? spec.options.batchSize)],
        ],
      ),
    );
    const rule = ruleOf(s, i);
    out.push(
      '',
      rule.kind === 'whole-table'
        ? 'The rule, decided once for the whole table before the first write: the key and the new value of every written column of the rows to change.'
        : 'The rule, for the keys in `[$1, $2]`: the key and the new value of every written column. belay evaluates it over the whole key range, in chunks, to decide once before the first write.',
      '',
      fence(rule.sql, 'sql'),
    );
    out.push(
      '',
      "The decision is kept in a table of schema `belay` with every decided row's new values and before-images in the columns' own types: " +
        'the batches walk it, the pre-flight predictions and the dry run read it, and rollback puts the before-images back. ' +
        "The statement every batch runs (`$1`/`$2` = the batch's key range, `$3` = the round): it writes a decided row only while it still holds its before-image, " +
        'and marks the others as skipped.',
      '',
      fence(opts.sources?.batchSql(t, s) ?? '-- (the batch statement: not available here)', 'sql'),
    );
    if (s.verify)
      out.push(
        '',
        'In-batch verification (rows it returns are left out of the batch and reported; past options.maxRejected the run stops):',
        '',
        fence(opts.sources?.verifySql(t, s) ?? s.verify, 'sql'),
      );
  }
  if (spec.tempIndexes.length) {
    out.push('', '### Temporary indexes', '', 'Created before the first step, dropped in cleanup:', '');
    out.push(
      fence(
        spec.tempIndexes
          .map((x) => `CREATE INDEX CONCURRENTLY ${ident(x.name)} ON ${qualified(x.table)} (${x.columns})${x.where ? ` WHERE ${x.where}` : ''};`)
          .join('\n'),
        'sql',
      ),
    );
  }
  const catalog =
    opts.db && opts.sources?.catalog
      ? await opts.sources.catalog(opts.db, m).catch((err: unknown) => (err instanceof Error ? err : new Error(String(err))))
      : undefined;
  out.push('', '### What the database does on these writes', '');
  out.push(...catalogSection(catalog, !!opts.db));

  h2(2);
  out.push(
    `Run read-only with ${code(`belay check ${mig}`)}. Severity **error** blocks the apply; **warn** rows are reported and left unchanged; **info** counts what will happen.`,
    '',
  );
  out.push(
    mdTable(
      ['code', 'kind', 'severity', 'looks for', 'fix'],
      spec.checks.flatMap((c) =>
        c.kind === 'classify'
          ? c.categories.map((x) => [code(x.code), `classify (${code(c.code)}: ${code(`${c.column} = '${x.value}'`)})`, x.severity, x.message, x.fix ?? ''])
          : [[code(c.code), c.kind, c.severity, checkMeaning(c), c.fix ?? '']],
      ),
    ),
  );
  for (const c of spec.checks) {
    out.push('', `#### ${c.code}`, '');
    if (c.kind === 'classify')
      out.push(
        `One query sorts the rows into categories by its column ${code(c.column)}: ${c.categories.map((x) => `${code(x.value)} → ${code(x.code)}`).join(', ')}.`,
        '',
      );
    if (c.kind === 'sql' || c.kind === 'orphans' || c.kind === 'classify') out.push(fence(opts.sources?.checkSql(c) ?? '-- (not available here)', 'sql'));
    else out.push(`Built-in ${c.kind} check: ${checkMeaning(c)}.`);
  }
  out.push('', '### Predicted from the catalog', '');
  if (catalog && !(catalog instanceof Error)) {
    out.push(
      catalog.derived.length
        ? `Nothing declares these: belay reads them from the catalog and predicts each on the rows the step writes (severity **error**: the server would refuse the write).\n\n${mdTable(
            ['code', 'kind', 'looks for', 'fix'],
            catalog.derived.map((d) => [code(d.code), d.kind, d.meaning, d.fix]),
          )}`
        : '_No unique index, foreign key, CHECK, domain, NOT NULL or exclusion constraint covers a written column._',
    );
  } else
    out.push(
      opts.db
        ? `_Could not read the catalog: ${catalog instanceof Error ? catalog.message : 'not available here'}._`
        : `_Pass --db to list the predictions belay derives from the catalog (unique indexes, foreign keys, CHECKs, domains, NOT NULL, exclusion constraints over written columns)._`,
    );

  h2(3);
  out.push(
    "Before the first write, belay copies every table the migration touches and records each copy's row count and an " +
      "order-independent checksum (the sum over rows of a hash of each row's columns, each hashed by its type, under pinned text settings):",
    '',
  );
  out.push(
    mdTable(
      ['table', 'in-database copy', 'file copy'],
      spec.tables.map((t) => [
        code(t),
        `a table in schema ${code('belay_backup')}, named after the run and the table`,
        opts.backupDir
          ? `${code(`${opts.backupDir}/run-<id>-…/`)}: gzip COPY file + manifest.json (sha256 of each file)`
          : 'none (pass --backup-dir DIR to belay apply)',
      ]),
    ),
  );
  out.push(
    '',
    `Every copy is recorded in ${code('belay.backups')} with its row count and checksum, and verified against its source before the first write. ` +
      `List and check them with ${code('belay backups list')} and ${code('belay backups verify <backup>')}; ` +
      `restore with ${code('belay backups restore <backup>')} or ${code('belay rollback <run> --from-backup')}. ` +
      'Besides the copies, the decision of each batched step (in schema `belay`) holds the before-image of every row and column it writes, recorded before the first batch.',
  );

  h2(4);
  if (opts.plan && typeof opts.plan === 'object') out.push(...planFigures(opts.plan as Record<string, unknown>, opts.planFile));
  else
    out.push(
      `No plan given. Make one against the target database with ${code(`belay plan ${mig} -o plan.json`)} and pass it with ${code('--plan plan.json')} for sizes, batch size and expected time.`,
    );

  h2(5);
  out.push('Run each command against the environment named by `--db` or `DATABASE_URL`; stop at the first that fails.', '');
  out.push(
    fence(
      [
        `# 1. pre-flight, read-only: blocking findings stop here`,
        `belay check ${mig}`,
        `# 2. the whole pipeline in a transaction that is rolled back: prints the expected changes`,
        `belay dry-run ${mig}`,
        `# 3. on a copy (staging): apply, verify, roll back, prove the data is back by checksums`,
        `belay rehearse ${mig}`,
        `# 4. the real run: backups, checkpointed batches; resumes by itself after a crash`,
        `belay apply ${mig}${opts.backupDir ? ` --backup-dir ${opts.backupDir}` : ''}`,
        `# 5. post-run verification (the run id is printed by apply, also in belay status)`,
        `belay verify <run>`,
        `# 6. watch the data afterwards`,
        `belay monitor <run> --for 24h --every 5m`,
        `# 7. the audit record`,
        `belay report <run> --format html -o report.html`,
      ].join('\n'),
      'sh',
    ),
  );

  h2(6);
  out.push(`After the last step, ${code('belay verify <run>')} runs each query below; each must return no rows.`, '');
  if (!spec.verify.length) out.push('_The migration declares no post-run verification: consider adding one._');
  for (const v of spec.verify) out.push(`#### ${v.name}`, '', v.message ?? '', '', fence(v.sql, 'sql'), '');
  const inBatch = spec.steps.filter((s): s is BatchedStep => s.kind === 'batched' && !!s.verify);
  if (inBatch.length)
    out.push(`In-batch verifications (shown with their steps above) also run inside every batch of: ${inBatch.map((s) => s.name).join(', ')}.`);

  h2(7);
  out.push('### Automatic triggers', '');
  out.push(
    spec.abort.length
      ? mdTable(
          ['when', 'threshold', 'action'],
          spec.abort.map((a) => [
            a.when,
            a.threshold ?? '',
            a.action === 'rollback' ? 'roll back every committed batch' : 'pause (resumable with belay apply)',
          ]),
        )
      : '_No abort triggers declared: a failing batch still rolls itself back, and the run stops resumable._',
  );
  out.push(
    '',
    '### Exact undo',
    '',
    fence(
      `belay rollback <run>          # restores every written row to its before-image, newest batch first\nbelay rollback <run> --force  # also overwrites rows changed after the migration wrote them`,
      'sh',
    ),
    '',
  );
  out.push('A row changed by someone else after the migration wrote it is a conflict: it is left alone and listed (exit code 11) unless `--force`.');
  out.push(
    '',
    '### Standalone SQL path (psql only, belay not installed)',
    '',
    fence(`belay rollback <run> --sql > rollback-<run>.sql   # review it\npsql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f rollback-<run>.sql`, 'sh'),
  );
  out.push('', '### Restore from backup', '', fence('belay rollback <run> --from-backup   # puts back the copies taken before the first write', 'sh'), '');
  out.push('This restores whole tables: changes made by others since the run are lost. Use it for irreversible steps or a damaged undo log.');
  const irreversible = spec.steps.filter((s) => s.kind === 'sql' && s.down === null).map((s) => s.name);
  out.push(
    '',
    '### Irreversible steps',
    '',
    irreversible.length
      ? `**${irreversible.join(', ')}** declare${irreversible.length === 1 ? 's' : ''} \`down: null\`: \`belay rollback\` stops there (BELAY_IRREVERSIBLE). Restore from backup instead.`
      : 'None: every step can be undone exactly.',
  );

  h2(8);
  out.push(
    `After the run: ${code('belay monitor <run> --for 24h --every 5m [--webhook URL]')} runs each check below and alerts when it returns more rows than its threshold.`,
    '',
  );
  out.push(
    spec.monitor.length
      ? mdTable(
          ['check', 'alert when rows >', 'meaning'],
          spec.monitor.map((x) => [x.name, x.alertAbove, x.message ?? '']),
        )
      : '_No monitoring checks declared._',
  );
  for (const x of spec.monitor) out.push('', `#### ${x.name}`, '', fence(x.sql, 'sql'));

  h2(9);
  out.push("### This migration's check codes", '');
  out.push(
    mdTable(
      ['code', 'severity', 'meaning', 'what to do'],
      checkEntries(spec.checks).map((e) => [code(e.code), e.kind, e.meaning, e.whatToDo]),
    ),
  );
  const builtIn = opts.sources?.checkKinds ?? [];
  if (builtIn.length) {
    out.push('', '### Built-in check kinds', '');
    out.push(
      mdTable(
        ['kind', 'default severity', 'meaning', 'what to do'],
        builtIn.map((e) => [code(e.code), e.kind, e.meaning, e.whatToDo]),
      ),
    );
  }
  out.push('', '### Error codes', '');
  out.push(
    mdTable(
      ['code', 'exit', 'meaning', 'what to do'],
      errorEntries().map((e) => [code(e.code), e.exitCode, e.meaning, e.whatToDo]),
    ),
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

type CatalogSources = Awaited<ReturnType<NonNullable<ReportSources['catalog']>>>;

/** The catalog's notes on the batched steps' writes, and the tables they change indirectly. */
function catalogSection(catalog: CatalogSources | Error | undefined, hasDb: boolean): string[] {
  if (!catalog || catalog instanceof Error) {
    return [
      hasDb
        ? `_Could not read the catalog: ${catalog instanceof Error ? catalog.message : 'not available here'}._`
        : '_Pass --db to read the triggers, foreign-key actions and cascades of the written tables from the catalog._',
    ];
  }
  const notes = catalog.facts.flatMap((f) => f.notes);
  const out: string[] = [];
  out.push(
    notes.length
      ? `From the catalog (\`belay check\` reports the same codes):\n\n${mdTable(
          ['code', 'severity', 'what', 'what to do'],
          notes.map((n) => [code(n.code), n.severity, n.message, n.fix]),
        )}`
      : "_No trigger fires on the steps' UPDATE, and no foreign-key action, cascade or composite key involves the written tables._",
  );
  const indirect = catalog.facts.flatMap((f) => f.indirectTables.map((t) => ({ ...t, step: f.step })));
  if (indirect.length) {
    out.push('', 'Tables changed indirectly:', '');
    out.push(
      mdTable(
        ['table', 'by step', 'through', 'backed up and verified'],
        indirect.map((t) => [code(t.table), t.step, code(t.through), t.listed ? 'yes' : '**no**: add it to tables']),
      ),
    );
  }
  return out;
}

async function targetOf(db: Db | undefined, s: BatchedStep, i: number): Promise<{ t: StepTarget; assumed: boolean }> {
  if (db) {
    const r = await db.query<{ oid: number | null }>(TABLE_OID_SQL, [qualified(s.table)]);
    if (r.rows[0]?.oid) return { t: await resolveStep(db, s, i), assumed: false };
  }
  return { t: { table: qualified(s.table), tableName: s.table, key: s.key ?? 'id', keyType: 'bigint', writes: s.writes }, assumed: true };
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

/** A plan.json rendered generically: its scalar figures, and its arrays of objects as tables. */
function planFigures(plan: Record<string, unknown>, file?: string): string[] {
  const out: string[] = [file ? `From ${code(file)}:` : 'From the plan given:', ''];
  const pretty = (k: string, v: string) =>
    /ms$/i.test(k) && Number.isFinite(Number(v))
      ? `${v} (${fmtMs(Number(v))})`
      : /bytes$/i.test(k) && Number.isFinite(Number(v))
        ? `${v} (${fmtBytes(Number(v))})`
        : v;
  const scalars = scalarPaths(plan);
  if (scalars.length)
    out.push(
      mdTable(
        ['figure', 'value'],
        scalars.map(([k, v]) => [k, pretty(k, v)]),
      ),
    );
  for (const [k, v] of Object.entries(plan)) {
    if (!Array.isArray(v) || !v.length || typeof v[0] !== 'object') continue;
    const rows = v.slice(0, 50) as Array<Record<string, unknown>>;
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r).filter((c) => r[c] === null || typeof r[c] !== 'object')))].slice(0, 10);
    out.push(
      '',
      `**${k}**`,
      '',
      mdTable(
        cols,
        rows.map((r) => cols.map((c) => cell(pretty(c, String(r[c] ?? ''))))),
      ),
    );
  }
  return out;
}
