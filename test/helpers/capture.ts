// Runs the command line in this process (faster than a child) and captures what it prints.
import { main } from '../../src/cli/main.ts';

export interface Captured {
  code: number;
  stdout: string;
  stderr: string;
}

/** belay <args> through main(), with stdout and stderr captured (not printed). */
export async function belay(args: string[]): Promise<Captured> {
  const out: string[] = [];
  const err: string[] = [];
  const w1 = process.stdout.write.bind(process.stdout);
  const w2 = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string | Uint8Array) => (out.push(String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => (err.push(String(s)), true)) as typeof process.stderr.write;
  try {
    const code = await main(['node', 'belay', ...args]);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}
