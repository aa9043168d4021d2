#!/usr/bin/env node
// The belay command: the compiled CLI in dist/ (npm run build makes it from src/; tsx loads only the
// user's migration files). scripts/belay-src.ts runs the same CLI straight from the sources.
let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('/dist/src/cli/main.js')) throw err;
  process.stderr.write('belay: the compiled CLI (dist/) is missing: run npm install (or npm run build) in the belay folder.\n');
  process.exit(1);
}
process.exitCode = await cli.main(process.argv);
