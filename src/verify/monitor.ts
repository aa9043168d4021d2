// The monitoring window after a run: the spec's monitor checks (and by default its verify queries) re-run
// every `every` for `for`; a check above its threshold, or one that errors, raises an alert (webhook,
// caller's onAlert) and ends the window after that round. Every round lands in belay.verifications.
import { type Db, openDb } from '../db/connection.ts';
import { redactWebhook, rememberSecrets, scrub, secretsOfWebhook } from '../db/redact.ts';
import { BelayError, ConnectionError, UsageError } from '../errors.ts';
import type { Migration } from '../spec/define.ts';
import { ensureState } from '../state/schema.ts';
import { getRun } from '../state/runs.ts';
import { countedSql, writtenCountedSql } from './verify-sql.ts';
import { DEFAULT_SAMPLE, finishRound, guarded, runDecisions, specChecks, type VerifyCheck, type VerifyResult } from './verify.ts';
import { startMetrics, type MetricsServer } from './metrics.ts';
import { RUN_ROWS_WRITTEN_SQL, writtenAsWrittenSql } from '../state/decision-sql.ts';
import { tableInfo } from '../db/catalog.ts';
import { MONITOR_SUMMARY_SQL } from '../state/verification-sql.ts';

/** Error code of a monitoring window that alerted (exit 7, like a failed verification). */
export const MONITOR_ALERT_CODE = 'BELAY_MONITOR_ALERT';
export const DEFAULT_MONITOR_FOR_MS = 24 * 3_600_000;
export const DEFAULT_MONITOR_EVERY_MS = 5 * 60_000;
/** Reconnecting after a lost session waits this long first, doubling up to RECONNECT_MAX_MS between attempts. */
export const RECONNECT_MIN_MS = 500;
export const RECONNECT_MAX_MS = 30_000;
/** A webhook that does not answer within this is recorded as not delivered; the window goes on. */
export const WEBHOOK_TIMEOUT_MS = 10_000;

export interface MonitorOptions {
  /** Length of the window (default 24 h). */
  forMs?: number;
  /** Time between round starts (default 5 min). */
  everyMs?: number;
  /** One round and stop (cron). */
  once?: boolean;
  /** http(s) URL: each alert is POSTed there as JSON. */
  webhook?: string;
  /** Serve Prometheus metrics on this port (0 = any free port) while the window lasts. */
  metricsPort?: number;
  /** Interface the metrics listen on (default 127.0.0.1). */
  metricsHost?: string;
  /** Also re-run spec.verify each round (default true). */
  verify?: boolean;
  sample?: number;
  /** Called with every alert as it is raised (the CLI prints it to stderr). */
  onAlert?: (alert: Alert) => void;
  /** Awaited after every round, with the metrics server when there is one. */
  onRound?: (round: VerifyResult, metrics?: MetricsServer) => Promise<void> | void;
  /** Ends the window early (between rounds), without an alert. */
  signal?: AbortSignal;
  /** Told before each attempt to reconnect after the server dropped the session (restart, failover). */
  onReconnect?: (r: { attempt: number; waitMs: number; error: string }) => void;
}

/** The webhook's JSON body; also recorded in the round (with how the delivery went). */
export interface Alert {
  run: number;
  migration: string;
  check: string;
  kind: string;
  /** Rows the check returned (0 when it errored). */
  count: number;
  threshold: number;
  sample: unknown[];
  message: string;
  error?: Record<string, unknown>;
  at: string;
  delivered?: { status?: number; error?: string };
}

export interface MonitorResult {
  runId: number;
  migrationId: string;
  /** alerted: a round alerted and the window ended after it; ok: the window ran out (or --once) quietly; stopped: signal. */
  status: 'ok' | 'alerted' | 'stopped';
  startedAt: string;
  endedAt: string;
  rounds: VerifyResult[];
  alerts: Alert[];
  /** The port metrics were served on, if any. */
  metricsPort?: number;
  /** Sessions opened again after the server dropped one; the rounds it could not run were not alerts. */
  reconnects: number;
}

