// npm test: the test files under node's test runner (two at a time), on a PostgreSQL server found or started
// by test/helpers/pg-server.ts and handed to the tests as BELAY_TEST_SERVER. An embedded server is stopped
// and removed after the run, also when a test fails or the run is interrupted (Ctrl-C, SIGTERM).
//   node --import tsx scripts/test.ts [node --test flags…] [test files…]   (no file: every test/*.test.ts)
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { testServer } from '../test/helpers/pg-server.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SIGNALS = { SIGINT: 2, SIGTERM: 15 } as const;

const args = process.argv.slice(2);
const files = args.some((a) => !a.startsWith('-'))
  ? []
  : readdirSync(path.join(ROOT, 'test'))
      .filter((f) => f.endsWith('.test.ts'))
      .sort()
      .map((f) => path.join('test', f));

let server: Awaited<ReturnType<typeof testServer>>;
try {
  server = await testServer();
} catch (err) {
  process.stderr.write(`npm test: no PostgreSQL server for the tests: ${(err as Error).message}\n`);
  process.exit(1);
}
process.stderr.write(`npm test: PostgreSQL for the tests: ${server.origin}\n`);

const child = spawn(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...args, ...files], {
  cwd: ROOT,
  stdio: 'inherit',
  env: { ...process.env, BELAY_TEST_SERVER: server.url },
});
// Ctrl-C reaches the test runner through the terminal too; SIGTERM may come to this process alone
let interrupted: keyof typeof SIGNALS | undefined;
for (const sig of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) {
  process.on(sig, () => {
    interrupted = sig;
    child.kill(sig);
  });
}

const code = await new Promise<number>((resolve) => {
  child.on('error', () => resolve(1));
  child.on('close', (c, sig) => resolve(c ?? 128 + (SIGNALS[sig as keyof typeof SIGNALS] ?? 1)));
});
try {
  await server.stop();
} catch (err) {
  process.stderr.write(`npm test: stopping the embedded server failed: ${(err as Error).message}\n`);
}
process.exit(interrupted ? 128 + SIGNALS[interrupted] : code);
