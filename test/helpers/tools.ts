// Programs that some tests run besides node: Debian's Chromium (the HTML report) and psql (a rollback script
// run as a user runs it). Where one is missing, its tests are skipped with the reason, so that `npm test`
// passes on any machine; CI has both and sets BELAY_REQUIRE_TOOLS=1, under which those tests run anyway and
// a missing program fails them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FreshDb } from './fresh-db.ts';

export const CHROMIUM = process.env.BELAY_CHROMIUM || '/usr/bin/chromium';
export const PSQL = process.env.PSQL || '/usr/bin/psql';

/** The reason to skip a test that runs `program`, or false to run it. */
export function skipWithout(program: string, install: string): string | false {
  if (process.env.BELAY_REQUIRE_TOOLS === '1' || existsSync(program)) return false;
  return `${program} is missing (${install}); CI sets BELAY_REQUIRE_TOOLS=1, under which this test fails instead`;
}

export const NO_BROWSER = skipWithout(CHROMIUM, "Debian's chromium package: apt-get install -y chromium");
export const NO_PSQL = skipWithout(PSQL, 'a PostgreSQL client: apt-get install -y postgresql-client, or set PSQL');

export type Browser = Awaited<ReturnType<typeof import('playwright-core')['chromium']['launchPersistentContext']>>;

/** A headless Chromium with its profile in `dir`. Fails when it is not installed (see NO_BROWSER). */
export async function launchChromium(dir: string): Promise<Browser> {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: install Debian's chromium package (apt-get install -y chromium); CI installs it`);
  const { chromium } = await import('playwright-core');
  return chromium.launchPersistentContext(mkdtempSync(path.join(dir, 'chromium-')), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 900 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Runs a rollback script the way a user would: psql alone on the server; on PGlite, executed as is. */
export async function runScript(f: FreshDb, script: string): Promise<string> {
  if (f.db.kind === 'pglite') {
    await f.db.exec(script.replace(/^\\set .*$/m, ''));
    return '';
  }
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'belay-script-')), 'rollback.sql');
  writeFileSync(file, script);
  const r = await promisify(execFile)(PSQL, ['-X', '-v', 'ON_ERROR_STOP=1', '-f', file, f.url], { maxBuffer: 64 << 20 });
  return r.stdout + r.stderr;
}
