// 5. The bad-input corpus (reliability/bad-input/cases.json, kept as data): each case runs the CLI and must
// exit with its documented code, print a clear message (what and where), never print a password or a
// stack trace, and leave the database checksum-identical. See reliability/bad-input/README.md.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compareFingerprints, type Fingerprint, fingerprint } from '../lib/audit.ts';
import { FLAGSHIP, runBelay } from '../lib/belay-cli.ts';
import { flagshipFixture, sizes } from '../lib/flagship.ts';
import { Prng } from '../lib/prng.ts';
import { ensureRoles, PW_ROLE, RO_ROLE, roleUrl, SECRET, SECRET_ENC, SECRET_ENC_RAW } from '../lib/roles.ts';
import { admin, cloneDb, dbUrl, dropDb, withDb } from '../lib/server.ts';
import { tempDir, writeFiles } from '../lib/spec-files.ts';
import { type Failure, outcome, type Outcome, pool, type Scenario, type SuiteOptions } from '../lib/suite.ts';
import { BACKUP_SCHEMA } from '../../src/backup/backup-sql.ts';
import { ident } from '../../src/db/sql.ts';

export const CASES_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), '../bad-input/cases.json');

export interface BadInputCase {
  name: string;
  /** A spec built from a base of the file: set (dotted path -> value) and unset (dotted paths). Written as migration.ts. */
  spec?: { base: string; set?: Record<string, unknown>; unset?: string[] };
  /** Files written into the case's folder ({dir}), relative path -> content (placeholders allowed). */
  files?: Record<string, string>;
  /** CLI arguments; placeholders {dir} {db} {flagship} {ro} {pwunreachable} {pwnodb} {secret} {secretenc}. */
  args: string[];
  /** Working directory (placeholders allowed); the repository by default. */
  cwd?: string;
  expectExit: number;
  /** Case-insensitive regular expression the output must match. */
  expectMessage: string;
  /** none: belay must not even create its schema; allowed: belay's own schemas may appear. */
  state: 'none' | 'allowed';
  note?: string;
}

export interface Corpus {
  bases: Record<string, Record<string, unknown>>;
  cases: BadInputCase[];
}

/** BELAY_RELIABILITY_CASES=<file> runs another corpus file (e.g. only new cases while writing them). */
export function loadCorpus(file = process.env.BELAY_RELIABILITY_CASES ?? CASES_FILE): Corpus {
  return JSON.parse(readFileSync(file, 'utf8')) as Corpus;
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown, remove = false): void {
  const parts = dotted.split('.');
  let cur = obj as Record<string, unknown>;
  for (const p of parts.slice(0, -1)) cur = cur[p] as Record<string, unknown>;
  const last = parts.at(-1)!;
  if (remove) delete cur[last];
  else cur[last] = value;
}

export function buildSpec(corpus: Corpus, c: NonNullable<BadInputCase['spec']>): Record<string, unknown> {
  const spec = structuredClone(corpus.bases[c.base]!);
  for (const [k, v] of Object.entries(c.set ?? {})) setPath(spec, k, v);
  for (const k of c.unset ?? []) setPath(spec, k, undefined, true);
  return spec;
}

/** The short (CI) version: a deterministic sample of the corpus. */
export function sampleCases(cases: BadInputCase[], n: number, seed: number): BadInputCase[] {
  const prng = new Prng(seed);
  const idx = cases.map((_, i) => i);
  for (let i = idx.length - 1; i > 0; i--) {
    const j = prng.int(0, i);
    [idx[i], idx[j]] = [idx[j]!, idx[i]!];
  }
  return idx
    .slice(0, n)
    .sort((a, b) => a - b)
    .map((i) => cases[i]!);
}

const STACK = /\n\s+at .+:\d+:\d+\)?/;

async function resetState(name: string): Promise<void> {
  await withDb(name, (db) => db.exec(`DROP SCHEMA IF EXISTS belay CASCADE; DROP SCHEMA IF EXISTS ${ident(BACKUP_SCHEMA)} CASCADE;`));
}

