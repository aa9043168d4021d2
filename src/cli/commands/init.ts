import path from 'node:path';
import type { Command } from 'commander';
import type { ScaffoldAction } from '../../run/scaffold.ts';
import { type GlobalOptions, out } from '../context.ts';

export function registerInit(program: Command): void {
  program
    .command('init')
    .description('write belay.config.json, a migrations folder with a commented example, and .gitignore entries (never overwrites a file)')
    .option('--migrations-dir <dir>', 'the folder of the migrations, relative to the project', 'migrations')
    .action(async (o: { migrationsDir: string }, cmd: Command) => {
      const { initProject } = await import('../../run/scaffold.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      print(initProject(process.cwd(), { migrationsDir: o.migrationsDir }), g.json);
      if (!g.json) out.line('next: belay new <name>, then belay check <name> and belay status');
    });

  program
    .command('new <name>')
    .description("scaffold <migrationsDir>/<UTC timestamp>_<name>/migration.ts from the template; the name is the migration's id")
    .action(async (name: string, _o: unknown, cmd: Command) => {
      const { loadProjectConfig } = await import('../../config/environments.ts');
      const { newMigration } = await import('../../run/scaffold.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const a = newMigration(loadProjectConfig(), name);
      print([a], g.json);
      if (!g.json) out.line(`next: write its purpose and rule, then belay check ${name}`);
    });
}

function print(actions: ScaffoldAction[], json?: boolean): void {
  for (const a of actions) {
    const shown = path.relative(process.cwd(), a.path) || '.';
    if (json) out.json({ type: 'scaffold', ...a, path: shown });
    else out.line(`${a.action.padEnd(8)} ${shown}: ${a.detail}`);
  }
}
