// The documents as a reviewer reads them: the flagship run as `belay demo` runs it (the whole pipeline),
// verified once more, then RUNBOOK.md, REPORT.md and report.html written side by side and read back. Each
// opens with one screen of summary, keeps its detail folded, names paths relative to the project, labels
// verification rounds, and the HTML fits a 1280 px window in headless Chromium.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generate } from '../examples/event-type-owner/generate.ts';
import { backupStage } from '../src/backup/backup.ts';
import type { Db } from '../src/db/connection.ts';
import { apply } from '../src/execute/apply.ts';
import { renderReportHtml } from '../src/report/html.ts';
import { renderReportMarkdown } from '../src/report/report.ts';
import { schemaSnapshotStage } from '../src/report/schema-snapshot.ts';
import { buildReport, writeRunDocs } from '../src/run/documents.ts';
import { safeApply, verify } from '../src/run/pipeline.ts';
import { checksumOf, type LoadedMigration, validate } from '../src/spec/load.ts';
import { DB_KINDS, freshDb } from './helpers/fresh-db.ts';
import { flagship, ROOT } from './helpers/flagship.ts';
import { CHROMIUM, NO_BROWSER } from './helpers/tools.ts';

const ROWS = 1200;
const BATCH = 40;
const tmp = mkdtempSync(path.join(tmpdir(), 'belay-glance-'));
type Browser = Awaited<ReturnType<typeof import('playwright-core')['chromium']['launchPersistentContext']>>;
let browser: Promise<Browser> | undefined;
after(async () => {
  if (browser) await (await browser).close();
  rmSync(tmp, { recursive: true, force: true });
});

function chromium(): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); CI installs it`);
  browser ??= import('playwright-core').then(({ chromium }) =>
    chromium.launchPersistentContext(mkdtempSync(path.join(tmp, 'chromium-')), {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    }),
  );
  return browser;
}

/** The page's width in a 1280 px window, with every <details> closed and then open. */
async function widths(file: string): Promise<{ closed: number; open: number }> {
  const page = await (await chromium()).newPage();
  try {
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.goto(`file://${file}`, { waitUntil: 'load' });
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    const closed = await width();
    await page.evaluate(() => {
      for (const d of document.querySelectorAll('details')) d.open = true;
    });
    return { closed, open: await width() };
  } finally {
    await page.close();
  }
}

/** The lines of a Markdown document a reader sees before opening anything: <details> bodies left out. */
function outsideDetails(md: string): string[] {
  const out: string[] = [];
  let depth = 0;
  for (const l of md.split('\n')) {
    if (l.startsWith('<details>')) depth++;
    else if (l.startsWith('</details>')) depth--;
    else if (depth === 0) out.push(l);
  }
  assert.equal(depth, 0, 'every <details> is closed');
  return out;
}

/** The lines of section `n` (from its `## n.` heading to the next level-2 heading). */
function section(md: string, n: number): string[] {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`## ${n}. `));
  assert.ok(start >= 0, `no section ${n}`);
  const end = lines.findIndex((l, i) => i > start && l.startsWith('## '));
  return lines.slice(start, end < 0 ? undefined : end);
}

/** The table rows (`| … |`, header and separator left out) of the first table after the line `after`. */
function tableAfter(lines: readonly string[], after: string): string[][] {
  const i = lines.indexOf(after);
  assert.ok(i >= 0, `no line "${after}"`);
  const rows: string[][] = [];
  for (const l of lines.slice(i + 1)) {
    if (!l.startsWith('|')) {
      if (rows.length) break;
      continue;
    }
    rows.push(
      l
        .slice(2, -2)
        .split(' | ')
        .map((c) => c.trim()),
    );
  }
  return rows.slice(2);
}

const fmt = (n: number) => n.toLocaleString('en-US');

