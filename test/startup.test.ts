// Start-up (issue 17): `belay --version` prints package.json's version, and --help and --version load commander
// and belay's own light modules only: each command imports its library (zod, pg, the pipeline) when it runs.
// The time itself is measured by bench/startup.ts (npm run bench:startup), not asserted here.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { packageVersion } from '../src/cli/main.ts';
import { BELAY, runCli, TSX } from './helpers/cli.ts';
import { ROOT } from './helpers/flagship.ts';

const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };

// the built command, installed from the packed tarball, is checked by test/package.test.ts (npx belay --version)
test('belay --version prints the version in package.json', async () => {
  assert.equal(packageVersion(), PKG.version);
  const src = await runCli(['--version']);
  assert.equal(src.code, 0, src.stderr);
  assert.equal(src.stdout.trim(), PKG.version);
});

test('belay --help and --version load no package but commander, and no library module of a command', async () => {
  for (const args of [['--help'], ['--version']]) {
    const dir = mkdtempSync(path.join(tmpdir(), 'belay-trace-'));
    try {
      const trace = path.join(dir, 'imports.txt');
      await promisify(execFile)(process.execPath, ['--import', TSX, '--import', path.join(ROOT, 'test/helpers/trace-imports.mjs'), BELAY, ...args], {
        env: { ...process.env, BELAY_TRACE_IMPORTS: trace },
      });
      const loaded = [...new Set(readFileSync(trace, 'utf8').trim().split('\n'))].filter((u) => u.startsWith('file:'));
      const packages = new Set(loaded.flatMap((u) => /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u)?.[1] ?? []));
      packages.delete('tsx'); // the sources' loader, not belay's
      assert.deepEqual([...packages], ['commander'], `belay ${args[0]} loads ${[...packages].join(', ')}`);
      const src = loaded.filter((u) => u.includes('/src/')).map((u) => u.slice(u.indexOf('/src/') + 5));
      for (const heavy of ['run/pipeline.ts', 'spec/numbers.ts', 'spec/define.ts', 'cli/progress.ts', 'state/event-schema.ts'])
        assert.ok(!src.includes(heavy), `belay ${args[0]} loads src/${heavy}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});
