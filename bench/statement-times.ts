// --profile: preloaded into the belay apply process (node --import), times every statement it sends
// through pg and writes, as the process exits, one JSON line with the statements that took longest in all.
// Executions are grouped by their text (spaces folded); each is shown by its start and, when another
// statement starts the same way (the in-batch checks all start with the batch's rows), where it differs.
import pg from 'pg';

const stats = new Map<string, { calls: number; ms: number; maxMs: number }>();
const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;

(pg.Client.prototype as unknown as { query: unknown }).query = function (this: unknown, ...args: unknown[]) {
  const first = args[0];
  const sql = typeof first === 'string' ? first : ((first as { text?: string } | undefined)?.text ?? '(COPY stream)');
  const shape = sql.replace(/\s+/g, ' ').trim();
  const t0 = performance.now();
  const done = () => {
    const ms = performance.now() - t0;
    const s = stats.get(shape) ?? { calls: 0, ms: 0, maxMs: 0 };
    s.calls++;
    s.ms += ms;
    s.maxMs = Math.max(s.maxMs, ms);
    stats.set(shape, s);
  };
  const r = query.apply(this, args);
  if (r && typeof (r as Promise<unknown>).then === 'function') (r as Promise<unknown>).then(done, done);
  return r;
};

process.on('exit', () => {
  const all = [...stats.keys()];
  const shown = (sql: string) => {
    let common = 0;
    for (const other of all) {
      if (other === sql) continue;
      let i = 0;
      while (i < sql.length && sql[i] === other[i]) i++;
      common = Math.max(common, i);
    }
    return common < 100 ? sql.slice(0, 160) : `${sql.slice(0, 60)} … ${sql.slice(common - 20, common + 100)}`;
  };
  const top = [...stats.entries()]
    .map(([sql, s]) => ({ sql: shown(sql), ...s }))
    .sort((a, b) => b.ms - a.ms)
    .slice(0, 25);
  process.stdout.write(`${JSON.stringify({ type: 'bench-statements', top })}\n`);
});
