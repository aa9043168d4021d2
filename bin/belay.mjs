#!/usr/bin/env node
// belay ships TypeScript sources; tsx compiles them (and the user's migration files) on load.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv);
