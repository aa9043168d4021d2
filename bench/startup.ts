// npm run bench:startup: how long `belay --help` and `belay --version` take, as a user runs them (the built
// command, bin/belay.mjs over dist/: run npm run build first): the median of 10 runs each, after one warm-up
// run (the first start after a build also fills the OS file cache).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/belay.mjs');
const RUNS = 10;
/** The bar (issue 17): a median under this on the project's machine. */
export const STARTUP_BUDGET_MS = 250;

function timeRun(args: string[]): number {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - t0;
  if (r.status !== 0) throw new Error(`belay ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// the floor: node itself starting and exiting
const floor = median(
  Array.from({ length: RUNS }, () => {
    const t0 = performance.now();
    spawnSync(process.execPath, ['-e', '0']);
    return performance.now() - t0;
  }),
);
process.stdout.write(`node -e 0: median ${floor.toFixed(0)} ms (the floor on this machine now)\n`);
let over = false;
for (const args of [['--version'], ['--help']]) {
  timeRun(args);
  const times = Array.from({ length: RUNS }, () => timeRun(args));
  const m = median(times);
  over ||= m >= STARTUP_BUDGET_MS;
  process.stdout.write(
    `belay ${args.join(' ')}: median ${m.toFixed(0)} ms of ${RUNS} runs (min ${Math.min(...times).toFixed(0)}, max ${Math.max(...times).toFixed(0)}; budget ${STARTUP_BUDGET_MS} ms)\n`,
  );
}
process.exitCode = over ? 1 : 0;
