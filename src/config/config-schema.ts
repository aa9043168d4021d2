// The schema of belay.config.json: validated with zod on load, and published as
// schemas/belay.config.schema.json (scripts/schemas.ts) for editors that read a file's "$schema".
import { z } from 'zod';

export const DEFAULT_MIGRATIONS_DIR = 'migrations';

const environment = z
  .strictObject({
    url: z
      .string()
      .min(1, 'must be a non-empty string')
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the text names the `${NAME}` form literally
      .describe('postgres://… or pglite:…; `env:NAME` or `${NAME}` reads it from the process environment (or .env): keep passwords out of the file.'),
    protected: z
      .boolean({ error: 'must be true or false' })
      .default(false)
      .describe('An apply needs a passed rehearsal in another environment and a passed dry run here (or --override "<reason>").'),
  })
  .describe('A named database: `belay <command> --env <name>`.');

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('The JSON Schema of this file, for editors (belay init writes it).'),
    migrationsDir: z
      .string()
      .min(1, 'must be a non-empty folder path')
      .default(DEFAULT_MIGRATIONS_DIR)
      .describe('The folder of the migrations, relative to this file: `belay apply <id>` and `belay status` look there.'),
    environments: z
      .record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'an environment name is letters, digits, ".", "_" or "-"'), environment)
      .default({})
      .describe('Named environments; dry runs, rehearsals and applies on them are recorded in belay-ledger.jsonl.'),
  })
  .describe('belay.config.json: the project settings of belay (written by belay init).');

export type ConfigInput = z.input<typeof configSchema>;
export type ConfigFile = z.output<typeof configSchema>;
