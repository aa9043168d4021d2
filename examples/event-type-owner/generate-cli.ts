// Fills a database with the flagship example's data.
//   npx tsx examples/event-type-owner/generate-cli.ts --db <url> --rows N [--seed S] [--no-schema]
// The database is --db or DATABASE_URL. Prints the counts per category and the time taken, as JSON.
import { parseArgs } from 'node:util';
import { openDb } from '../../src/db/connection.ts';
import { generate } from './generate.ts';

const USAGE = 'usage: generate-cli.ts --db <postgres://…|pglite:<dir>|pglite:memory> --rows N [--seed S] [--no-schema]';

async function main(): Promise<number> {
  const options = {
    db: { type: 'string' },
    rows: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '1' },
    'no-schema': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  } as const;
  let values: ReturnType<typeof parseArgs<{ options: typeof options; strict: true }>>['values'];
  try {
    ({ values } = parseArgs({ options, strict: true }));
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const url = values.db ?? process.env.DATABASE_URL;
  const rows = Number(values.rows);
  const seed = Number(values.seed);
  if (!url || !Number.isInteger(rows) || rows <= 0 || !Number.isInteger(seed)) {
    console.error(USAGE);
    return 2;
  }
  const db = await openDb(url, { applicationName: 'belay-generate' });
  try {
    const started = performance.now();
    const truth = await generate(db, { rows, seed, schema: !values['no-schema'] });
    const seconds = (performance.now() - started) / 1000;
    console.log(
      JSON.stringify(
        {
          db: db.label,
          rows: truth.rows,
          users: truth.users,
          teams: truth.teams,
          links: truth.links,
          seed: truth.seed,
          counts: truth.counts,
          orphanLinks: {
            missingUser: truth.orphanLinks.missingUser.length,
            missingEventType: truth.orphanLinks.missingEventType.length,
          },
          lowestPolicyConflicts: truth.lowestPolicyConflicts.size,
          seconds: Math.round(seconds * 100) / 100,
          rowsPerSecond: Math.round(truth.rows / seconds),
        },
        null,
        2,
      ),
    );
    return 0;
  } finally {
    await db.close();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  },
);
