// The runbook before, the report after: every section for the flagship on both databases, the schema
// differences marked, the HTML report opened in headless Chromium, and the error-code registry complete.
import assert from 'node:assert/strict';
import { describeChecks } from '../src/checks/registry.ts';
import { writeBatchSql } from '../src/state/decision-sql.ts';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { backupStage } from '../src/backup/backup.ts';
import { preflight } from '../src/checks/preflight.ts';
import type { Db } from '../src/db/connection.ts';
import { ERROR_CODES } from '../src/error-codes.ts';
import { apply } from '../src/execute/apply.ts';

import { renderReportHtml } from '../src/report/html.ts';
import { REPORT_SECTIONS } from '../src/report/markdown.ts';
import { renderReportMarkdown } from '../src/report/report.ts';
import { buildReport, report, runbook, writeRunDocs } from '../src/run/documents.ts';
import { RUNBOOK_SECTIONS } from '../src/report/runbook.ts';
import { schemaSnapshotStage } from '../src/report/schema-snapshot.ts';
import { type BatchedStep, validate } from '../src/index.ts';
import { checksumOf, type LoadedMigration } from '../src/spec/load.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { flagship, ROOT } from './helpers/flagship.ts';
import { type Browser, launchChromium, NO_BROWSER } from './helpers/tools.ts';

const ROWS = 1200;
const tmp = mkdtempSync(path.join(tmpdir(), 'belay-report-'));
let browser: Promise<Browser> | undefined;
after(async () => {
  if (browser) await (await browser).close();
  rmSync(tmp, { recursive: true, force: true });
});

/** One headless Chromium for the file, launched on first use. */
function chromiumPage(): Promise<Browser> {
  browser ??= launchChromium(tmp);
  return browser;
}

