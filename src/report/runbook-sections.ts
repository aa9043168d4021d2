// The runbook's sections below its summary, each as lines of Markdown (runbook.ts folds them).
import type { Db } from '../db/connection.ts';
import { ident, qualified } from '../db/sql.ts';
import type { BatchedStep } from '../spec/define.ts';
import type { LoadedMigration } from '../spec/load.ts';
import { resolveStep, ruleOf, type StepTarget } from '../spec/resolve.ts';
import { cell, code, fence, fmtBytes, fmtInt, fmtMs, mdTable, scalarPaths } from './markdown.ts';
import { checkEntries, checkMeaning, errorEntries } from './registries.ts';
import { TABLE_OID_SQL } from './report-sql.ts';
import type { CatalogSources, TableFacts } from './runbook-summary.ts';
import type { RunbookOptions } from './runbook.ts';
import type { ReportSources } from './sources.ts';

/** Tables, steps and each step's SQL, the temporary indexes, and what the catalog says about the writes. */
export async function whatChanges(
  m: LoadedMigration,
  opts: RunbookOptions,
  facts: TableFacts[],
  catalog: CatalogSources | Error | undefined,
): Promise<string[]> {
  const { spec } = m;
  const out: string[] = ['### Tables', ''];
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
          [
            'Key',
            t.keyColumns.length > 1
              ? `${code(t.key)}: the composite primary key, batched by row-value keyset (${t.keyColumns.join(', ')}) > (…)`
              : `${code(t.key)} (${t.keyType})${assumed ? ' — assumed without a database; pass --db for the real key and type' : ''}`,
          ],
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
  out.push('', '### What the database does on these writes', '');
  out.push(...catalogSection(catalog, !!opts.db));
  return out;
}

/** The checks as one table (kept in view), and each one's SQL with the catalog's predictions (folded). */
export async function preflightChecks(
  m: LoadedMigration,
  opts: RunbookOptions,
  catalog: CatalogSources | Error | undefined,
): Promise<{ table: string; detail: string[] }> {
  const { spec } = m;
  // one row per finding code, in checkEntries' order: its what-to-do is the check's fix or the severity's default
  const todo = checkEntries(spec.checks).map((e) => e.whatToDo);
  const table = mdTable(
    ['code', 'kind', 'severity', 'looks for', 'what to do'],
    spec.checks
      .flatMap((c) =>
        c.kind === 'classify'
          ? c.categories.map((x) => [code(x.code), `classify (${code(c.code)}: ${code(`${c.column} = '${x.value}'`)})`, x.severity, x.message])
          : [[code(c.code), c.kind, c.severity, checkMeaning(c)]],
      )
      .map((row, i) => [...row, todo[i] ?? '']),
  );
  const out: string[] = [];
  for (const c of spec.checks) {
    out.push(`#### ${c.code}`, '');
    if (c.kind === 'classify')
      out.push(
        `One query sorts the rows into categories by its column ${code(c.column)}: ${c.categories.map((x) => `${code(x.value)} → ${code(x.code)}`).join(', ')}.`,
        '',
      );
    if (c.kind === 'sql' || c.kind === 'orphans' || c.kind === 'classify') out.push(fence(opts.sources?.checkSql(c) ?? '-- (not available here)', 'sql'));
    else out.push(`Built-in ${c.kind} check: ${checkMeaning(c)}.`);
    out.push('');
  }
  out.push('### Predicted from the catalog', '');
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
  return { table, detail: out };
}

export function backupPlan(tables: readonly string[], backupDir: string | undefined): string[] {
  return [
    "Each copy's row count and an order-independent checksum are recorded (the sum over rows of a hash of each row's columns, each hashed by its type, under pinned text settings):",
    '',
    mdTable(
      ['table', 'in-database copy', 'file copy'],
      tables.map((t) => [
        code(t),
        `a table in schema ${code('belay_backup')}, named after the run and the table`,
        backupDir ? `${code(`${backupDir}/run-<id>-…/`)}: gzip COPY file + manifest.json (sha256 of each file)` : 'none (pass --backup-dir DIR to belay apply)',
      ]),
    ),
    '',
    `Every copy is recorded in ${code('belay.backups')} with its row count and checksum, and verified against its source before the first write. ` +
      `List and check them with ${code('belay backups list')} and ${code('belay backups verify <backup>')}; ` +
      `restore with ${code('belay backups restore <backup>')} or ${code('belay rollback <run> --from-backup')}. ` +
      'Besides the copies, the decision of each batched step (in schema `belay`) holds the before-image of every row and column it writes, recorded before the first batch.',
  ];
}

export function execution(mig: string, backupDir: string | undefined): string {
  return fence(
    [
      `# 1. pre-flight, read-only: blocking findings stop here`,
      `belay check ${mig}`,
      `# 2. the whole pipeline in a transaction that is rolled back: prints the expected changes`,
      `belay dry-run ${mig}`,
      `# 3. on a copy (staging): apply, verify, roll back, prove the data is back by checksums`,
      `belay rehearse ${mig}`,
      `# 4. the real run: backups, checkpointed batches; resumes by itself after a crash`,
      `belay apply ${mig}${backupDir ? ` --backup-dir ${backupDir}` : ''}`,
      `# 5. post-run verification (the run id is printed by apply, also in belay status)`,
      `belay verify <run>`,
      `# 6. watch the data afterwards`,
      `belay monitor <run> --for 24h --every 5m`,
      `# 7. the audit record`,
      `belay report <run> --format html -o report.html`,
    ].join('\n'),
    'sh',
  );
}

export function rollbackPlan(m: LoadedMigration): string[] {
  const { spec } = m;
  const out: string[] = ['### Automatic triggers', ''];
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
  return out;
}

export function troubleshooting(sources: ReportSources | undefined): string[] {
  const out: string[] = [];
  const builtIn = sources?.checkKinds ?? [];
  if (builtIn.length) {
    out.push('### Built-in check kinds', '');
    out.push(
      mdTable(
        ['kind', 'default severity', 'meaning', 'what to do'],
        builtIn.map((e) => [code(e.code), e.kind, e.meaning, e.whatToDo]),
      ),
    );
  }
  out.push(...(out.length ? [''] : []), '### Error codes', '');
  out.push(
    mdTable(
      ['code', 'exit', 'meaning', 'what to do'],
      errorEntries().map((e) => [code(e.code), e.exitCode, e.meaning, e.whatToDo]),
    ),
  );
  return out;
}

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
  return {
    t: { table: qualified(s.table), tableName: s.table, key: s.key ?? 'id', keyColumns: [s.key ?? 'id'], keyType: 'bigint', writes: s.writes },
    assumed: true,
  };
}

/** A plan.json rendered generically: its scalar figures, and its arrays of objects as tables. */
export function planFigures(plan: Record<string, unknown>): string[] {
  const out: string[] = [];
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
