// npm run bench: belay against the limit a user compares it with (the whole contract written set-based,
// bench/reference.sql) and naive peers, on the local server. Ratios measured in one run, not absolutes.
import { parseArgs } from 'node:util';
import { benchApply, benchWorkers, TARGETS } from './apply.ts';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '1000000' },
    runs: { type: 'string', default: '3' },
    only: { type: 'string' },
    profile: { type: 'boolean', default: false },
    workers: { type: 'string' },
    help: { type: 'boolean', default: false },
    'skip-peers': { type: 'boolean', default: false },
  },
});
if (values.help) {
  console.log(`npm run bench -- [options]
  --rows N          event types generated (default 1000000)
  --runs N          runs of each contender, the median is reported (default 3)
  --only a,b        only these parts: apply, workers, check, backup, plan, rollback, prisma (default: all but workers)
  --profile         apply: time every statement belay apply sends
  --skip-peers      apply: belay and the reference only, not the naive peers (for --rows 10000000)
  --workers 1,2,4   belay apply --workers N for each N against the reference (implies --only workers unless --only is given)`);
  process.exit(0);
}
const rows = Number(values.rows);
const runs = Number(values.runs);
const only = values.only?.split(',') ?? (values.workers ? ['workers'] : undefined);
const want = (name: string) => (only ? only.includes(name) : name !== 'workers');

const fmt = (n: number, d = 2) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
console.log(`belay benchmark: ${rows.toLocaleString('en-US')} event types, PostgreSQL server, median of ${runs}\n`);

if (want('apply')) {
  const a = await benchApply(rows, runs, { profile: values.profile, skipPeers: values['skip-peers'] });
  const b = a.belay;
  const rssTarget = rows >= 10_000_000 ? TARGETS.rssMb10M : TARGETS.rssMb;
  const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
  console.log('## apply: belay against the whole contract written set-based');
  console.log('| work | time (s) | vs reference | target | note |\n| --- | ---: | ---: | --- | --- |');
  for (const f of a.figures) console.log(`| ${f.work} | ${fmt(f.seconds)} | ${fmt(f.ratio)}× | ${f.target ?? ''} | ${f.note ?? ''} |`);
  console.log(`
rows changed: ${a.changed.toLocaleString('en-US')} by belay in ${b.batches} batches, "EventType" (id, "userId") identical to the reference's
step: ${fmt(b.stepMs / 1000 / a.reference)}× the reference (target ≤ ${TARGETS.step}×): ${verdict(b.stepMs / 1000 <= TARGETS.step * a.reference)}
whole command: ${fmt(b.commandMs / 1000 / a.reference)}× the reference (target ≤ ${TARGETS.command}×): ${verdict(b.commandMs / 1000 <= TARGETS.command * a.reference)}
longest lock hold of a committed batch (BEGIN to COMMIT): ${fmt(b.maxHeldMs, 0)} ms (p95 ${fmt(b.p95HeldMs, 0)} ms, ${fmt(b.meanBatchRows, 0)} rows a batch on average), ${b.heldOver} of ${b.batches} over ${TARGETS.batchMs} ms (target: none): ${verdict(b.heldOver === 0)}
  (belay.batches' longest batch, BEGIN to the end of its checks: ${fmt(b.maxRecordedMs, 0)} ms; attempts cancelled at the ${TARGETS.batchMs} ms ceiling and split: ${b.overCeiling}${b.overCeiling ? `, the longest held ${fmt(b.maxOverCeilingMs, 0)} ms until its ROLLBACK` : ''})
peak RSS of the belay apply process: ${fmt(b.peakRssMb, 0)} MB (target < ${rssTarget} MB): ${verdict(b.peakRssMb < rssTarget)}
`);
  if (b.statements) {
    console.log("### where belay apply's time goes (--profile: every statement it sent, summed; the pre-flight's sessions overlap)");
    console.log('| total (s) | calls | longest (ms) | statement |\n| ---: | ---: | ---: | --- |');
    for (const s of b.statements)
      console.log(`| ${fmt(s.ms / 1000)} | ${s.calls} | ${fmt(s.maxMs, 0)} | \`${s.sql.replace(/\|/g, '\\|').replace(/`/g, "'")}\` |`);
    console.log('');
  }
}

if (want('workers')) {
  const counts = (values.workers ?? '1,2,4').split(',').map(Number);
  const w = await benchWorkers(rows, runs, counts);
  const one = w.figures.find((f) => f.workers === 1) ?? w.figures[0]!;
  console.log('## apply --workers N: parallel key-range workers against the whole contract written set-based');
  console.log(`reference (bench/reference.sql): ${fmt(w.reference)} s\n`);
  console.log(
    '| workers | whole command (s) | vs reference | batched step (s) | vs reference | batches phase (s) | vs 1 worker | batches | longest lock hold (ms) | p95 hold (ms) | over 200 ms |',
  );
  console.log('| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const { workers, run: r } of w.figures) {
    console.log(
      `| ${workers} | ${fmt(r.commandMs / 1000)} | ${fmt(r.commandMs / 1000 / w.reference)}× | ${fmt(r.stepMs / 1000)} | ${fmt(r.stepMs / 1000 / w.reference)}× | ${fmt(r.batchesMs / 1000)} | ${fmt(r.batchesMs / one.run.batchesMs)}× | ${r.batches} | ${fmt(r.maxHeldMs, 0)} | ${fmt(r.p95HeldMs, 0)} | ${r.heldOver} |`,
    );
  }
  console.log('');
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