/** Runs the monitoring window of a run. Never throws for an alert: see status (the CLI maps alerted to exit 7). */
export async function monitorRun(db: Db, runId: number, opts: MonitorOptions = {}): Promise<MonitorResult> {
  const forMs = opts.forMs ?? DEFAULT_MONITOR_FOR_MS;
  const everyMs = opts.everyMs ?? DEFAULT_MONITOR_EVERY_MS;
  if (opts.webhook !== undefined) checkWebhook(opts.webhook);
  await ensureState(db);
  const run = await getRun(db, runId);
  const spec = run.spec as Migration;
  if (spec.monitor.length === 0 && (opts.verify === false || spec.verify.length === 0)) {
    throw new UsageError(
      `migration "${run.migrationId}" declares no monitor checks${opts.verify === false ? '' : ' and no verify queries'}: nothing to monitor`,
      'Add monitor: [{ name, sql, alertAbove }] to the migration.',
    );
  }
  const started = Date.now();
  const until = started + forMs;
  const metrics = opts.metricsPort === undefined ? undefined : await startMetrics(opts.metricsPort, opts.metricsHost);
  const rounds: VerifyResult[] = [];
  const alerts: Alert[] = [];
  let status: MonitorResult['status'] = 'ok';
  const window = { until: new Date(until).toISOString(), everyMs, forMs, once: !!opts.once, webhook: opts.webhook ? redactWebhook(opts.webhook) : null };
  // the session in use: a new one after the server restarted or dropped it (the caller's stays the caller's)
  let session = db;
  let reconnects = 0;
  try {
    for (let k = 1; ; k++) {
      try {
        const round = await monitorRound(session, runId, run.migrationId, spec, opts);
        rounds.push(round.result);
        alerts.push(...round.alerts);
        if (round.alerts.length > 0) status = 'alerted';
        await session.query(MONITOR_SUMMARY_SQL, [runId, JSON.stringify({ ...window, status: status === 'alerted' ? 'alerted' : 'watching' })]);
        if (metrics) {
          const changed = await session.query<{ n: number }>(RUN_ROWS_WRITTEN_SQL, [runId]);
          metrics.observe(round.result, { status: (await getRun(session, runId)).status, rowsChanged: Number(changed.rows[0]!.n) });
        }
        await opts.onRound?.(round.result, metrics);
      } catch (err) {
        // a lost session is not something the window saw: no alert, reconnect and look again
        if (!(err instanceof ConnectionError) || session.kind !== 'postgres') throw err;
        const again = await reconnect(session, db, err, until, opts);
        if (!again) {
          if (!opts.signal?.aborted)
            throw new ConnectionError(`monitoring of run ${runId}: the window ended while ${db.label} could not be reached (${err.message})`, {
              cause: err,
              fix: `Run belay monitor ${runId} again once the server is back: the rounds so far are recorded.`,
            });
          status = 'stopped';
          session = db; // the lost one is closed; nothing more is written
          return {
            runId,
            migrationId: run.migrationId,
            status,
            startedAt: new Date(started).toISOString(),
            endedAt: new Date().toISOString(),
            rounds,
            alerts,
            metricsPort: metrics?.port,
            reconnects,
          };
        }
        session = again;
        reconnects++;
        k--;
        continue;
      }
      if (status === 'alerted' || opts.once) break;
      const next = started + k * everyMs;
      if (next >= until) break;
      if (!(await sleep(next - Date.now(), opts.signal))) {
        status = 'stopped';
        break;
      }
    }
    const endedAt = new Date().toISOString();
    await session.query(MONITOR_SUMMARY_SQL, [
      runId,
      JSON.stringify({ ...window, status: status === 'ok' && !opts.once ? 'completed' : status, endedAt, reconnects }),
    ]);
    return {
      runId,
      migrationId: run.migrationId,
      status,
      startedAt: new Date(started).toISOString(),
      endedAt,
      rounds,
      alerts,
      metricsPort: metrics?.port,
      reconnects,
    };
  } finally {
    await metrics?.close();
    if (session !== db) await session.close();
  }
}

/**
 * A new session after the server dropped this one (restart, failover, a terminated backend), tried with
 * backoff (RECONNECT_MIN_MS doubling to RECONNECT_MAX_MS) until the window ends or the signal stops it;
 * undefined then. Each attempt is reported to onReconnect.
 */
async function reconnect(lost: Db, caller: Db, err: ConnectionError, until: number, opts: MonitorOptions): Promise<Db | undefined> {
  if (lost !== caller) await lost.close();
  for (let attempt = 1; ; attempt++) {
    const waitMs = Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** (attempt - 1));
    if (Date.now() + waitMs >= until) return undefined;
    opts.onReconnect?.({ attempt, waitMs, error: err.message });
    if (!(await sleep(waitMs, opts.signal))) return undefined;
    try {
      return await openDb(caller.url, { applicationName: 'belay monitor' });
    } catch (e) {
      if (!(e instanceof ConnectionError)) throw e;
      err = e;
    }
  }
}

