// belay straight from its TypeScript sources, without a build: `node --import tsx scripts/belay-src.ts <args>`.
// The tests run the CLI this way so that they always test the sources as they are; the package test runs
// the built bin/belay.mjs from a packed tarball.
import { main } from '../src/cli/main.ts';

process.exitCode = await main(process.argv);
