// belay watch: a page that shows every run of a database and steers a running one, served by node:http.
// Reads come from belay's state (snapshot.ts), commands go through controlRun, exactly as belay pause |
// resume | abort | tune leave them. It binds 127.0.0.1 unless told; a command needs the token of this
// process (written into the page it serves), so another site open in the same browser cannot post one,
// and the Host header must name this server, so a rebound DNS name cannot read the page and its token.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { DEFAULT_WATCH_PORT } from './defaults.ts';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Db } from '../db/connection.ts';
import { redactText, scrubValue } from '../db/redact.ts';
import { BelayError, UsageError } from '../errors.ts';
import { CONTROL_SAID, controlRun, localAsker } from '../run/control.ts';
import { checkNumber, NUMBERS, type NumberSchema } from '../spec/numbers.ts';
import type { ControlCommand, TuneSettings } from '../state/controls.ts';
import { watchPage } from './page.ts';
import { defaultRun, listWatchRuns, runView } from './snapshot.ts';

export { DEFAULT_WATCH_PORT };
export const DEFAULT_WATCH_POLL_MS = 1000;
const MAX_BODY = 4096;
const COMMANDS: readonly ControlCommand[] = ['pause', 'resume', 'abort', 'abort-rollback', 'tune'];
/** What the page may tune, each checked as its belay tune flag is. */
const TUNABLE: Record<keyof TuneSettings, NumberSchema> = {
  targetMs: NUMBERS.targetBatchMs,
  maxLockWaiters: NUMBERS.count,
  maxTransactionAgeMs: NUMBERS.positive,
  maxReplicationLagMs: NUMBERS.positive,
};

export interface WatchOptions {
  /** 0: any free port. Default DEFAULT_WATCH_PORT. */
  port?: number;
  /** Default 127.0.0.1: the page can pause and abort runs. */
  host?: string;
  /** No buttons, and every command refused. */
  readOnly?: boolean;
  /** The run the page opens at (default: the newest running or paused run, else the newest). */
  runId?: number;
  /** How often the page gets a fresh view (server-sent events). */
  pollMs?: number;
}

