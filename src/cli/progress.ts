// Progress for humans: a live bar on a terminal, a log line every N batches elsewhere, JSON lines with --json.
import cliProgress from 'cli-progress';
import { scrubValue } from '../db/redact.ts';
import type { BelayEvent, EventSink } from '../state/events.ts';

export const DEFAULT_LOG_EVERY = 10;

export function progressSink(opts: { json?: boolean; quiet?: boolean; logEvery?: number; stream?: NodeJS.WriteStream }): EventSink {
  const stream = opts.stream ?? process.stderr;
  if (opts.json) return (e) => process.stdout.write(`${JSON.stringify(scrubValue({ at: new Date().toISOString(), ...e }))}\n`);
  if (opts.quiet) return () => undefined;
  const every = opts.logEvery ?? DEFAULT_LOG_EVERY;
  let bar: cliProgress.SingleBar | undefined;
  let stepStart = 0;
  let startDone = 0;
  const rate = (done: number) => {
    const s = (performance.now() - stepStart) / 1000;
    return s > 0 ? Math.round((done - startDone) / s) : 0;
  };
  return (raw: BelayEvent) => {
    const e = scrubValue(raw);
    switch (e.type) {
      case 'run-started':
        stream.write(`run ${e.runId} of ${e.migrationId}${e.resumed ? ' (resumed from its last checkpoint)' : ''}, mode ${e.mode}\n`);
        break;
      case 'step-started':
        stepStart = performance.now();
        startDone = e.rowsDone;
        if (e.kind === 'batched' && stream.isTTY) {
          bar = new cliProgress.SingleBar(
            { format: `${e.step} [{bar}] {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted} | batch {batch}`, stream, hideCursor: true },
            cliProgress.Presets.shades_classic,
          );
          bar.start(e.rowsTotal, e.rowsDone, { rate: 0, batch: '-' });
        } else {
          stream.write(`step ${e.step} (${e.kind})${e.kind === 'batched' ? `: ${e.rowsTotal} rows` : ''}\n`);
        }
        break;
      case 'batch-committed':
        if (bar) bar.update(e.rowsDone, { rate: rate(e.rowsDone), batch: e.batchNo });
        else if (e.batchNo % every === 0) {
          stream.write(`  batch ${e.batchNo}: ${e.rowsDone}/${e.rowsTotal} rows, ${e.rowsChanged} changed, ${e.durationMs.toFixed(0)} ms, ${rate(e.rowsDone)} rows/s\n`);
        }
        break;
      case 'batch-retry':
        if (!bar) stream.write(`  batch ${e.batchNo}: retry ${e.attempt} after SQLSTATE ${e.sqlstate}, waiting ${e.waitMs} ms\n`);
        break;
      case 'batch-over-ceiling':
        if (!bar) stream.write(`  batch ${e.batchNo}: ${e.rows} rows ran past the ${e.ceilingMs} ms ceiling (${Math.round(e.elapsedMs)} ms), rolled back; again with ${e.nextSize}\n`);
        break;
      case 'step-finished':
        bar?.stop();
        bar = undefined;
        stream.write(`step ${e.step} done: ${e.rowsChanged} rows changed in ${e.batches} batches\n`);
        break;
      case 'verification-failed':
        bar?.stop();
        bar = undefined;
        stream.write(`verification failed${e.batchNo ? ` in batch ${e.batchNo}` : ''}: ${e.count} row(s)\n`);
        break;
      case 'rollback-started':
        stream.write(`rolling back run ${e.runId}: ${e.batches} batches, ${e.rows} rows\n`);
        if (stream.isTTY && e.rows > 0) {
          stepStart = performance.now();
          startDone = 0;
          bar = new cliProgress.SingleBar({ format: `rollback [{bar}] {percentage}% | {value}/{total} rows | {rate} rows/s`, stream }, cliProgress.Presets.shades_classic);
          bar.start(e.rows, 0, { rate: 0 });
        }
        break;
      case 'rollback-batch':
        if (bar) bar.update(e.rowsDone, { rate: rate(e.rowsDone) });
        break;
      case 'rollback-finished':
        bar?.stop();
        bar = undefined;
        break;
      case 'log':
        stream.write(`${e.level === 'info' ? '' : `${e.level}: `}${e.message}\n`);
        break;
      default:
        break;
    }
  };
}
