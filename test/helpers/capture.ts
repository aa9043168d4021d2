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
  const into = (lines: string[]) =>
    ((s: string | Uint8Array) => {
      lines.push(String(s));
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = into(out);
  process.stderr.write = into(err);
  try {
    const code = await main(['node', 'belay', ...args]);
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}