export interface WatchServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Serves the dashboard over `db`: a connection of its own on a server (its reads never hold a lock or a transaction). */
export async function startWatch(db: Db, opts: WatchOptions = {}): Promise<WatchServer> {
  const host = opts.host ?? '127.0.0.1';
  const pollMs = opts.pollMs ?? DEFAULT_WATCH_POLL_MS;
  const token = randomBytes(24).toString('base64url');
  const streams = new Set<ServerResponse>();
  // on a wildcard address any name reaches it; elsewhere only the names of this machine and the one given
  const wildcard = ['0.0.0.0', '::'].includes(host);
  let allowedHosts: Set<string> | undefined;
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) =>
      send(res, 500, { error: { code: 'BELAY_INTERNAL', message: redactText(String((err as Error)?.message ?? err)) } }),
    );
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!wildcard && !allowedHosts?.has(String(req.headers.host ?? '').toLowerCase())) return send(res, 421, { error: { message: 'unknown Host header' } });
    const url = new URL(req.url ?? '/', 'http://watch');
    const runMatch = /^\/api\/runs\/(\d+)(\/control)?$/.exec(url.pathname);
    if (req.method === 'POST') {
      if (!runMatch?.[2]) return send(res, 404, { error: { message: 'no such action' } });
      return control(req, res, Number(runMatch[1]));
    }
    if (req.method !== 'GET') return send(res, 405, { error: { message: 'GET or POST only' } });
    if (url.pathname === '/') {
      const nonce = randomBytes(16).toString('base64');
      const run = Number(url.searchParams.get('run')) || opts.runId;
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
      });
      res.end(watchPage({ nonce, token, readOnly: !!opts.readOnly, runId: run, label: db.label }));
      return;
    }
    if (url.pathname === '/api/runs') return send(res, 200, { runs: await listWatchRuns(db) });
    if (runMatch && !runMatch[2]) {
      try {
        return send(res, 200, await runView(db, Number(runMatch[1])));
      } catch (err) {
        if (err instanceof BelayError && err.code === 'BELAY_NO_RUN') return send(res, 404, { error: problem(err) });
        throw err;
      }
    }
    if (url.pathname === '/api/stream') return stream(req, res, Number(url.searchParams.get('run')) || opts.runId);
    return send(res, 404, { error: { message: 'not found' } });
  }

  /** Server-sent events: the runs and the view of one run, every pollMs, until the page goes. */
  function stream(req: IncomingMessage, res: ServerResponse, want: number | undefined): void {
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    streams.add(res);
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      streams.delete(res);
      clearTimeout(timer);
    };
    req.on('close', stop);
    const tick = async () => {
      try {
        const runs = await listWatchRuns(db);
        const runId = want ?? defaultRun(runs) ?? null;
        const view = runId === null ? null : await runView(db, runId);
        res.write(`event: snapshot\ndata: ${JSON.stringify(scrubValue({ runs, runId, view }))}\n\n`);
      } catch (err) {
        res.write(`event: problem\ndata: ${JSON.stringify(problem(err))}\n\n`);
      }
      if (streams.has(res)) timer = setTimeout(tick, pollMs);
    };
    void tick();
  }

  async function control(req: IncomingMessage, res: ServerResponse, runId: number): Promise<void> {
    if (opts.readOnly) return send(res, 403, { error: { message: 'belay watch runs --read-only: no command is taken' } });
    const given = Buffer.from(String(req.headers['x-belay-token'] ?? ''));
    const mine = Buffer.from(token);
    if (given.length !== mine.length || !timingSafeEqual(given, mine)) return send(res, 403, { error: { message: 'missing or wrong token: reload the page' } });
    if (req.headers.origin && req.headers.origin !== `http://${req.headers.host}`)
      return send(res, 403, { error: { message: 'cross-origin request refused' } });
    if (!String(req.headers['content-type']).startsWith('application/json')) return send(res, 415, { error: { message: 'send application/json' } });
    try {
      const { command, settings } = parseCommand(await body(req));
      const c = await controlRun(db, runId, command, localAsker(), settings);
      send(res, 200, {
        runId,
        ...c,
        said: `run ${runId}: ${command.replace('-rollback', ' --rollback')} left for the running apply (request ${c.id}); ${CONTROL_SAID[command]}`,
      });
    } catch (err) {
      send(res, err instanceof UsageError ? 400 : err instanceof BelayError ? 409 : 500, { error: problem(err) });
    }
  }

  const asked = opts.port ?? DEFAULT_WATCH_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE' || err.code === 'EACCES' || err.code === 'EADDRNOTAVAIL')
        reject(
          new UsageError(
            `belay watch cannot listen on ${host}:${asked} (${err.code})`,
            'Pick another --port (0: any free one), or a --host address of this machine.',
          ),
        );
      else reject(err);
    });
    server.listen(asked, host, () => resolve());
  });
  const port = (server.address() as { port: number }).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  allowedHosts = new Set([`${shown}:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`].map((h) => h.toLowerCase()));
  return {
    url: `http://${shown}:${port}/`,
    port,
    async close() {
      for (const s of streams) s.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

function send(res: ServerResponse, status: number, value: unknown): void {
  if (res.headersSent) return void res.end();
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(scrubValue(value)));
}

function problem(err: unknown): Record<string, unknown> {
  if (err instanceof BelayError) return { code: err.code, message: redactText(err.message), fix: err.fix };
  return { code: 'BELAY_INTERNAL', message: redactText(String((err as Error)?.message ?? err)) };
}

async function body(req: IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) {
    text += chunk;
    if (text.length > MAX_BODY) throw new UsageError('request body too large', `Send at most ${MAX_BODY} bytes of JSON.`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError('request body is not JSON', 'Send {"command": "pause"} (or resume, abort, abort-rollback, tune with "settings").');
  }
}

/** The command and, for tune, its settings, checked as belay tune checks its flags. */
function parseCommand(v: unknown): { command: ControlCommand; settings: TuneSettings } {
  const o = (v ?? {}) as { command?: unknown; settings?: Record<string, unknown> };
  const command = COMMANDS.find((c) => c === o.command);
  if (!command) throw new UsageError(`unknown command ${JSON.stringify(o.command)}`, `Send one of ${COMMANDS.join(', ')}.`);
  if (command !== 'tune') return { command, settings: {} };
  const settings: TuneSettings = {};
  for (const [k, value] of Object.entries(o.settings ?? {})) {
    const schema = TUNABLE[k as keyof TuneSettings];
    if (!schema) throw new UsageError(`tune has no setting "${k}"`, `Send settings among ${Object.keys(TUNABLE).join(', ')}.`);
    if (typeof value !== 'number') throw new UsageError(`tune ${k} ${JSON.stringify(value)} is not a number`, `Send ${k} as a whole number.`);
    checkNumber(k, schema, value);
    settings[k as keyof TuneSettings] = value;
  }
  if (Object.keys(settings).length === 0) throw new UsageError('tune without a setting to change', `Send at least one of ${Object.keys(TUNABLE).join(', ')}.`);
  return { command, settings };
}
