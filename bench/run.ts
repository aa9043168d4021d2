// npm run bench: belay against the physical limit and naive peers on the local server. Ratios, not absolutes.
import { parseArgs } from 'node:util';
import { benchApply } from './apply.ts';

const { values } = parseArgs({ options: { rows: { type: 'string', default: '1000000' }, runs: { type: 'string', default: '3' }, only: { type: 'string' } } });
const rows = Number(values.rows);
const runs = Number(values.runs);
const only = values.only?.split(',');
const want = (name: string) => !only || only.includes(name);

const fmt = (n: number, d = 2) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`belay benchmark: ${rows.toLocaleString('en-US')} event types, PostgreSQL server, median of ${runs}\n`);

if (want('apply')) {
  const a = await benchApply(rows, runs);
  console.log('## apply');
  console.log('| work | time (s) | rows/s | vs one UPDATE | note |\n| --- | ---: | ---: | ---: | --- |');
  for (const f of a.figures) console.log(`| ${f.work} | ${fmt(f.seconds)} | ${Math.round(f.rowsPerSec).toLocaleString('en-US')} | ${fmt(f.vsUpdate, 3)} | ${f.note ?? ''} |`);
  console.log(`\nrows changed: ${a.changed}; belay peak RSS: ${fmt(a.peakRssMb, 0)} MB (target < 200 MB)\n`);
}

const extra: Array<[string, string, string]> = [
  ['check', './check.ts', 'benchCheck'],
  ['backup', './backup.ts', 'benchBackup'],
  ['plan', './plan.ts', 'benchPlan'],
  ['rollback', './rollback.ts', 'benchRollback'],
  ['prisma', './prisma.ts', 'benchPrisma'],
];
for (const [name, file, fn] of extra) {
  if (!want(name)) continue;
  try {
    const mod = (await import(file)) as Record<string, (rows: number, runs?: number) => Promise<unknown>>;
    if (typeof mod.report === 'function') {
      console.log(`## ${name}`);
      console.log(await mod.report(rows, runs));
    } else if (typeof mod[fn] === 'function') {
      console.log(`## ${name}`);
      console.log(JSON.stringify(await mod[fn](rows), null, 2));
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_MODULE_NOT_FOUND') continue;
    console.log(`## ${name}: failed: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}
