// The command line: a thin layer that parses flags and calls one library function per command. Each command
// loads its library modules when it runs (dynamic imports in its action), so that --help and --version load
// commander and little else.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { EXIT, UsageError } from '../errors.ts';
import { errorJson, prepareCommand, out, reportError } from './context.ts';
import { COMMANDS } from './commands/index.ts';

/** The version in belay's package.json: two folders up from src/cli/ (the sources), three from dist/src/cli/ (the build). */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'belay-pg' && pkg.version) return pkg.version;
    } catch {
      // not this folder
    }
  }
  return 'unknown';
}

export async function main(argv: string[]): Promise<number> {
  const program = new Command('belay')
    .description('Safe, measured, reversible PostgreSQL data migrations')
    .version(packageVersion())
    .option('--db <url>', 'database: postgres://… or pglite:<dir> / pglite:memory (default: DATABASE_URL, also from ./.env or prisma/.env)')
    .option('--env <name>', 'a named environment of belay.config.json (instead of --db); dry runs, rehearsals and applies are recorded in belay-ledger.jsonl')
    .option('--json', 'machine-readable output: one JSON object per line')
    .exitOverride()
    .showHelpAfterError()
    // before a command parses its own flags: their number schemas and the project config's reader
    .hook('preSubcommand', prepareCommand);
  let code: number = EXIT.ok;
  for (const register of COMMANDS) {
    register(program, (c) => {
      code = c;
    });
  }
  try {
    await program.parseAsync(argv);
    return code;
  } catch (err) {
    const json = !!program.opts().json || argv.includes('--json');
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return EXIT.ok;
      // commander has said it on stderr already; a machine reads it here
      const fix = 'Read belay --help (or belay <command> --help) and run the command again.';
      if (json) out.json({ type: 'error', ...errorJson(new UsageError(err.message.replace(/^error: /, ''), fix)) });
      return EXIT.usage;
    }
    return reportError(err, json);
  }
}