/** One round: monitor checks against their thresholds, then the verify queries (threshold 0); recorded with its alerts. */
async function monitorRound(
  db: Db,
  runId: number,
  migrationId: string,
  spec: Migration,
  opts: MonitorOptions,
): Promise<{ result: VerifyResult; alerts: Alert[] }> {
  const t0 = performance.now();
  const limit = opts.sample ?? DEFAULT_SAMPLE;
  const checks: VerifyCheck[] = [];
  // `written`: the rows the run wrote, as it wrote them (when one batched step wrote them)
  const decisions = await runDecisions(db, runId, spec).catch(() => []);
  const only = decisions.length === 1 ? decisions[0]! : undefined;
  const writtenRows = only
    ? writtenAsWrittenSql(
        only.d,
        runId,
        only.stepNo,
        (await tableInfo(db, only.d.tableName)).columns.map((c) => c.name),
      )
    : undefined;
  for (const m of spec.monitor) {
    const c = await guarded(m.name, 'monitor', m.message ?? m.name, async () => {
      // monitor checks take no parameters: the range stays NULL
      const r = await db.query<{ n: number; sample: unknown[] | null }>(
        writtenRows && only ? writtenCountedSql(m.sql, writtenRows, limit, only.d.keyType) : countedSql(m.sql, limit),
        writtenRows ? [null, null] : [],
      );
      return { count: r.rows[0]!.n, sample: r.rows[0]!.sample ?? [] };
    });
    c.threshold = m.alertAbove;
    // a check alerts above its threshold, not at the first row: alertAbove 5 tolerates 5
    if (c.result === 'fail' && c.count <= m.alertAbove) c.result = 'pass';
    checks.push(c);
  }
  if (opts.verify ?? true) for (const c of await specChecks(db, spec, limit)) checks.push({ ...c, threshold: 0 });
  // a check that failed because the session is gone saw nothing: the round is run again, not alerted
  const lost = checks.find((c) => c.error?.code === 'BELAY_CONNECTION');
  if (lost) throw new ConnectionError(String(lost.error?.message ?? 'lost the connection'));
  const at = new Date().toISOString();
  const alerts: Alert[] = checks
    .filter((c) => c.result === 'fail' || c.result === 'error')
    .map((c) => ({
      run: runId,
      migration: migrationId,
      check: c.name,
      kind: c.kind,
      count: c.count,
      threshold: c.threshold ?? 0,
      sample: c.sample,
      message: c.message,
      error: c.error,
      at,
    }));
  for (const a of alerts) {
    if (opts.webhook) a.delivered = await postAlert(opts.webhook, a);
    opts.onAlert?.(a);
  }
  const result = await finishRound(db, runId, migrationId, 'monitor', checks, performance.now() - t0, true, alerts);
  return { result, alerts };
}

/**
 * POSTs one alert; the outcome is recorded, never thrown (an unreachable webhook must not hide the alert).
 * Credentials in the URL go in an Authorization header (fetch refuses a URL that holds them); whatever the
 * driver says about the request is scrubbed of the URL's secrets before it is recorded or printed.
 */
async function postAlert(url: string, alert: Alert): Promise<{ status?: number; error?: string }> {
  try {
    const { delivered: _omit, ...body } = alert;
    const u = new URL(url.trim());
    const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'belay-monitor' };
    if (u.username || u.password) {
      headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
      u.username = '';
      u.password = '';
    }
    const res = await fetch(u, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(WEBHOOK_TIMEOUT_MS) });
    await res.arrayBuffer().catch(() => undefined);
    return res.ok ? { status: res.status } : { status: res.status, error: `HTTP ${res.status}` };
  } catch (err) {
    const e = err as Error & { cause?: { message?: string } };
    const text = err instanceof Error ? `${e.message}${e.cause?.message ? ` (${e.cause.message})` : ''}` : String(err);
    return { error: scrub(text, secretsOfWebhook(url)) };
  }
}

function checkWebhook(url: string): void {
  rememberSecrets(secretsOfWebhook(url));
  let u: URL;
  try {
    u = new URL(url.trim());
  } catch {
    throw new UsageError(`--webhook "${redactWebhook(url)}" is not a URL`, 'Give an http(s) URL, e.g. --webhook https://hooks.example.com/belay.');
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--webhook must be http or https, not ${u.protocol}`);
  try {
    decodeURIComponent(u.username);
    decodeURIComponent(u.password);
  } catch {
    throw new UsageError(
      `--webhook "${redactWebhook(url)}": its user name or password holds a "%" not followed by two hex digits`,
      'Percent-encode the credentials (%25 for "%").',
    );
  }
}

/** Resolves true after ms, false when the signal aborts first. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const t = setTimeout(
      () => {
        signal?.removeEventListener('abort', onAbort);
        resolve(true);
      },
      Math.max(0, ms),
    );
    const onAbort = () => {
      clearTimeout(t);
      resolve(false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error the CLI reports when the window alerted (exit 7). */
export function alertError(r: MonitorResult): BelayError {
  const names = [...new Set(r.alerts.map((a) => a.check))];
  return new BelayError(MONITOR_ALERT_CODE, `monitoring of run ${r.runId} (${r.migrationId}) alerted: ${names.join(', ')}`, {
    details: { runId: r.runId, alerts: r.alerts.map((a) => ({ check: a.check, count: a.count, threshold: a.threshold })) },
    fix: `Look at the offending rows (belay verify ${r.runId}), fix them or roll the run back (belay rollback ${r.runId}).`,
  });
}
