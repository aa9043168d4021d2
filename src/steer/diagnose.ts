// The last say about a run that stopped on an error: what happened in words a person can act on, how
// many times it was tried, who holds the lock where that is known, that the run is resumable and the
// command that resumes it. It only rewrites the message; the error's code and fields stay the server's.
import type { Db } from '../db/connection.ts';
import { qualified } from '../db/sql.ts';
import { AbortedError, BelayError, ConnectionError, DbError, serverFields } from '../errors.ts';
import type { RunContext, Stage } from '../contract.ts';
import { CURRENT_ROLE_SQL, LOCK_HOLDERS_SQL } from './steer-sql.ts';
import { RUN_POSITION_SQL } from '../state/runs.ts';

export const LOCK_TIMEOUT_CODE = 'BELAY_LOCK_TIMEOUT';
export const PRIVILEGE_CODE = 'BELAY_PRIVILEGE';
export const DISK_FULL_CODE = 'BELAY_DISK_FULL';

export interface LockHolder {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  modes: string;
  xactMs: number | null;
}

/** Sessions holding locks on the tables now (server only; [] on PGlite or when the catalog cannot be read). */
export async function lockHolders(db: Db, tables: readonly string[]): Promise<LockHolder[]> {
  if (db.kind !== 'postgres') return [];
  return (await db.query<LockHolder>(LOCK_HOLDERS_SQL, [tables.map((t) => qualified(t))]).catch(() => ({ rows: [] as LockHolder[] }))).rows;
}

export function describeHolder(h: LockHolder): string {
  const age = h.xactMs === null ? '' : `, in a transaction for ${(h.xactMs / 1000).toFixed(1)} s`;
  return `pid ${h.pid} (user ${h.user ?? '?'}${h.application ? `, application "${h.application}"` : ''}, ${h.state ?? 'unknown state'}${age}, holding ${h.modes})`;
}