for (const kind of DB_KINDS) {
  describe(`the flagship's documents at a glance on ${kind}`, () => {
    let db: Db;
    let drop: () => Promise<void>;
    let m: LoadedMigration;
    let runId: number;
    let assign: number;
    let rb: string;
    let rp: string;
    let html: string;
    let htmlFile: string;

    before(async () => {
      // every test of the describe uses it and after() drops it: withDb cannot span several tests
      const f = await freshDb(kind);
      db = f.db;
      drop = f.drop;
      assign = (await generate(db, { rows: ROWS, seed: 7 })).counts.assign;
      m = await flagship();
      // the pipeline belay demo runs, with a fixed batch size so that there are more than ten batches
      const r = await safeApply(db, m, { batchSize: BATCH });
      assert.equal(r.status, 'completed', String(r.error?.message));
      runId = r.runId;
      const v = await verify(db, runId);
      assert.equal(v.ok, true);
      const docs = await writeRunDocs(db, m, runId, path.join(tmp, `docs-${kind}`), { target: 'examples/event-type-owner' });
      rb = readFileSync(docs.runbook, 'utf8');
      rp = readFileSync(docs.report, 'utf8');
      html = readFileSync(docs.html, 'utf8');
      htmlFile = docs.html;
    });
    after(() => drop());

    test('RUNBOOK.md opens with a summary under 60 lines: what will change, what blocks, how to undo', () => {
      const lines = rb.split('\n');
      assert.equal(lines[2], '## 1. Summary');
      const summary = section(rb, 1);
      assert.ok(summary.length < 60, `the summary is ${summary.length} lines`);
      const text = summary.join('\n');
      assert.match(text, /\*\*What will change\*\*\n\n- `EventType` \(≈? ?1,200 rows, [^)]+\): step 1 \*\*assign-owner\*\* writes `userId`/);
      assert.match(
        text,
        /- Read, not written \(not backed up; a restore from backup leaves them as they are\): `_user_eventtype` \([^)]+\), `users` \([^)]+\)\./,
      );
      assert.match(text, /\*\*What blocks\*\*[\s\S]*- Checks of severity error: `UNIQUE_USER_SLUG`\./);
      assert.match(text, /- Not blocking: 6 check\(s\) of severity warn report their rows and leave them unchanged: `ORPHAN_LINK_USER`/);
      assert.match(
        text,
        /\*\*How to undo\*\*\n\n- `belay rollback <run>`: [^\n]+\n- `belay rollback <run> --sql`[^\n]+\n- `belay rollback <run> --from-backup`: the tables the run writes from the verified copies/,
      );
      assert.match(text, /- Every step can be undone exactly\./);
    });

    test("RUNBOOK.md folds its detail: the error codes and check kinds in an appendix, every step's SQL behind a click", () => {
      const seen = outsideDetails(rb).join('\n');
      for (const hidden of [
        '### Error codes',
        '`BELAY_PRISMA_BASELINE`',
        '### Built-in check kinds',
        'belay."decision_r<run>_s<step>"',
        '#### no-missed-rows',
      ]) {
        assert.ok(rb.includes(hidden), `RUNBOOK.md lacks ${hidden}`);
        assert.ok(!seen.includes(hidden), `${hidden} is not folded`);
      }
      assert.match(rb, /<details>\n<summary>Appendix: built-in check kinds, error codes<\/summary>\n\n### Built-in check kinds/);
      // in view: the checks table, the commands and the sign-off
      assert.match(seen, /\| `UNIQUE_USER_SLUG` \| unique-after \| error \|/);
      assert.ok(seen.includes('belay apply examples/event-type-owner'));
      assert.ok(seen.includes('- [ ] the SQL of every step was read'));
      const shown = outsideDetails(rb).length;
      assert.ok(shown < 160, `a reviewer sees ${shown} lines before opening anything`);
    });

    test("regression: a runbook written after the run does not list belay's own fence trigger as a table changed indirectly", async () => {
      const fences = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_trigger WHERE tgname ~ '^belay_fence_r[0-9]+_s[0-9]+$'`);
      assert.ok(fences.rows[0]!.n > 0, 'the run left its fence trigger (what the runbook would otherwise report)');
      assert.doesNotMatch(rb, /belay_fence_|belay\.fence_/);
    });

    test('REPORT.md opens with one screen: what changed, what blocked or was left out, how to undo', () => {
      const summary = section(rp, 1);
      assert.ok(summary.length < 60, `the summary is ${summary.length} lines`);
      const text = summary.join('\n');
      assert.match(text, new RegExp(`^\\*\\*completed\\*\\* on .+: ${fmt(assign)} row\\(s\\) changed in `, 'm'));
      assert.ok(text.includes(`- Step 1 assign-owner: **${fmt(assign)}** row(s) of \`EventType\` (\`userId\`) changed, of ${fmt(assign)} decided (done).`));
      assert.ok(text.includes('- Row counts: the same before and after in all 3 table(s).'));
      assert.ok(text.includes('- Schema: unchanged.'));
      assert.ok(text.includes('- No check of severity error found rows.'));
      assert.match(text, /- Reported and left unchanged: `ORPHAN_LINK_USER` [\d,]+, .*`UNOWNED` [\d,]+/);
      assert.ok(text.includes('- Verification: 2 round(s); the last (round 2, verify) passed its'));
      assert.ok(text.includes(`- \`belay rollback ${runId}\`: every one of the ${fmt(assign)} written row(s) back to its before-image`));
      assert.ok(text.includes(`- \`belay rollback ${runId} --from-backup\`: the 1 table(s)`));
    });

    test('REPORT.md shows the batches as a chart and the ten slowest; every batch only folded', async () => {
      const stored = (
        await db.query<{ batch_no: number; ms: number }>('SELECT batch_no, duration_ms::float8 AS ms FROM belay.batches WHERE run_id = $1 ORDER BY batch_no', [
          runId,
        ])
      ).rows;
      assert.ok(stored.length > 10, `${stored.length} batches: the test needs more than ten`);
      const lines = section(rp, 7);
      const seen = outsideDetails(lines.join('\n'));
      const slowest = tableAfter(seen, 'The 10 slowest:');
      assert.equal(slowest.length, 10);
      const listed = new Set(slowest.map((r) => Number(r[1])));
      const cut = Math.min(...stored.filter((b) => listed.has(b.batch_no)).map((b) => b.ms));
      for (const b of stored) if (!listed.has(b.batch_no)) assert.ok(b.ms <= cut, `batch ${b.batch_no} (${b.ms} ms) is slower than one listed (${cut} ms)`);
      // in view: no other batch row; folded: every batch, in commit order
      assert.equal(seen.filter((l) => /^\| 1 \| \d+ \| /.test(l)).length, 10);
      const all = tableAfter(lines, `<summary>Every batch (${stored.length}), in commit order</summary>`);
      assert.deepEqual(
        all.map((r) => Number(r[1])),
        stored.map((b) => b.batch_no),
      );
      // the chart: one bar per batch (or per group of batches), and a histogram whose counts add up to every batch
      const chart = lines.slice(lines.indexOf('```text') + 1, lines.indexOf('```', lines.indexOf('```text') + 1));
      assert.match(chart[0]!, /^duration of each batch in commit order; █ = /);
      assert.equal([...chart[1]!].length, stored.length);
      const histogram = chart.slice(chart.indexOf('') + 2).map((l) => Number(l.split(' ').pop()!.replace(/,/g, '')));
      assert.equal(
        histogram.reduce((n, x) => n + x, 0),
        stored.length,
      );
    });

    test('REPORT.md of a run with more batches than it lists names the ten slowest and points to the HTML and the JSON for the rest', async () => {
      const data = await buildReport(db, runId);
      const n = data.timings.batches.length;
      const md = renderReportMarkdown(data, { listBatches: n - 1 });
      const lines = section(md, 7);
      assert.ok(!md.includes('<summary>Every batch'));
      assert.equal(lines.filter((l) => /^\| 1 \| \d+ \| /.test(l)).length, 10, 'only the ten slowest');
      assert.ok(
        lines.includes(
          `Every batch (${n}) is listed in the HTML report (\`belay report ${runId} --format html\`) and in \`belay report ${runId} --format json\`.`,
        ),
      );
      // at the limit every batch is still listed
      assert.ok(renderReportMarkdown(data, { listBatches: n }).includes(`<summary>Every batch (${n}), in commit order</summary>`));
    });

    test('REPORT.md labels every verification check with its round, and shows schema only where it changed', async () => {
      const rounds = (
        await db.query<{ source: string; n: number }>(
          `SELECT v.source, count(r.*)::int AS n FROM belay.verifications v JOIN belay.verification_results r ON r.verification_id = v.id
            WHERE v.run_id = $1 GROUP BY v.id, v.source ORDER BY v.id`,
          [runId],
        )
      ).rows;
      assert.deepEqual(
        rounds.map((r) => r.source),
        ['apply', 'verify'],
      );
      const lines = section(rp, 5);
      const table = tableAfter(lines, '_Recorded verification rounds (apply, verify, monitor), numbered in the order they ran._');
      assert.deepEqual(
        table.map((r) => [r[0], r[1], r[3], r[4]]),
        rounds.map((r, i) => [String(i + 1), r.source, 'pass', String(r.n)]),
      );
      const checks = tableAfter(lines, `<summary>Every check of every round (${rounds[0]!.n + rounds[1]!.n}), by round</summary>`);
      assert.deepEqual(
        checks.map((r) => r[0]),
        rounds.flatMap((r, i) => Array(r.n).fill(`${i + 1} (${r.source})`)),
      );
      const schema = section(rp, 9).join('\n');
      assert.ok(schema.includes('Unchanged: `EventType`, `_user_eventtype`, `users` (columns, indexes and constraints as before the run).'));
      assert.doesNotMatch(schema, /\*\*Columns\*\*|`title`|EventType_userId_slug_key/);
    });

    test('no document names a machine-local path, and the event log has no JSON escaped twice', () => {
      for (const [name, doc] of [
        ['RUNBOOK.md', rb],
        ['REPORT.md', rp],
        ['report.html', html],
      ] as const) {
        assert.ok(!doc.includes(ROOT), `${name} names the checkout ${ROOT}`);
        assert.ok(!doc.includes(tmp), `${name} names ${tmp}`);
        assert.ok(doc.includes('examples/event-type-owner/migration.ts'), `${name} names the migration relative to the project`);
      }
      assert.ok(rp.includes('| Migration file | `examples/event-type-owner/migration.ts` |'));
      const log = section(rp, 7).join('\n');
      assert.ok(!log.includes('\\"'), 'REPORT.md event log escapes quotes');
      assert.ok(log.includes(`| backup-taken | copy: "belay_backup"."r${runId}_EventType", `));
      assert.ok(!html.includes('\\&quot;'), 'report.html escapes quotes');
      assert.ok(html.includes(`copy: &quot;belay_backup&quot;.&quot;r${runId}_EventType&quot;`));
    });

    test('report.html of a run with long values (80-character keys, backup files with their sha256, a long SQL line) still fits 1280 px', {
      skip: NO_BROWSER,
    }, async () => {
      await db.exec(`CREATE TABLE wide_items (code text PRIMARY KEY, note text);
        INSERT INTO wide_items SELECT repeat('k', 80) || lpad(g::text, 4, '0'), NULL FROM generate_series(1, 120) g;`);
      const spec = validate({
        id: 'wide-items',
        purpose: 'Notes for every item, then a column added by one long statement.',
        tables: ['wide_items'],
        steps: [
          {
            kind: 'batched',
            name: 'note',
            table: 'wide_items',
            key: 'code',
            writes: ['note'],
            projection: `SELECT code, 'n-' || right(code, 4) AS note FROM wide_items WHERE code BETWEEN $1 AND $2`,
          },
          {
            kind: 'sql',
            name: 'add-flag',
            up: `ALTER TABLE wide_items ADD COLUMN flag_with_a_rather_long_name_for_the_purpose_of_this_test boolean NOT NULL DEFAULT false, ADD COLUMN another_long_column_name_that_keeps_the_line_going text DEFAULT 'a default value that is long as well'`,
            down: 'ALTER TABLE wide_items DROP COLUMN flag_with_a_rather_long_name_for_the_purpose_of_this_test, DROP COLUMN another_long_column_name_that_keeps_the_line_going',
          },
        ],
      });
      const wide: LoadedMigration = { spec, file: path.join(ROOT, 'wide-items.ts'), params: {}, checksum: checksumOf(spec, {}) };
      const r = await apply(db, wide, { batchSize: 30, stages: [backupStage({ dir: path.join(tmp, `backups-${kind}`) }), schemaSnapshotStage()] });
      assert.equal(r.status, 'completed', String(r.error?.message));
      const data = await buildReport(db, r.runId);
      assert.ok(
        data.backups.rows.every((b) => typeof b.file === 'string' && typeof b.file_sha256 === 'string'),
        'the backups have files',
      );
      const file = path.join(tmp, `wide-${kind}.html`);
      writeFileSync(file, renderReportHtml(data));
      const w = await widths(file);
      assert.ok(w.closed <= 1280 && w.open <= 1280, `the page is ${JSON.stringify(w)} px wide`);
    });

    test('report.html fits 1280 px with no horizontal scroll, every <details> closed or open, its summary on the first screen', {
      skip: NO_BROWSER,
    }, async () => {
      const page = await (await chromium()).newPage();
      const problems: string[] = [];
      page.on('console', (msg) => {
        if (msg.type() === 'error' || msg.type() === 'warning') problems.push(`console ${msg.type()}: ${msg.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      try {
        await page.setViewportSize({ width: 1280, height: 900 });
        await page.goto(`file://${htmlFile}`, { waitUntil: 'load' });
        const width = () => page.evaluate(() => document.documentElement.scrollWidth);
        assert.ok((await width()) <= 1280, `closed: the page is ${await width()} px wide`);
        const glance = await page.locator('#glance').boundingBox();
        assert.ok(glance && glance.y + glance.height <= 900, `the summary ends at ${glance && glance.y + glance.height} px`);
        assert.ok((await page.locator('#glance li').count()) >= 8);
        const folded = await page.locator('details').count();
        assert.ok(folded >= 4, `${folded} <details>`);
        assert.equal(await page.locator('table[data-table="slowest-batches"] tbody tr').count(), 10);
        assert.equal(await page.locator('table[data-table="batches"]').isVisible(), false, 'every batch is folded');
        await page.evaluate(() => {
          for (const d of document.querySelectorAll('details')) d.open = true;
        });
        assert.equal(await page.locator('table[data-table="batches"]').isVisible(), true);
        assert.ok((await width()) <= 1280, `open: the page is ${await width()} px wide`);
        const rounds = await page.locator('table[data-table="verification"] tbody tr td:first-child').allTextContents();
        assert.ok(rounds.length > 0 && rounds.every((r) => /^[12] \((apply|verify)\)$/.test(r)), rounds.join(', '));
        assert.deepEqual(problems, []);
      } finally {
        await page.close();
      }
    });
  });
}