export const badInput: Scenario = {
  name: 'bad-input',
  async run(opts: SuiteOptions): Promise<Outcome[]> {
    const corpus = loadCorpus();
    const { rows, batch } = sizes(opts.short);
    const fx = await flagshipFixture(rows, batch, opts.seed);
    await ensureRoles();
    const cases = opts.short ? sampleCases(corpus.cases, 15, 8) : corpus.cases;
    const workers = Math.max(1, opts.parallel);
    const dbs: string[] = [];
    for (let w = 0; w < workers; w++) dbs.push(await cloneDb(fx.base, 'bad'));
    const pristine = new Map<string, Fingerprint>();
    for (const d of dbs) pristine.set(d, await withDb(d, fingerprint));
    const free = [...dbs];
    const exits: Record<number, number> = {};
    try {
      const results = await pool(cases, workers, async (c, i): Promise<Failure | null> => {
        let name = free.pop()!;
        const t = tempDir('bad');
        const problems: string[] = [];
        try {
          await resetState(name);
          const before = pristine.get(name)!;
          const sub = (s: string) =>
            s
              .replaceAll('{dir}', t.dir)
              .replaceAll('{db}', dbUrl(name))
              .replaceAll('{flagship}', FLAGSHIP)
              .replaceAll('{ro}', roleUrl(RO_ROLE, name))
              .replaceAll('{pwunreachable}', roleUrl(PW_ROLE, name, SECRET, '1'))
              .replaceAll('{pwnodb}', roleUrl(PW_ROLE, 'belay_rel_no_such_db', SECRET))
              .replaceAll('{secretenc}', SECRET_ENC)
              .replaceAll('{secret}', SECRET);
          if (c.spec) writeFiles(t.dir, { 'migration.ts': `export default ${JSON.stringify(buildSpec(corpus, c.spec), null, 2)};\n` });
          if (c.files) writeFiles(t.dir, Object.fromEntries(Object.entries(c.files).map(([k, v]) => [k, sub(v)])));
          const run = await runBelay(c.args.map(sub), { cwd: c.cwd ? sub(c.cwd) : undefined, timeoutMs: 60_000 });
          const output = `${run.stdout}\n${run.stderr}`;
          exits[run.code ?? -1] = (exits[run.code ?? -1] ?? 0) + 1;
          if (run.code !== c.expectExit) problems.push(`exit ${run.code}, expected ${c.expectExit}: ${output.trim().slice(0, 400)}`);
          if (!new RegExp(c.expectMessage, 'i').test(output)) problems.push(`output does not match /${c.expectMessage}/: ${output.trim().slice(0, 400)}`);
          // usage errors come from the option parser ("error: …"); every other error names its stable code
          const errorLine = c.expectExit === 2 ? /error/i : /error \[BELAY_[A-Z_]+\]/;
          if (c.expectExit !== 0 && !errorLine.test(run.stderr)) problems.push('no error line with its code on stderr');
          if (STACK.test(output)) problems.push('a stack trace was printed');
          for (const s of [SECRET, SECRET_ENC, SECRET_ENC_RAW]) if (output.includes(s)) problems.push(`the password ${s.slice(0, 3)}… appears in the output`);
          const after = await withDb(name, fingerprint);
          const diff = compareFingerprints(before, after);
          problems.push(...diff);
          if (c.state === 'none' && after.belayState) problems.push('belay created its state schema for an input it should have refused first');
          if (diff.length > 0) {
            // restore a clean copy for the next case
            await dropDb(name);
            name = await cloneDb(fx.base, 'bad');
            pristine.set(name, await withDb(name, fingerprint));
          }
        } finally {
          t.remove();
          free.push(name);
          dbs.push(name);
        }
        return problems.length ? { trial: `case ${i} "${c.name}"`, seed: opts.seed, problems } : null;
      });
      const byExit = Object.entries(exits)
        .map(([code, count]) => `${count}× exit ${code}`)
        .join(', ');
      return [
        outcome('bad-input', `${cases.length} of ${corpus.cases.length} corpus cases (specs, SQL, identifiers, URLs, privileges, backup dir)`, results, byExit),
      ];
    } finally {
      for (const d of new Set(dbs)) await dropDb(d);
      await admin(async () => undefined);
    }
  },
};
