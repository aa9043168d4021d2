// pgbench as the application: the scripts of reliability/load/ with their weights, at a fixed rate, with
// every transaction's latency logged (-l). A phase while belay runs is a series of short pgbench runs until
// belay's process ends: pgbench writes its log only when it exits normally, so it is never interrupted.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PGBENCH = process.env.PGBENCH || '/usr/bin/pgbench';
export const LOAD_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'load');

/** The application's mix: script file -> weight (pgbench -f file@weight). */
export const MIX: Readonly<Record<string, number>> = {
  'title.sql': 40,
  'assign.sql': 15,
  'transfer.sql': 15,
  'insert.sql': 13,
  'link-add.sql': 6,
  'link-del.sql': 3,
  'rename.sql': 3,
  // every 1 of weight is 2 tx/s at 200 tx/s: 6 colliding renames a second, 18 link edits
};

export interface BenchOptions {
  url: string;
  /** 0 baseline, 1 during apply, 2 during rollback: recorded with every audited write. */
  phase: number;
  rate: number;
  clients: number;
  /** pgbench's --random-seed: the scripts' choices of rows (the interleaving with belay is the server's). */
  seed: number;
  /** Script variables (-D): sizes of the target tables, the key range. */
  vars: Record<string, number>;
}

export interface BenchRun {
  /** Transactions pgbench completed. */
  transactions: number;
  /** Failed transactions and aborted clients as pgbench counts them (none is expected). */
  failed: number;
  /** Per-transaction latencies in microseconds, from the scheduled start (-R): what the application waited. */
  latencies: number[];
  ms: number;
  problems: string[];
}

function once(o: BenchOptions, seconds: number): Promise<BenchRun> {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-pgbench-'));
  const args = [
    '--no-vacuum',
    `--client=${o.clients}`,
    '--jobs=1',
    `--rate=${o.rate}`,
    `--time=${seconds}`,
    '--log',
    `--log-prefix=${path.join(dir, 'tx')}`,
    ...Object.entries(o.vars).map(([k, v]) => `--define=${k}=${v}`),
    `--define=phase=${o.phase}`,
    `--random-seed=${o.seed}`,
    ...Object.entries(MIX).map(([f, w]) => `--file=${path.join(LOAD_DIR, f)}@${w}`),
    o.url,
  ];
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(PGBENCH, args, { maxBuffer: 16 << 20, env: { ...process.env, PGAPPNAME: 'belay-reliability-pgbench' } }, (err, stdout, stderr) => {
      const latencies: number[] = [];
      for (const f of readdirSync(dir)) {
        for (const line of readFileSync(path.join(dir, f), 'utf8').split('\n')) {
          const cols = line.split(' ');
          if (cols.length >= 6 && /^\d+$/.test(cols[2]!)) latencies.push(Number(cols[2]));
        }
      }
      rmSync(dir, { recursive: true, force: true });
      const processed = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1] ?? latencies.length);
      const failed = Number(/number of failed transactions: (\d+)/.exec(stdout)?.[1] ?? 0) + (stderr.match(/client \d+ aborted/g)?.length ?? 0);
      const problems = err ? [`pgbench exited ${(err as { code?: number }).code ?? err.message}: ${stderr.trim().split('\n').slice(-3).join(' | ')}`] : [];
      resolve({ transactions: processed, failed, latencies, ms: performance.now() - t0, problems });
    });
  });
}

/** One pgbench run of `seconds` (the baseline). */
export function bench(o: BenchOptions, seconds: number): Promise<BenchRun> {
  return once(o, seconds);
}

/** pgbench runs of `chunk` seconds back to back, the first at once, until `until` has settled. */
export async function benchWhile(o: BenchOptions, chunk: number, until: Promise<unknown>): Promise<BenchRun> {
  let done = false;
  void until.then(
    () => (done = true),
    () => (done = true),
  );
  const all: BenchRun = { transactions: 0, failed: 0, latencies: [], ms: 0, problems: [] };
  do {
    const r = await once(o, chunk);
    all.transactions += r.transactions;
    all.failed += r.failed;
    all.latencies.push(...r.latencies);
    all.ms += r.ms;
    all.problems.push(...r.problems);
  } while (!done && all.problems.length === 0);
  return all;
}

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

/** Latency percentiles in milliseconds (nearest rank). */
export function percentiles(us: readonly number[]): Percentiles {
  const s = [...us].sort((a, b) => a - b);
  const at = (q: number) => (s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]! / 1000 : 0);
  return { p50: at(0.5), p99: at(0.99), max: at(1) };
}

export const fmtLatency = (p: Percentiles) => `p50 ${p.p50.toFixed(1)} / p99 ${p.p99.toFixed(1)} / max ${p.max.toFixed(0)} ms`;

/** The reason to skip the load scenario, or false when pgbench is there (BELAY_REQUIRE_TOOLS=1: never skip). */
export function pgbenchMissing(): string | false {
  if (process.env.BELAY_REQUIRE_TOOLS === '1' || existsSync(PGBENCH)) return false;
  return `${PGBENCH} is missing (PostgreSQL's server package: apt-get install -y postgresql-15, or set PGBENCH); CI sets BELAY_REQUIRE_TOOLS=1, under which the load test fails instead`;
}
