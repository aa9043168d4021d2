#!/usr/bin/env node
// The belay command: the compiled CLI in dist/ (npm run build makes it from src/; tsx loads only the
// user's migration files). scripts/belay-src.ts runs the same CLI straight from the sources.
import { existsSync } from 'node:fs';

const cli = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(cli)) {
  process.stderr.write('belay: the compiled CLI (dist/) is missing: run npm install (or npm run build) in the belay folder.\n');
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv);
