// Runs the belay command line as a child process, the way a user does, from the sources (no build needed:
// a test always sees src/ as it is; test/package.test.ts runs the built command from the packed tarball).
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { Rng } from '../../examples/event-type-owner/generate.ts';
import { ROOT } from './flagship.ts';

export const BELAY = path.join(ROOT, 'scripts/belay-src.ts');
/** tsx by its file URL: a bare 'tsx' would be looked up from the child's working directory. */
export const TSX = import.meta.resolve('tsx');

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs belay with args; killAfterMs sends SIGKILL after that delay, killAfterBatches when the child has
 * reported that many committed batches (with --json): a kill that lands mid-run, whatever the machine's speed.
 * onLine sees every line of standard output as it comes, with the child (to send it a signal).
 */
export function runCli(
  args: string[],
  opts: {
    killAfterMs?: number;
    killAfterBatches?: number;
    env?: Record<string, string>;
    cwd?: string;
    onLine?: (line: string, child: ChildProcess) => void;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', TSX, BELAY, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, DATABASE_URL: '', ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let batches = 0;
    let pending = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      if (opts.onLine) {
        const lines = (pending + String(d)).split('\n');
        pending = lines.pop()!;
        for (const l of lines) opts.onLine(l, child);
      }
      if (opts.killAfterBatches === undefined) return;
      batches += (String(d).match(/"type":"batch-committed"/g) ?? []).length;
      if (batches >= opts.killAfterBatches) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d) => (stderr += d));
    const timer = opts.killAfterMs === undefined ? undefined : setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs);
    child.on('close', (code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A seeded generator (the flagship generator's mulberry32), so a failing trial can be replayed from its logged seed. */
export function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}
