// Progress for humans: a live bar on a terminal, a log line every N batches elsewhere, JSON lines with --json.
import cliProgress from 'cli-progress';
import { scrubValue } from '../db/redact.ts';
import type { BelayEvent, EventSink } from '../state/events.ts';
import { out } from './context.ts';
import { paint } from './style.ts';

export const DEFAULT_LOG_EVERY = 10;

export function progressSink(opts: { json?: boolean; quiet?: boolean; logEvery?: number; stream?: NodeJS.WriteStream }): EventSink {
  const stream = opts.stream ?? process.stderr;
  // at first after type and v: Object.assign keeps the order keys were first given in
  if (opts.json) return (e) => out.json(Object.assign({ type: e.type, at: new Date().toISOString() }, e));
  if (opts.quiet) return () => undefined;
  const every = opts.logEvery ?? DEFAULT_LOG_EVERY;
  const p = paint(stream);
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
            {
              format: `${e.step} [{bar}] {percentage}% | {value}/{total} rows | {rate} rows/s | ETA {eta_formatted} | batch {batch}`,
              stream,
              hideCursor: true,
            },
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
          stream.write(
            `  batch ${e.batchNo}: ${e.rowsDone}/${e.rowsTotal} rows, ${e.rowsChanged} changed, ${e.durationMs.toFixed(0)} ms, ${rate(e.rowsDone)} rows/s\n`,
          );
        }
        break;
      case 'batch-retry':
        if (!bar) stream.write(`  batch ${e.batchNo}: retry ${e.attempt} after SQLSTATE ${e.sqlstate}, waiting ${e.waitMs} ms\n`);
        break;
      case 'batch-over-ceiling':
        if (!bar)
          stream.write(
            `  batch ${e.batchNo}: ${e.rows} rows ran past the ${e.ceilingMs} ms ceiling (${Math.round(e.elapsedMs)} ms), rolled back; again with ${e.nextSize}\n`,
          );
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
          bar = new cliProgress.SingleBar(
            { format: `rollback [{bar}] {percentage}% | {value}/{total} rows | {rate} rows/s`, stream },
            cliProgress.Presets.shades_classic,
          );
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
      default: {
        const line = describeEvent(e);
        if (line) stream.write(`${line.startsWith('warn: ') ? `${p.yellow('warn:')}${line.slice(5)}` : line}\n`);
        break;
      }
    }
  };
}

/** One line for a human about the events that have no bar of their own; undefined for those not worth a line. */
export function describeEvent(e: BelayEvent): string | undefined {
  switch (e.type) {
    case 'checks-finished':
      return `pre-flight: ${e.ok ? 'no blocking findings' : `blocked by ${e.blocking.join(', ')}`} (${Object.entries(e.counts)
        .map(([c, n]) => `${c} ${n}`)
        .join(', ')})`;
    case 'checks-skipped':
      return 'warn: pre-flight checks skipped (--skip-checks)';
    case 'backup-taken':
      return `backup of ${e.table}: ${e.copy}, ${e.rows ?? '?'} rows, checksum ${e.checksum ?? '?'}${e.file ? `, file ${e.file}` : ''}`;
    case 'backup-exported-again':
      return `warn: the backup file of ${e.table} was missing, incomplete or never written: ${e.file ? `exported again from ${e.copy} to ${e.file}` : `kept as the verified copy ${e.copy}`}`;
    case 'backup-kept':
      return `kept the backup of ${e.table}: ${e.copy}, ${e.rows ?? '?'} rows`;
    case 'temp-index-ready':
      return `temporary index ${e.index} ${e.status} (${Math.round(e.durationMs)} ms)`;
    case 'temp-indexes-dropped':
      return `temporary indexes dropped: ${e.indexes.join(', ')}`;
    case 'throttled':
      return `warn: throttled before the next batch of "${e.step}": ${e.reasons.join('; ')}`;
    case 'throttle-released':
      return `throttle released after ${Math.round(e.waitedMs)} ms`;
    case 'batch-ceiling-lifted':
      return (
        `warn: step "${e.step}": a batch of ${e.rows} row(s) took ${Math.round(e.durationMs)} ms, over the ${e.ceilingMs} ms ceiling; ` +
        `batches of this step are not cancelled at the ceiling for the next ${e.forMs / 1000} s (a cost per batch that does not shrink with its size: a missing index, a lock held by another session?)`
      );
    case 'abort-triggered':
      return `warn: abort trigger ${e.when}: ${e.reason}; ${e.decision === 'pause' ? 'pausing the run' : 'rolling the run back'}`;
    case 'rollback-step-kept':
      return `warn: step "${e.step}" is irreversible: left in place (--skip-irreversible)`;
    case 'control-taken': {
      const by = [e.requestedBy.osUser && `${e.requestedBy.osUser}@${e.requestedBy.host ?? '?'}`, e.requestedBy.role && `role ${e.requestedBy.role}`]
        .filter(Boolean)
        .join(', ');
      const what = e.command === 'tune' ? `tune ${JSON.stringify(e.settings)}` : e.command;
      return `${e.command === 'resume' || e.command === 'tune' ? '' : 'warn: '}${what} asked by ${by || 'someone'} at ${e.requestedAt}`;
    }
    case 'run-abandoned':
      return `run ${e.runId} (${e.previousStatus}) stopped before its first write with another version of the migration: left as abandoned, a new run starts`;
    case 'rows-skipped':
      return `warn: step "${e.step}" batch ${e.batchNo}: ${e.count} decided row(s) changed by someone else since the decision, left as they are (keys ${e.keys.slice(0, 5).join(', ')}${e.count > 5 ? ', …' : ''})`;
    case 'rows-rejected':
      return `warn: step "${e.step}" batch ${e.batchNo}: ${e.count} row(s) left unchanged, rejected by ${e.reason.replace(/^rejected:/, '')} (keys ${e.keys.slice(0, 5).join(', ')}${e.count > 5 ? ', …' : ''})`;
    case 'catch-up':
      return e.added > 0
        ? `catch-up round ${e.round} of step "${e.step}": ${e.added} row(s) the rule gives now (inserted or changed meanwhile) decided and written`
        : undefined;
    case 'catch-up-left':
      return `warn: step "${e.step}": after ${e.rounds} catch-up round(s) the rule still gives ${e.remaining} row(s) that the application wrote meanwhile; left as they are (options.catchUpRounds sets how many rounds run)`;
    case 'listener-failed':
      return `warn: an event listener failed on ${e.event}: ${e.message} (the run went on)`;
    case 'trial-batch':
      return `dry run ${e.step} batch ${e.batchNo} [${e.lo}, ${e.hi}]: ${e.rows} rows, ${e.changed} would change, ${e.ms.toFixed(0)} ms (rolled back)`;
    default:
      return undefined;
  }
}
