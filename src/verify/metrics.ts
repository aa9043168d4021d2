// Prometheus metrics of a monitoring window (prom-client), served on loopback by default.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Registry } from 'prom-client';
import type { VerifyResult } from './verify.ts';

export interface MetricsServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  readonly registry: Registry;
  /** Updates the gauges from a finished round. */
  observe(round: VerifyResult, run: { status: string; rowsChanged: number }): void;
  close(): Promise<void>;
}

/** Serves GET /metrics on host:port (host 127.0.0.1 unless told: metrics can reveal row counts). */
export async function startMetrics(port: number, host = '127.0.0.1'): Promise<MetricsServer> {
  const registry = new Registry();
  const labelNames = ['run', 'migration', 'check'] as const;
  const rows = new Gauge({ name: 'belay_check_rows', help: 'Rows the check returned in its last round', labelNames, registers: [registry] });
  const threshold = new Gauge({ name: 'belay_check_threshold', help: 'Alert when belay_check_rows is above this', labelNames, registers: [registry] });
  const last = new Gauge({ name: 'belay_check_last_run_timestamp_seconds', help: 'When the check last ran (unix time)', labelNames, registers: [registry] });
  const errors = new Counter({ name: 'belay_check_errors_total', help: 'Rounds in which the check could not run', labelNames, registers: [registry] });
  const alerts = new Counter({ name: 'belay_check_alerts_total', help: 'Rounds in which the check alerted', labelNames, registers: [registry] });
  const changed = new Gauge({
    name: 'belay_run_rows_changed',
    help: 'Rows the run changed (not rolled back)',
    labelNames: ['run', 'migration'],
    registers: [registry],
  });
  const status = new Gauge({
    name: 'belay_run_status',
    help: "The run's status (1 for the current one)",
    labelNames: ['run', 'migration', 'status'],
    registers: [registry],
  });
  const rounds = new Counter({ name: 'belay_monitor_rounds_total', help: 'Monitoring rounds run', labelNames: ['run', 'migration'], registers: [registry] });

  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || !req.url?.startsWith('/metrics')) {
      res.writeHead(404).end('GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
      (err: Error) => res.writeHead(500).end(String(err.message)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    registry,
    observe(round, run) {
      const base = { run: String(round.runId), migration: round.migrationId };
      const at = Date.parse(round.at.replace(' ', 'T').replace(/\+00$/, 'Z')) / 1000 || Date.now() / 1000;
      for (const c of round.checks) {
        const l = { ...base, check: c.name };
        rows.set(l, c.count);
        threshold.set(l, c.threshold ?? 0);
        last.set(l, at);
        errors.inc(l, c.result === 'error' ? 1 : 0);
        alerts.inc(l, c.result === 'fail' || c.result === 'error' ? 1 : 0);
      }
      changed.set(base, run.rowsChanged);
      status.reset();
      status.set({ ...base, status: run.status }, 1);
      rounds.inc(base);
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
