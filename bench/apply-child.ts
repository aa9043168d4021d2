// Runs one belay apply of the flagship in its own process, so its peak memory is belay's alone.
import { openDb } from '../src/db/connection.ts';
import { apply } from '../src/execute/apply.ts';
import { loadMigration } from '../src/spec/load.ts';
import { FLAGSHIP_DIR } from '../src/cli/commands/demo.ts';

const [url, batch, verify] = process.argv.slice(2);
const db = await openDb(url!);
const m = await loadMigration(FLAGSHIP_DIR);
const spec = verify === 'no-verify'
  ? { ...m, spec: { ...m.spec, steps: m.spec.steps.map((s) => (s.kind === 'batched' ? { ...s, verify: undefined } : s)) } }
  : m;
const t0 = performance.now();
const r = await apply(db, spec, { batchSize: Number(batch) });
const ms = performance.now() - t0;
await db.close();
process.stdout.write(`${JSON.stringify({ ms, status: r.status, changed: r.steps[0]?.rowsChanged, batches: r.steps[0]?.batches, maxRssMb: process.resourceUsage().maxRSS / 1024, error: r.error?.message })}\n`);
