import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { EXIT, UsageError } from '../../errors.ts';
import { connect, type GlobalOptions, out, parsePositiveInt, parseRunId } from '../context.ts';

const FORMATS = ['md', 'json', 'html'] as const;

export function registerReport(program: Command, setExit: (c: number) => void): void {
  program
    .command('report <run>')
    .description('what a run did: counts, issues, verification, backups, timings, schema before and after (read-only)')
    .option('--format <format>', 'md, json or html (one self-contained file); default md, json with --json')
    .option('-o, --output <file>', 'write to this file instead of standard output')
    .option('--sample <n>', 'sample rows per finding', parsePositiveInt('--sample'), 10)
    .action(async (run: string, o: { format?: string; output?: string; sample: number }, cmd: Command) => {
      const { buildReport, report } = await import('../../run/documents.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = parseRunId(run);
      const format = (o.format ?? (g.json ? 'json' : 'md')) as (typeof FORMATS)[number];
      if (!FORMATS.includes(format))
        throw new UsageError(`--format "${o.format}" is not one of ${FORMATS.join(', ')}`, 'Write --format md, --format json or --format html.');
      const db = await connect(g);
      try {
        if (g.json && !o.output) {
          // one line like every --json output: the report's data, or the document as text for md and html
          if (format === 'json') out.json({ type: 'report', ...(await buildReport(db, runId, { sample: o.sample })) });
          else out.json({ type: 'report', format, text: await report(db, runId, { format, sample: o.sample }) });
          setExit(EXIT.ok);
          return;
        }
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
