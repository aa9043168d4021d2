// What belay init and belay new write. The example is a whole migration that runs as it is on a table
// users(id, email); belay new's scaffold is the same file with an empty purpose, so that it refuses to load
// (naming the field) until someone has written what it does.

export const REFERENCE_URL = 'https://github.com/belay-pg/belay/blob/main/docs/spec-reference.md';

export function migrationTemplate(id: string, purpose: string): string {
  return `// belay migration "${id}". Every field: ${REFERENCE_URL}
//   belay check ${id}       read-only pre-flight: each finding with the rows it concerns
//   belay dry-run ${id}     every batch run and rolled back: what would change, before → after
//   belay apply ${id}       backed up, in batches, verified; belay rollback <run> undoes it exactly
//   belay status            every migration of this folder with its state in the database
// The rule below lower-cases users.email: replace it with yours.
import type { MigrationInput } from 'belay-pg';

export default {
  id: '${id}',
  // required: a sentence or more on what the migration does and why (the runbook and the report open with it)
  purpose: ${JSON.stringify(purpose)},
  // every table the migration writes: each is backed up before the first write and verified after the last
  tables: ['users'],
  // pre-flight checks: SQL returning the rows concerned (none = pass); an error finding stops the apply
  checks: [
    {
      kind: 'sql',
      code: 'NO_EMAIL',
      severity: 'info',
      message: 'users without an e-mail address are left as they are',
      sql: \`SELECT id FROM users WHERE email IS NULL OR email = ''\`,
    },
  ],
  steps: [
    {
      kind: 'batched',
      name: 'lower-case-email',
      table: 'users',
      // the columns the step writes; the key defaults to the table's primary key
      writes: ['email'],
      // the rule, once, over the whole table: the key and the new value of every written column. Rows whose
      // values would not change are left out; a unique index on email is checked against the new values first.
      decide: 'SELECT id, lower(email) AS email FROM users WHERE email IS NOT NULL',
      // runs inside each batch before it commits (written = the rows it wrote): a row returned is left unchanged
      verify: 'SELECT id FROM written WHERE email IS DISTINCT FROM lower(email)',
    },
  ],
  // the run's settings, here with their defaults
  options: { batchSize: 10_000, lockTimeoutMs: 2_000, statementTimeoutMs: 60_000 },
} satisfies MigrationInput;
`;
}

export const EXAMPLE_ID = 'example-lower-case-emails';
export const EXAMPLE_PURPOSE = 'Lower-case every user e-mail address, so that sign-in compares addresses however they were typed.';

export const GITIGNORE_ENTRIES = [
  // database URLs with passwords (Prisma reads both, and so does belay)
  '.env',
  // exported backups hold production rows: --backup-dir belay-backups, belay cleanup --dir belay-backups/archive
  'belay-backups/',
  'belay-demo-out/',
] as const;
