import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { DEFAULT_BATCH_OVER, DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_LOCK_WAIT_MS, DEFAULT_RETRIES, DEFAULT_SAMPLE } from '../../prisma/defaults.ts';
import { DEFAULT_MIGRATIONS_DIR, listMigrations } from '../../prisma/migrations-dir.ts';
import { connect, type GlobalOptions, out, parsePositiveInt } from '../context.ts';

interface Flags {
  schema?: string;
  sample: number;
  info?: boolean;
  lockWarnMs?: number;
}

export function registerPrisma(program: Command, setExit: (c: number) => void): void {
  const prisma = program.command('prisma').description('Prisma migrations: predict from the live data whether pending migrations fail, and deploy them safely');
  const common = (c: Command) =>
    c
      .option('--schema <name>', 'the schema Prisma uses (default: the schema parameter of the URL, else public)')
      .option('--sample <n>', 'sample rows per finding', parsePositiveInt('--sample'), DEFAULT_SAMPLE)
      .option('--lock-warn-ms <n>', 'report locks that block writes for longer than this estimate', parsePositiveInt('--lock-warn-ms'));

  common(
    prisma
      .command('check [dir]')
      .description(`read-only: predict which pending migrations would fail, in one snapshot (default dir ${DEFAULT_MIGRATIONS_DIR}); exit 6 when one would`)
      .option('--info', 'also print findings of severity info'),
  ).action(async (dir: string | undefined, o: Flags, cmd: Command) => {
    const { prismaCheck } = await import('../../prisma/check.ts');
    const { renderCheck } = await import('../../prisma/format.ts');
    const g = cmd.optsWithGlobals<GlobalOptions>();
    listMigrations(dir ?? DEFAULT_MIGRATIONS_DIR); // a bad folder is reported before connecting
    const db = await connect(g);
    try {
      const r = await prismaCheck(db, { dir, schema: o.schema, sample: o.sample, lockWarnMs: o.lockWarnMs });
      if (g.json) out.json({ type: 'prisma-check', ...r });
      else out.line(renderCheck(r, { info: o.info }));
      setExit(r.ok ? EXIT.ok : EXIT.checks);
    } finally {
      await db.close();
    }
  });

  common(
    prisma
      .command('deploy [dir]')
      .description('instead of prisma migrate deploy: check first, then run each pending migration the safe way and record it as Prisma does')
      .option('--plan', 'print the steps each migration would run (rewritten where a safe form exists) without running them')
      .option(
        '--lock-timeout <ms>',
        'lock_timeout of every step; a step that times out is retried',
        parsePositiveInt('--lock-timeout'),
        DEFAULT_LOCK_TIMEOUT_MS,
      )
      .option('--retries <n>', 'retries of a step after a lock timeout or deadlock', parsePositiveInt('--retries'), DEFAULT_RETRIES)
      .option('--lock-wait <ms>', "how long to wait for Prisma's migration lock", parsePositiveInt('--lock-wait'), DEFAULT_LOCK_WAIT_MS)
      .option(
        '--batch-over <rows>',
        'an UPDATE that opens a file runs as belay batched steps when its table has at least this many rows',
        parsePositiveInt('--batch-over'),
        DEFAULT_BATCH_OVER,
      )
      .option('--no-batch', "run every UPDATE in its file's transaction")
      .option('--no-rewrite', 'run each file as it is, in one transaction'),
  ).action(
    async (
      dir: string | undefined,
      o: Flags & { plan?: boolean; lockTimeout: number; retries: number; lockWait: number; rewrite: boolean; batch: boolean; batchOver: number },
      cmd: Command,
    ) => {
      const { prismaDeploy } = await import('../../run/prisma-deploy.ts');
      const { renderDeploy } = await import('../../prisma/format.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      listMigrations(dir ?? DEFAULT_MIGRATIONS_DIR);
      const db = await connect(g);
      try {
        const r = await prismaDeploy(db, {
          dir,
          schema: o.schema,
          sample: o.sample,
          lockWarnMs: o.lockWarnMs,
          plan: o.plan,
          lockTimeoutMs: o.lockTimeout,
          retries: o.retries,
          lockWaitMs: o.lockWait,
          rewrite: o.rewrite ? undefined : false,
          batchOver: o.batch ? o.batchOver : Number.POSITIVE_INFINITY,
          log: g.json ? undefined : (l) => out.err(l),
        });
        if (g.json) out.json({ type: 'prisma-deploy', ...r });
        else out.line(renderDeploy(r));
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    },
  );
}
