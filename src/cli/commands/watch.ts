import type { Command } from 'commander';
import { EXIT } from '../../errors.ts';
import { DEFAULT_WATCH_PORT } from '../../watch/defaults.ts';
import { connect, type GlobalOptions, out, parseFlagNumber, parseRunId } from '../context.ts';

/** belay watch [run]: a live dashboard of the database's runs, with pause, resume, abort and tune buttons. */
export function registerWatch(program: Command, setExit: (c: number) => void): void {
  program
    .command('watch [run]')
    .description('serve a live dashboard of every run in the database (pause, resume, abort, tune a running one) until Ctrl-C')
    .option('--port <n>', `port to serve on (0: any free port)`, String(DEFAULT_WATCH_PORT))
    .option('--host <address>', 'address to bind (anyone who reaches it can steer runs unless --read-only)', '127.0.0.1')
    .option('--read-only', 'show runs only: no buttons, every command refused')
    .action(async (run: string | undefined, o: { port: string; host: string; readOnly?: boolean }, cmd: Command) => {
      const { startWatch } = await import('../../watch/server.ts');
      const g = cmd.optsWithGlobals<GlobalOptions>();
      const runId = run === undefined ? undefined : parseRunId(run);
      const port = parseFlagNumber('--port', 'port', o.port, 'Give a port number from 0 (any free port) to 65535.');
      const db = await connect(g, 'belay watch');
      try {
        const w = await startWatch(db, { port, host: o.host, readOnly: o.readOnly, runId });
        if (g.json) out.json({ type: 'watch', url: w.url, readOnly: !!o.readOnly });
        else out.line(`belay watch: ${w.url}${o.readOnly ? ' (read-only)' : ''} for ${db.label}; Ctrl-C to stop`);
        await new Promise<void>((resolve) => process.once('SIGINT', resolve).once('SIGTERM', resolve));
        await w.close();
        setExit(EXIT.ok);
      } finally {
        await db.close();
      }
    });
}
