// The terminal (issue 17): colours on a terminal only (none with NO_COLOR, TERM=dumb, or output to a pipe or a
// file), and tables with numbers right-aligned and grouped in thousands.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { table } from '../src/cli/print.ts';
import { colourOn, paint } from '../src/cli/style.ts';
import { openDb } from '../src/db/connection.ts';
import { BELAY, runCli, TSX } from './helpers/cli.ts';
import { ROOT } from './helpers/flagship.ts';

const ESC = '\u001b[';

test('colours: on for a terminal; off with NO_COLOR, TERM=dumb, FORCE_COLOR=0 or when the stream is not a terminal', () => {
  const tty = { isTTY: true };
  assert.equal(colourOn(tty, {}), true);
  assert.ok(paint(tty, {}).red('x').includes(ESC), 'a terminal gets the escape codes');
  for (const env of [{ NO_COLOR: '1' }, { TERM: 'dumb' }, { FORCE_COLOR: '0' }]) {
    assert.equal(colourOn(tty, env), false, JSON.stringify(env));
    assert.equal(paint(tty, env).red('x'), 'x', JSON.stringify(env));
  }
  assert.equal(colourOn(tty, { NO_COLOR: '' }), true, 'an empty NO_COLOR does not count (no-color.org)');
  assert.equal(colourOn({ isTTY: false }, {}), false);
  assert.equal(colourOn({}, {}), false);
  assert.equal(colourOn({ isTTY: false }, { FORCE_COLOR: '1' }), true);
});

test('tables: numbers right-aligned with thousands separators, ids right-aligned as they are, text left-aligned', () => {
  const t = table(
    [
      { run: 7, step: 'fill', rows: 1234567, ms: 12.5 },
      { run: 12345, step: 'a-longer-step', rows: 5, ms: 1003.25 },
      { run: 3, step: 'x', rows: null, ms: 0 },
    ],
    ['run', 'step', 'rows', 'ms'],
    { ids: ['run'] },
  ).split('\n');
  assert.deepEqual(t, [
    '  run  step                rows        ms',
    '-----  -------------  ---------  --------',
    '    7  fill           1,234,567      12.5',
    '12345  a-longer-step          5  1,003.25',
    '    3  x                                0',
  ]);
});

test('the command line prints no escape code to a pipe, nor with NO_COLOR on a terminal; colours on a terminal otherwise', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'belay-tty-'));
  try {
    const url = `pglite:${path.join(dir, 'db')}`;
    const db = await openDb(url);
    await db.exec(`CREATE TABLE t (id int PRIMARY KEY)`);
    await db.close();
    const piped = await runCli(['status', '--db', url]);
    const failed = await runCli(['report', '1', '--db', url]);
    for (const r of [piped, failed]) assert.ok(!`${r.stdout}${r.stderr}`.includes('\u001b'), `no escape code in ${r.stdout}${r.stderr}`);
    assert.match(failed.stderr, /error \[/);
    // a terminal, through script(1) where the machine has it
    if (!existsSync('/usr/bin/script')) return;
    const onTty = (env: Record<string, string>) =>
      execFileSync('/usr/bin/script', ['-qec', `"${process.execPath}" --import "${TSX}" "${BELAY}" report 1 --db "${url}"`, '/dev/null'], {
        cwd: ROOT,
        env: { ...process.env, FORCE_COLOR: '', NO_COLOR: '', TERM: 'xterm', ...env },
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      }).toString();
    const run = (env: Record<string, string>) => {
      try {
        return onTty(env);
      } catch (e) {
        return String((e as { stdout?: string }).stdout ?? '');
      }
    };
    assert.ok(run({}).includes(ESC), 'an error on a terminal is coloured');
    assert.ok(!run({ NO_COLOR: '1' }).includes('\u001b'), 'NO_COLOR: no escape code on a terminal');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
