import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import { report } from '../../run/documents.ts';
import { connect, type GlobalOptions, out, parsePositiveInt, parseRunId } from '../context.ts';

const FORMATS = ['md', 'json', 'html'] as const;

export function registerReport(program: Command, setExit: (c: number) => void): void {
  program
    .command('report <run>')
    .description('what a run did: counts, issues, verification, backups, timings, schema before and after (read-only)')
    .option('--format <format>', 'md, json or html (one self-contained file)', 'md')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .option('--sample <n>', 'sample rows per finding', parsePositiveInt('--sample'), 10)
    .action(async (run: string, o: { format: string; output?: string; sample: number }, cmd: Command) => {
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      const format = o.format as (typeof FORMATS)[number];
      if (!FORMATS.includes(format))
        throw new UsageError(`--format "${o.format}" is not one of ${FORMATS.join(', ')}`, 'Write --format md, --format json or --format html.');
      const db = await connect(g);
      try {
        const text = await report(db, runId, { format, sample: o.sample });
        if (o.output) {
          writeFileSync(o.output, text);
          if (g.json) out.json({ type: 'report', file: o.output, format, bytes: Buffer.byteLength(text) });
          else out.line(`report of run ${runId} written to ${o.output}`);
        } else out.raw(text);
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
