// The command line: a thin layer that parses flags and calls one library function per command.
import { Command, CommanderError } from 'commander';
import { EXIT } from '../errors.ts';
import { reportError } from './context.ts';
import { COMMANDS } from './commands/index.ts';

export async function main(argv: string[]): Promise<number> {
  const program = new Command('belay')
    .description('Safe, measured, reversible PostgreSQL data migrations')
    .version('0.1.0')
    .option('--db <url>', 'database: postgres://… or pglite:<dir> / pglite:memory (default: DATABASE_URL, also from ./.env or prisma/.env)')
    .option('--env <name>', 'a named environment of belay.config.json (instead of --db); dry runs, rehearsals and applies are recorded in belay-ledger.jsonl')
    .option('--json', 'machine-readable output: one JSON object per line')
    .exitOverride()
    .showHelpAfterError();
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
    if (err instanceof CommanderError) {
      return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help' ? EXIT.ok : EXIT.usage;
    }
    return reportError(err, !!program.opts().json);
  }
}
