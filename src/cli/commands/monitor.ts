import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { connect, type GlobalOptions, out, parseFlagNumber, parseRunId, reportError } from '../context.ts';

export function registerMonitor(program: Command, setExit: (c: number) => void): void {
  program
    .command('monitor <run>')
    .description("re-run the migration's monitor checks (and verify queries) for a window; alert by webhook, stderr and exit 7")
    .option('--for <duration>', 'length of the window: 30s, 5m, 24h, 7d', '24h')
    .option('--every <duration>', 'time between rounds', '5m')
    .option('--once', 'a single round (for cron)')
    .option('--webhook <url>', 'POST each alert as JSON to this http(s) URL')
    .option('--metrics-port <n>', 'serve Prometheus metrics on 127.0.0.1:<n>/metrics while monitoring')
    .option('--metrics-host <host>', 'interface for the metrics (default 127.0.0.1)')
    .option('--no-verify', "only the monitor checks, not the migration's verify queries")
    .action(
      async (
        run: string,
        o: { for: string; every: string; once?: boolean; webhook?: string; metricsPort?: string; metricsHost?: string; verify: boolean },
        cmd: Command,
      ) => {
        const { parseDuration } = await import('../../verify/duration.ts');
        const { alertError, DEFAULT_MONITOR_EVERY_MS, DEFAULT_MONITOR_FOR_MS, monitorRun } = await import('../../verify/monitor.ts');
        const g = cmd.optsWithGlobals<GlobalOptions>();
        const runId = parseRunId(run);
        const forMs = o.for ? parseDuration(o.for, '--for') : DEFAULT_MONITOR_FOR_MS;
        const everyMs = o.every ? parseDuration(o.every, '--every') : DEFAULT_MONITOR_EVERY_MS;
        const port =
          o.metricsPort === undefined
            ? undefined
            : parseFlagNumber('--metrics-port', 'port', o.metricsPort, 'Give a port number from 0 (any free port) to 65535.');
        const db = await connect(g);
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal).once('SIGTERM', onSignal);
        try {
          const r = await monitorRun(db, runId, {
            forMs,
            everyMs,
            once: o.once,
            webhook: o.webhook,
            metricsPort: port,
            metricsHost: o.metricsHost,
            verify: o.verify,
            signal: stop.signal,
            onReconnect: (x) => out.err(`lost the connection (${x.error}); reconnecting in ${(x.waitMs / 1000).toFixed(1)} s (attempt ${x.attempt})`),
            onAlert: (a) =>
              out.err(
                `ALERT run ${a.run} ${a.migration}: ${a.check} ${a.error ? `errored: ${String(a.error.message)}` : `returned ${a.count} row(s), above ${a.threshold}`}${a.delivered?.error ? ` (webhook: ${a.delivered.error})` : ''}`,
              ),
            onRound: (round, m) => {
              if (g.json) out.json({ type: 'round', ...round });
              else
                out.line(
                  `${round.at}  round ${round.roundId}: ${round.ok ? 'ok' : 'ALERT'} (${round.checks.map((c) => `${c.name}=${c.count}`).join(', ')})${m ? `  metrics :${m.port}` : ''}`,
                );
            },
          });
          if (g.json) out.json({ type: 'result', ...r });
          else
            out.line(
              `monitoring of run ${r.runId} ended: ${r.status}, ${r.rounds.length} round(s), ${r.alerts.length} alert(s)${r.reconnects ? `, ${r.reconnects} reconnect(s)` : ''}`,
            );
          setExit(r.status === 'alerted' ? reportError(alertError(r), false) : EXIT.ok);
        } finally {
          process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
          await db.close();
        }
      },
    );
}
