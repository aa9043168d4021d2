// Runs the belay CLI as a child process, as a user would, from the sources (scripts/belay-src.ts under tsx,
// what bin/belay.mjs runs once built), so that the suite needs no build.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BELAY_BIN = path.join(REPO, 'scripts/belay-src.ts');
/** tsx by its file URL: a bare 'tsx' would be looked up from the child's working directory. */
const TSX = import.meta.resolve('tsx');
export const FLAGSHIP = path.join(REPO, 'examples/event-type-owner');

export interface CliRun {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** True when the run was killed by killAfterMs. */
  killed: boolean;
}

export interface CliOptions {
  /** SIGKILL the process this many ms after it was spawned. */
  killAfterMs?: number;
  /** Extra environment (DATABASE_URL is removed unless given here). */
  env?: Record<string, string>;
  cwd?: string;
  /** Called once with each complete stdout line (e.g. --json events). */
  onLine?: (line: string) => void;
  timeoutMs?: number;
}

export function runBelay(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  const t0 = performance.now();
  const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: undefined, BELAY_DEBUG: undefined, FORCE_COLOR: '0', ...opts.env };
  const child = spawn(process.execPath, ['--import', TSX, BELAY_BIN, ...args], { cwd: opts.cwd ?? REPO, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let pending = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    stdout += s;
    if (opts.onLine) {
      pending += s;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) opts.onLine(l);
    }
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  let killed = false;
  const timers: NodeJS.Timeout[] = [];
  if (opts.killAfterMs !== undefined) {
    timers.push(
      setTimeout(() => {
        killed = child.exitCode === null && child.signalCode === null;
        child.kill('SIGKILL');
      }, opts.killAfterMs),
    );
  }
  timers.push(setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      for (const t of timers) clearTimeout(t);
      resolve({ code, signal, stdout, stderr, ms: performance.now() - t0, killed: killed && signal === 'SIGKILL' });
    });
  });
}