function headings(md: string): string[] {
  return md
    .split('\n')
    .filter((l) => /^##? /.test(l))
    .map((l) => l.replace(/^##? (\d+\. )?/, ''));
}

async function count(db: Db, sql: string): Promise<number> {
  return Number((await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM (${sql}) s`)).rows[0]!.n);
}

for (const kind of DB_KINDS) {
  describe(`flagship runbook and report on ${kind}`, () => {
    let db: Db;
    let drop: () => Promise<void>;
    let m: LoadedMigration;
    let runId: number;
    let truth: Awaited<ReturnType<typeof generate>>;
    const docsDir = path.join(tmp, `docs-${kind}`);

    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      const f = await freshDb(kind);
      db = f.db;
      drop = f.drop;
      truth = await generate(db, { rows: ROWS, seed: 7 });
      m = await flagship();
      // as belay apply runs it: stored pre-flight, backups, then the schema snapshot
      const r = await apply(db, m, { batchSize: 400, stages: [preflight(), backupStage(), schemaSnapshotStage()] });
      assert.equal(r.status, 'completed', String(r.error?.message));
      runId = r.runId;
    });
    after(() => drop());

    test('the runbook has every section, every check code and the SQL of each step with the real key type', async () => {
      const md = await runbook(m, {
        db,
        plan: { belayPlan: 1, estimate: { rows: ROWS, batchSize: 400, expectedMs: 1234 } },
        planFile: 'plan.json',
        backupDir: '/backups',
      });
      const hs = headings(md);
      for (const s of RUNBOOK_SECTIONS) assert.ok(hs.includes(s), `runbook lacks section "${s}"`);
      for (const c of m.spec.checks) assert.ok(md.includes(`#### ${c.code}`) && md.includes(`\`${c.code}\``), `runbook lacks check ${c.code}`);
      for (const d of describeChecks(m)) assert.ok(md.includes(`| \`${d.code}\` |`), `runbook's check table lacks finding ${d.code}`);
      for (const e of ERROR_CODES) assert.ok(md.includes(`\`${e.code}\``), `troubleshooting lacks ${e.code}`);
      const step = m.spec.steps[0] as BatchedStep;
      // the generated batch statement is the one apply runs: same text, with the key's real type (serial = integer)
      const expected = writeBatchSql({
        table: '"EventType"',
        tableName: 'EventType',
        key: 'id',
        keyColumns: ['id'],
        keyType: 'integer',
        writes: step.writes,
        relation: 'belay."decision_r<run>_s<step>"',
      });
      assert.ok(md.includes(expected.trim()), 'runbook lacks the generated batch statement with key type integer');
      assert.ok(md.includes(step.decide!.trim().slice(-60)), 'runbook lacks the rule');
      for (const v of m.spec.verify) assert.ok(md.includes(`#### ${v.name}`));
      for (const x of m.spec.monitor) assert.ok(md.includes(`#### ${x.name}`));
      for (const cmd of [
        'belay check',
        'belay dry-run',
        'belay rehearse',
        'belay apply',
        'belay verify',
        'belay monitor',
        'belay rollback <run> --sql',
        '--from-backup',
      ]) {
        assert.ok(md.includes(cmd), `runbook lacks ${cmd}`);
      }
      assert.match(md, /\| `EventType` \| written by assign-owner \| (≈ )?1,200 \|/);
      assert.match(md, /\| estimate\.expectedMs \| 1234 \(1\.23 s\) \|/);
      assert.match(md, /\| Mode \| batches sized to stay under a target duration \(200 ms [^|]*rolled back and split/);
      assert.ok(md.includes('/backups/run-<id>'));
      assert.match(md, /### Irreversible steps\n\nNone/);
    });

    test('the report (md and json) has every section and figures that match the database', async () => {
      const data = JSON.parse(await report(db, runId, { format: 'json' })) as Awaited<ReturnType<typeof buildReport>>;
      const md = await report(db, runId, { format: 'md' });
      const hs = headings(md);
      for (const s of REPORT_SECTIONS) assert.ok(hs.includes(s), `report lacks section "${s}"`);
      assert.equal(data.run.status, 'completed');
      // counts before and after, against a count of our own
      for (const t of ['EventType', '_user_eventtype', 'users']) {
        const c = data.counts.find((x) => x.table === t)!;
        assert.equal(c.after, await count(db, `SELECT 1 FROM "${t}"`));
        assert.equal(c.before, c.after);
      }
      // rows changed = the generator's planted assign rows
      assert.equal(data.steps[0]!.rowsChanged, truth.counts.assign);
      // issues come from the stored pre-flight and agree with the planted categories
      assert.equal(data.issues.source, 'stored');
      const find = (code: string) => data.issues.findings.find((f) => f.code === code)!;
      assert.equal(find('UNOWNED').count, truth.counts.unowned);
      assert.equal(find('AMBIGUOUS').count, truth.counts.ambiguous);
      assert.equal(find('INCONSISTENT_OWNER').count, truth.counts.inconsistent);
      assert.equal(find('SLUG_CONFLICT').count, truth.counts.conflictExisting + truth.counts.conflictPair);
      // every link to a missing user, whether or not its event type exists
      assert.equal(find('ORPHAN_LINK_USER').count, await count(db, 'SELECT 1 FROM "_user_eventtype" l LEFT JOIN users u ON u.id = l."B" WHERE u.id IS NULL'));
      assert.ok(find('ORPHAN_LINK_USER').count >= truth.orphanLinks.missingUser.length);
      assert.equal(find('ASSIGN').count, truth.counts.assign);
      for (const code of ['UNOWNED', 'AMBIGUOUS', 'SLUG_CONFLICT', 'INCONSISTENT_OWNER', 'ORPHAN_LINK_USER', 'ORPHAN_LINK_EVENT_TYPE']) {
        assert.ok(find(code).sample.length > 0, `${code} has no sample`);
        assert.ok(md.includes(`### ${code}: `), `report md lacks samples of ${code}`);
      }
      // batches: every committed batch, with its duration
      const nb = await count(db, `SELECT 1 FROM belay.batches WHERE run_id = ${runId}`);
      assert.equal(data.timings.batches.length, nb);
      assert.ok(nb >= Math.ceil(truth.counts.assign / 400), 'the batches walk the decided rows');
      assert.equal(
        data.timings.batches.reduce((n, b) => n + b.rowsChanged, 0),
        truth.counts.assign,
      );
      // backups from belay.backups, with counts equal to the tables' counts
      assert.equal(data.backups.source, 'stored');
      // the flagship writes "EventType" only: the tables it reads are not copied
      assert.deepEqual(
        data.backups.rows.map((b) => b.source_table),
        ['EventType'],
      );
      for (const b of data.backups.rows) assert.equal(Number(b.row_count), data.counts.find((c) => c.table === b.source_table)!.before);
      // schema before (snapshot) and after (live): the flagship changes no schema
      assert.equal(data.schema.source, 'snapshot');
      for (const t of data.schema.tables) assert.equal(t.diff.differences, 0, `${t.table} should be unchanged`);
      const et = data.schema.tables.find((t) => t.table === 'EventType')!;
      assert.ok(et.after.indexes.some((i) => i.name === 'EventType_userId_slug_key' && i.unique));
      // unchanged tables are named, not dumped
      assert.ok(md.includes('Unchanged: `EventType`, `_user_eventtype`, `users`'));
      assert.ok(!md.includes('`EventType_userId_slug_key`'));
      assert.equal(data.aborts.length, 0);
    });

    test('the HTML report opens in headless Chromium without console errors, with its chart and tables', { skip: NO_BROWSER }, async () => {
      const html = await report(db, runId, { format: 'html' });
      const batches = await count(db, `SELECT 1 FROM belay.batches WHERE run_id = ${runId}`);
      // self-contained: no external reference of any kind
      assert.doesNotMatch(html, /\b(src|href)=|https?:\/\/|@import|url\(/i);
      const file = path.join(tmp, `report-${kind}.html`);
      writeFileSync(file, html);
      const page = await (await chromiumPage()).newPage();
      const problems: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      page.on('request', (req) => {
        if (!req.url().startsWith('file:')) problems.push(`request to ${req.url()}`);
      });
      try {
        await page.goto(`file://${file}`, { waitUntil: 'load' });
        assert.equal(await page.title(), `belay report: event-type-owner run ${runId}`);
        assert.equal(await page.locator('#batch-chart svg rect.bar').count(), batches);
        assert.equal(await page.locator('#batch-chart svg path.rate').count(), 1);
        const box = await page.locator('#batch-chart svg').boundingBox();
        assert.ok(box && box.width > 600 && box.height > 150, `chart is ${JSON.stringify(box)}`);
        assert.equal(await page.locator('table[data-table="batches"] tbody tr').count(), batches);
        for (const id of ['steps', 'counts', 'issues', 'backups', 'slowest-batches', 'batches', 'events']) {
          assert.ok((await page.locator(`table[data-table="${id}"]`).count()) > 0, `table ${id} missing`);
        }
        for (const sec of REPORT_SECTIONS) assert.equal(await page.locator('h2', { hasText: sec }).count(), 1, `section ${sec} missing`);
        await page.screenshot({ path: path.join(tmp, `report-${kind}.png`), fullPage: true });
        assert.deepEqual(problems, []);
      } finally {
        await page.close();
      }
    });

    test('an added column and index are marked, a dropped index too, and the sql step is called irreversible', async () => {
      await db.exec(`CREATE TABLE items (id serial PRIMARY KEY, v int, label text NOT NULL DEFAULT 'a');
        CREATE INDEX items_label_idx ON items (label);
        INSERT INTO items (v) SELECT g FROM generate_series(1, 250) g;`);
      const spec = validate({
        id: 'items-double',
        purpose: 'Double every value and add a note column with an index on v.',
        tables: ['items'],
        steps: [
          { kind: 'batched', name: 'double', table: 'items', writes: ['v'], projection: 'SELECT id, v * 2 AS v FROM items WHERE id BETWEEN $1 AND $2' },
          {
            kind: 'sql',
            name: 'add-note',
            up: `ALTER TABLE items ADD COLUMN note text DEFAULT 'n'; CREATE INDEX items_v_idx ON items (v); DROP INDEX items_label_idx; ALTER TABLE items ALTER COLUMN v SET NOT NULL`,
            down: null,
          },
        ],
      });
      const m: LoadedMigration = { spec, file: path.join(ROOT, 'items.ts'), params: {}, checksum: checksumOf(spec, {}) };
      const r = await apply(db, m, { batchSize: 100, stages: [schemaSnapshotStage()] });
      assert.equal(r.status, 'completed', String(r.error?.message));
      const data = await buildReport(db, r.runId);
      const t = data.schema.tables[0]!;
      const col = (n: string) => t.diff.columns.find((c) => c.name === n)!;
      assert.equal(col('note').change, 'added');
      assert.equal(col('v').change, 'changed');
      assert.deepEqual(col('v').what, ['notNull: false → true']);
      assert.equal(col('label').change, 'same');
      assert.equal(t.diff.indexes.find((i) => i.name === 'items_v_idx')!.change, 'added');
      assert.equal(t.diff.indexes.find((i) => i.name === 'items_label_idx')!.change, 'removed');
      assert.equal(t.diff.differences, 4);
      const md = renderReportMarkdown(data);
      assert.match(md, /### items — 4 difference\(s\)/);
      // the changed rows in view; the unchanged column only in the folded whole table
      const [shown, folded] = md.split('<summary>The whole of items after the run</summary>');
      assert.ok(!shown!.includes('| `label` |') && folded!.includes('| `label` | text | yes |'));
      assert.match(md, /\| `note` \| text \| {2}\| 'n'::text \| ➕ added \|/);
      assert.match(md, /\| `items_label_idx` \| .* \| ➖ removed \|/);
      assert.match(md, /\| 2 \| add-note \| sql \| .* \| \*\*no\*\* \|/);
      const html = renderReportHtml(data);
      assert.match(html, /<tr class="added"><td>note<\/td>/);
      assert.match(html, /<tr class="removed"><td>items_label_idx<\/td>/);
      assert.equal(html.match(/<tr class="same"><td>label<\/td>/g)?.length, 1, 'the unchanged column only in the folded whole table');
      const rb = await runbook(m, { db });
      assert.match(rb, /\*\*add-note\*\* declares `down: null`/);
      assert.match(rb, /\| 2 \| add-note \| sql \| {2}\| {2}\| \*\*NO\*\* \(down: null\) \|/);
      // without a database the runbook is still complete, with the key assumed
      const offline = await runbook(m);
      for (const s of RUNBOOK_SECTIONS) assert.ok(headings(offline).includes(s));
      assert.ok(offline.includes('assumed without a database'));
    });

    test('the flagship documents are written side by side (what npm run demo writes)', async () => {
      const docs = await writeRunDocs(db, m, runId, docsDir, { target: 'examples/event-type-owner' });
      assert.deepEqual(readdirSync(docsDir).sort(), ['REPORT.md', 'RUNBOOK.md', 'report.html']);
      const rb = readFileSync(docs.runbook, 'utf8');
      const rp = readFileSync(docs.report, 'utf8');
      for (const s of RUNBOOK_SECTIONS) assert.ok(headings(rb).includes(s), `RUNBOOK.md lacks ${s}`);
      for (const s of REPORT_SECTIONS) assert.ok(headings(rp).includes(s), `REPORT.md lacks ${s}`);
      assert.ok(rb.includes('belay apply examples/event-type-owner'));
      assert.ok(statSync(docs.html).size > 5000);
    });
  });
}

test('every BelayError code used in src/ is in the error-code registry with a meaning and what to do', () => {
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.endsWith('.ts') && e.name !== 'error-codes.ts') files.push(path.join(d, e.name));
    }
  };
  walk(path.join(ROOT, 'src'));
  const known = new Set<string>(ERROR_CODES.map((e) => e.code));
  const missing: string[] = [];
  for (const f of files) {
    for (const m of readFileSync(f, 'utf8').matchAll(/['"`](BELAY_[A-Z0-9_]+)['"`]/g)) {
      if (!known.has(m[1]!)) missing.push(`${m[1]} (${path.relative(ROOT, f)})`);
    }
  }
  assert.deepEqual(missing, [], 'add these codes to src/error-codes.ts with their meaning and what to do');
  for (const e of ERROR_CODES) assert.ok(e.meaning.length > 20 && e.whatToDo.length > 10, e.code);
  assert.equal(new Set(ERROR_CODES.map((e) => e.code)).size, ERROR_CODES.length);
});
