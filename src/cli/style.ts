// Colour for people at a terminal, through node:util styleText; none when NO_COLOR is set (no-color.org), TERM is
// dumb, or the stream is not a terminal (a pipe, a file, CI logs), so that what a program reads has no escape
// codes. FORCE_COLOR=1 turns it on anyway, FORCE_COLOR=0 off.
import { styleText } from 'node:util';

type Format = Parameters<typeof styleText>[0];

export interface Paint {
  readonly on: boolean;
  red(s: string): string;
  green(s: string): string;
  yellow(s: string): string;
  bold(s: string): string;
  dim(s: string): string;
}

/** Whether text written to the stream gets colours. */
export function colourOn(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '') return env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false';
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return false;
  return !!stream.isTTY && env.TERM !== 'dumb';
}

/** The colours for one stream: identity functions when it gets none. */
export function paint(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): Paint {
  const on = colourOn(stream, env);
  // validateStream: false: this module has decided (styleText would look at stdout, also for stderr)
  const f = (format: Format) => (s: string) => (on ? styleText(format, s, { validateStream: false }) : s);
  return { on, red: f('red'), green: f('green'), yellow: f('yellow'), bold: f('bold'), dim: f('dim') };
}

/** The colour of a run's or a finding's status word. */
export function statusColour(p: Paint, status: string): (s: string) => string {
  if (/^(completed|rolled_back|done|ok|pass|info)$/.test(status)) return p.green;
  if (/^(failed|fail|error|rolling_back|abandoned)$/.test(status)) return p.red;
  if (/^(paused|running|warn|refused)$/.test(status)) return p.yellow;
  return (s) => s;
}