/** The command that resumes the run: the same migration file and parameters (and the same --db or --env). */
export function resumeCommand(ctx: Pick<RunContext, 'migration'>): string {
  const q = (s: string) => (/^[\w./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);
  const params = Object.entries(ctx.migration.params)
    .map(([k, v]) => ` --param ${q(`${k}=${v}`)}`)
    .join('');
  return `belay apply ${q(ctx.migration.file)}${params}`;
}

/** The diagnose stage: last in the list, so that it words the error the other stages settled on. */
export function diagnoseStage(): Stage {
  return { name: 'diagnose', batches: { onError: (ctx, err) => diagnose(ctx, err) } };
}

async function diagnose(ctx: RunContext, err: BelayError): Promise<BelayError | undefined> {
  // a signal's stop: the run is paused where it was, and goes on with the command that started it
  if (err instanceof AbortedError && err.code === 'BELAY_INTERRUPTED') {
    return new AbortedError(err.message, err.details, {
      code: 'BELAY_INTERRUPTED',
      fix: `Resume it with ${resumeCommand(ctx)} (with the same --db or --env): it goes on from its last committed batch.`,
    });
  }
  // an abort trigger's decision and its words stand as they are
  if (err instanceof AbortedError) return undefined;
  const resume = `Run ${ctx.runId} is resumable: nothing of the failed batch was written and every committed batch is kept; run ${resumeCommand(ctx)} again (with the same --db or --env) to go on from the last checkpoint.`;
  // an error a stage marked resumable (a backup file that could not be written) gets the command
  if (err.details.resumable === true && !(err instanceof DbError)) {
    return new BelayError(err.code, `${err.message}; run ${ctx.runId} is resumable`, {
      details: err.details,
      cause: err,
      fix: `${err.fix ? `${err.fix} ` : ''}That is: ${resumeCommand(ctx)} (with the same --db or --env and options).`,
    });
  }
  if (err instanceof ConnectionError) return new ConnectionError(err.message, { cause: err.cause ?? err, fix: `Once the server is reachable: ${resume}` });
  if (!(err instanceof DbError)) return undefined;
  const s = serverFields(err);
  const where = await position(ctx);
  const spec = ctx.migration.spec;
  if (s.sqlstate === '55P03' || s.sqlstate === '40001' || s.sqlstate === '40P01') {
    const attempts = (spec.options.mode === 'single' ? 0 : spec.options.maxRetries) + 1;
    const holders = await lockHolders(ctx.db, spec.tables);
    const what =
      s.sqlstate === '55P03'
        ? `could not take its locks within lock_timeout ${spec.options.lockTimeoutMs} ms`
        : s.sqlstate === '40P01'
          ? 'was chosen as a deadlock victim'
          : 'failed to serialize';
    const who =
      holders.length > 0
        ? `; locks on ${spec.tables.join(', ')} are held by ${holders.map(describeHolder).join('; ')}`
        : '; no other session holds a lock on its tables now (the holder has gone)';
    return new DbError(
      `${where} ${what} in ${attempts} attempt${attempts === 1 ? '' : 's'} (${attempts - 1} retr${attempts === 2 ? 'y' : 'ies'} with backoff)${who}`,
      s,
      {
        code: LOCK_TIMEOUT_CODE,
        cause: err,
        details: { attempts, holders, runId: ctx.runId },
        fix: `${holders.length > 0 ? `Let the session${holders.length > 1 ? 's' : ''} above finish, or end ${holders.length > 1 ? 'them' : 'it'} (SELECT pg_terminate_backend(${holders[0]!.pid})), or raise options.lockTimeoutMs / maxRetries. ` : ''}${resume}`,
      },
    );
  }
  if (s.sqlstate === '42501') {
    const me = (await ctx.db.query<{ role: string; database: string }>(CURRENT_ROLE_SQL).catch(() => ({ rows: [] }))).rows[0];
    const role = me?.role ?? 'the role belay runs as';
    return new DbError(`${where}: role "${role}" lacks a privilege belay needs: ${err.message}`, s, {
      code: PRIVILEGE_CODE,
      cause: err,
      details: { role, runId: ctx.runId },
      fix: `${grantFor(err.message, role, me?.database)} ${resume}`,
    });
  }
  if (s.sqlstate === '53100') {
    return new DbError(`${where}: the database server ran out of disk space: ${err.message}`, s, {
      code: DISK_FULL_CODE,
      cause: err,
      details: { runId: ctx.runId },
      fix: `Free space on the server's disk (or the tablespace of the table) first. ${resume}`,
    });
  }
  return new DbError(err.message, s, { code: err.code, cause: err.cause ?? err, details: err.details, fix: `${err.fix ? `${err.fix} ` : ''}${resume}` });
}

/** "step "fill", the batch after key 200 (2 batches committed)" or "before the first write". */
async function position(ctx: RunContext): Promise<string> {
  const r = (
    await ctx.db.query<{ stepNo: number; name: string; lastKey: string | null; committed: number }>(RUN_POSITION_SQL, [ctx.runId]).catch(() => ({ rows: [] }))
  ).rows[0];
  if (!r) return `run ${ctx.runId}, before its first batch:`;
  return `run ${ctx.runId}, step "${r.name}", the batch ${r.lastKey === null ? 'at the start of the table' : `after key ${r.lastKey}`} (${r.committed} batch${r.committed === 1 ? '' : 'es'} committed before it)`;
}

/** The GRANT that gives what the server said was missing. */
function grantFor(message: string, role: string, database?: string): string {
  const m = /permission denied for (table|schema|database|sequence|relation) "?([^"\s]+)"?/i.exec(message);
  const owner = /must be owner of (table|index|relation) "?([^"\s]+)"?/i.exec(message);
  const r = `"${role.replace(/"/g, '""')}"`;
  if (m?.[1] === 'database' || /for database/.test(message)) return `Grant it: GRANT CREATE ON DATABASE "${m?.[2] ?? database ?? '<database>'}" TO ${r};`;
  if (m?.[1] === 'schema') return `Grant it: GRANT USAGE, CREATE ON SCHEMA "${m[2]}" TO ${r};`;
  if (m) return `Grant it: GRANT SELECT, UPDATE ON ${m[1] === 'sequence' ? 'SEQUENCE ' : ''}"${m[2]}" TO ${r}; (or run belay as the table's owner)`;
  if (owner)
    return `Run belay as the owner of ${owner[2]} (ALTER TABLE ${owner[2]} OWNER TO ${r}, or SET ROLE to its owner): CREATE INDEX and backups need it.`;
  return `Grant ${r} what the message names, or run belay as the owner of the tables.`;
}
