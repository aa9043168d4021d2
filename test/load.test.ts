// The short version of the load scenario (npm run reliability -- --only load is the full one): pgbench as the
// application at 200 tx/s during apply and during rollback of the flagship on 1,000 rows, every write audited.
// Skipped with the reason where pgbench is missing, unless BELAY_REQUIRE_TOOLS=1 (then it fails).
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { renderFailures, renderTable, runSuite } from '../reliability/run.ts';
import type { Outcome } from '../reliability/lib/suite.ts';
import { pgbenchMissing } from '../reliability/lib/pgbench.ts';

describe('load (short): pgbench as the application during apply and rollback', { skip: pgbenchMissing(), timeout: 900_000 }, () => {
  let rows: Outcome[] = [];
  const log: string[] = [];
  before(async () => {
    rows = await runSuite({ seed: 20260119, short: true, parallel: 1, log: (s) => log.push(s) }, ['load']);
  });
  const held = (scenario: string) => {
    const r = rows.find((x) => x.scenario === scenario);
    assert.ok(r, `${scenario} reported:\n${renderTable(rows)}\n${log.join('\n')}`);
    assert.equal(r.failures.length, 0, `\n${renderTable([r])}\n${renderFailures([r])}\n${log.join('\n')}`);
    assert.equal(r.held, r.trials);
  };

  // the flagship as written, then with options.maxRejected raised so that its batches all commit
  for (const tag of ['load', 'load/maxRejected']) {
    test(`${tag}: every audited application write is present afterwards (titles, owners, slugs, inserted rows, links)`, () => held(`${tag}/writes-kept`));
    test(`${tag}: conflicts reported = conflicts made: rows the application wrote while belay's value held (the same value too) are the rollback's conflicts, earlier writes the rows skipped as changed`, () =>
      held(`${tag}/conflicts`));
    test(`${tag}: the application never failed a transaction, and its latency was measured in every phase`, () => {
      held(`${tag}/application`);
      assert.match(rows.find((x) => x.scenario === `${tag}/application`)!.figures, /without belay p50 .* during apply p50 .* during rollback p50/);
    });
    test(`${tag}: rollback under load ends rolled_back and restores every row the application did not give an owner`, () => held(`${tag}/rollback`));
    test(`${tag}: apply under load ends completed, the application's changes listed as warnings`, () => held(`${tag}/apply`));
  }
});
