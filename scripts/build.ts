// npm run build: dist/ from scratch (a file moved or removed in src/ must not ship from an old build), then the
// files tsc does not copy.
import { copyFileSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DIST = path.join(ROOT, 'dist');

rmSync(DIST, { recursive: true, force: true });
execFileSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json')], { stdio: 'inherit' });
// the demo's generator reads its schema next to itself
copyFileSync(path.join(ROOT, 'examples/event-type-owner/schema.sql'), path.join(DIST, 'examples/event-type-owner/schema.sql'));
