#!/usr/bin/env node
// The belay command: the compiled CLI in dist/ (npm run build makes it from src/; tsx loads only the
// user's migration files). scripts/belay-src.ts runs the same CLI straight from the sources.
import { existsSync, readFileSync } from 'node:fs';
import module from 'node:module';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (process.argv.length === 3 && (process.argv[2] === '--version' || process.argv[2] === '-V')) {
  // `belay --version` alone needs nothing but package.json (src/cli/main.ts reads the same field)
  process.stdout.write(`${JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version}\n`);
} else if (!existsSync(cli)) {
  process.stderr.write('belay: the compiled CLI (dist/) is missing: run npm install (or npm run build) in the belay folder.\n');
  process.exitCode = 1;
} else {
  // Node 22.1+: compiled code cached between runs (as tsc does), a faster start for every command
  module.enableCompileCache?.();
  const { main } = await import(cli.href);
  process.exitCode = await main(process.argv);
}
