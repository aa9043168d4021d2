// Reads the pending migrations in order inside the caller's snapshot: for every statement (every ALTER TABLE
// sub-command) the predictors look at the model before it, then its effects are added to the model. Returns
// the findings, what each statement locks, and the per-statement facts deploy's rewrites need.
import type { Db } from '../db/connection.ts';
import { statementFinding, makeContext, type Action } from './context.ts';
import { applyEffects } from './effects.ts';
import { Fragments, strings } from './fragments.ts';
import { blockersNow, blocksOf, LOCK_MODES, type LockHold, type LockMode, locksOf, Sizes, type StatementLock } from './locks.ts';
import type { Model, TableState } from './model.ts';
import { innerTargets, parseFile } from './parse.ts';
import { PREDICTORS } from './predictors/index.ts';
import { afterCommitHazards } from './predictors/after-commit.ts';
import { concurrentlyHazards } from './predictors/concurrently.ts';
import { enumValueHazards } from './predictors/enum-value.ts';
import type { Finding, MigrationFile, Statement } from './types.ts';

export interface ActionInfo {
  kind: string;
  table: string | null;
  /** The table's schema (null when there is no table). */
  schema: string | null;
  /** The table's primary key columns as the files leave them so far ([] when none). */
  primaryKey: string[];
  /** The table existed before the deploy (not created by a pending migration). */
  live: boolean;
  /** An earlier statement of the same file wrote or altered the table. */
  touchedBefore: boolean;
  /** Planner estimate of the live table's rows. */
  rows: number;
}

export interface StatementInfo {
  index: number;
  line: number;
  kind: string;
  txn: number;
  locks: Array<{ table: string; mode: LockMode; estimateMs: number }>;
  actions: ActionInfo[];
}

export interface MigrationAnalysis {
  name: string;
  statements: StatementInfo[];
  locks: LockHold[];
}

export interface AnalyzeOptions {
  sample: number;
  /** Locks that block writes for longer than this (estimated) are reported, ms. */
  lockWarnMs: number;
  inputIsValid: boolean;
}

interface RawLock {
  stmt: number;
  txn: number;
  table: string;
  mode: LockMode;
  work: number;
  oid: string | null;
}

/** Tables with at least this many rows (planner estimate) get a warning for a non-concurrent index build. */
export const INDEX_WARN_ROWS = 10_000;

export async function analyzeMigrations(db: Db, model: Model, files: readonly MigrationFile[], opts: AnalyzeOptions) {
  const findings: Finding[] = [];
  const migrations: MigrationAnalysis[] = [];
  const sizes = new Sizes(db);
  const raw = new Map<string, RawLock[]>();
  for (const file of files) {
    const parsed = await parseFile(file.script);
    if (parsed.error) {
      const { line, column } = parsed.text.lineCol(parsed.error.offset);
      findings.push({ ...statementFinding('PRISMA_SYNTAX_ERROR', file.name, null, { message: parsed.error.message }), line, column });
      migrations.push({ name: file.name, statements: [], locks: [] });
      continue;
    }
    const stmts = parsed.statements;
    findings.push(...concurrentlyHazards(file.name, stmts), ...afterCommitHazards(file.name, stmts), ...enumValueHazards(file.name, stmts));
    const infos: StatementInfo[] = [];
    const locks: RawLock[] = [];
    for (const stmt of stmts) {
      const frag = new Fragments(parsed.text, stmt, model).prepare();
      let target: TableState | undefined;
      const ctx = makeContext(db, model, file.name, frag, opts.sample, opts.inputIsValid, (ms) => {
        const size = target?.live && !target.changed ? sizes.cached(target.live.oid) : undefined;
        if (size) sizes.observe(size.heap, ms);
      });
      const info: StatementInfo = { index: stmt.index, line: stmt.line, kind: stmt.kind, txn: stmt.txn, locks: [], actions: [] };
      for (const a of actionsOf(stmt)) {
        const missing = await resolve(a, model);
        if (missing) {
          findings.push(
            ctx.finding('PRISMA_MISSING_TABLE', {
              table: missing,
              message: `relation "${missing}" does not exist (and no earlier pending statement creates it)`,
            }),
          );
          continue;
        }
        const t = a.table;
        target = t;
        info.actions.push({
          kind: a.kind,
          table: t?.name ?? null,
          schema: t?.schema ?? null,
          primaryKey: t?.primaryKey ?? [],
          live: !!t?.live,
          rows: t?.live ? (await sizes.of(t.live.oid)).rows : 0,
          touchedBefore: !!t?.touched.some((x) => x.startsWith(`${file.name}#`)),
        });
        for (const l of [...locksOf(a), ...(a.kind === 'DoStmt' ? innerLocks(a) : [])]) {
          const state: TableState | undefined = l.state ?? (l.ref ? await model.table(l.ref.schemaname, l.ref.relname) : undefined);
          locks.push({ stmt: stmt.index, txn: stmt.txn, table: l.table, mode: l.mode, work: state?.empty ? 0 : l.work, oid: state?.live?.oid ?? null });
        }
        if (t?.live && a.kind === 'IndexStmt' && !a.node.concurrent && (await sizes.of(t.live.oid)).rows >= INDEX_WARN_ROWS) {
          findings.push(
            ctx.finding('PRISMA_INDEX_NOT_CONCURRENT', {
              table: t.name,
              deployFixes: true,
              message: `CREATE INDEX ${String(a.node.idxname ?? '')} on "${t.name}" (about ${Math.round((await sizes.of(t.live.oid)).rows).toLocaleString('en-US')} rows) takes a SHARE lock: writes wait for the whole build`,
            }),
          );
        }
        await predict(a, ctx, false, findings);
        await applyEffects(a, frag, file.name);
        await predict(a, ctx, true, findings);
      }
      infos.push(info);
    }
    raw.set(file.name, locks);
    migrations.push({ name: file.name, statements: infos, locks: [] });
  }
  await estimateLocks(model, sizes, raw, migrations);
  for (const m of migrations) {
    for (const h of m.locks) {
      if (h.oid && (h.blocks === 'reads and writes' || h.blocks === 'writes') && h.estimateMs >= opts.lockWarnMs) {
        const s = m.statements.find((x) => x.index === h.from);
        findings.push({
          ...statementFinding('PRISMA_LONG_LOCK', m.name, null, {
            table: h.table,
            message: `${h.mode} on "${h.table}" from statement ${h.from} to the end of its transaction (statement ${h.until}): about ${(h.estimateMs / 1000).toFixed(1)} s during which ${h.blocks} wait`,
          }),
          statement: h.from,
          line: s?.line ?? null,
        });
      }
    }
  }
  const holds = migrations.flatMap((m) => m.locks);
  const blockers = await blockersNow(db, holds);
  for (const table of new Set(blockers.map((b) => b.table))) {
    const bs = blockers.filter((b) => b.table === table);
    findings.push(
      statementFinding('PRISMA_BLOCKED_NOW', null, null, {
        table,
        count: bs.length,
        sample: bs.map((b) => ({ ...b })),
        message: `${bs.length} session(s) hold locks on "${table}" that the migration's lock would wait for`,
      }),
    );
  }
  return { findings, migrations, blockers };
}

async function predict(a: Action, ctx: ReturnType<typeof makeContext>, after: boolean, out: Finding[]): Promise<void> {
  const t = a.table;
  if (t?.broken && !after) {
    if (PREDICTORS.some((p) => !('after' in p) && p.applies(a))) {
      out.push(ctx.finding('PRISMA_NOT_PREDICTED', { table: t.name, message: `not predicted: ${t.broken}` }));
    }
    return;
  }
  for (const p of PREDICTORS) {
    if ('after' in p !== after || !p.applies(a)) continue;
    try {
      const fs = await p.predict(a, ctx);
      out.push(...fs.map((f) => (t?.approx && f.severity !== 'info' ? { ...f, message: `${f.message} (approximate: ${t.approx})` } : f)));
    } catch (err) {
      out.push(ctx.finding('PRISMA_NOT_PREDICTED', { table: t?.name, message: `${p.name}: ${(err as Error).message}` }));
    }
  }
}

/** The tables a DO block's static SQL writes or alters, with the lock that statement kind takes (work unknown). */
function innerLocks(a: Action): StatementLock[] {
  const modes: Record<string, LockMode> = { UpdateStmt: 'ROW EXCLUSIVE', DeleteStmt: 'ROW EXCLUSIVE', InsertStmt: 'ROW EXCLUSIVE', IndexStmt: 'SHARE' };
  return a.stmt.inner.flatMap(innerTargets).map((t) => ({ table: t.relname, mode: modes[t.kind] ?? 'ACCESS EXCLUSIVE', work: 0, ref: t }));
}

/** Resolves the action's table in the model; returns the name when it must exist and does not. */
async function resolve(a: Action, model: Model): Promise<string | null> {
  const rv = a.node.relation as { schemaname?: string; relname?: string; alias?: { aliasname: string } } | undefined;
  const stmtRv = a.stmt.node.relation as typeof rv;
  const target = a.kind === 'DropStmt' || a.kind === 'RenameStmt' ? (a as { rv?: typeof rv }).rv : (rv ?? (a.kind.startsWith('AT_') ? stmtRv : undefined));
  if (!target?.relname) return null;
  a.table = await model.table(target.schemaname, target.relname);
  a.alias = target.alias?.aliasname ?? target.relname;
  const missingOk = !!(a.stmt.node.missing_ok || a.node.missing_ok);
  return !a.table && !missingOk && a.kind !== 'CreateStmt' ? target.relname : null;
}

/** A statement as units of prediction: ALTER TABLE per sub-command, DROP TABLE per table. */
export function actionsOf(stmt: Statement): Array<Action & { rv?: { schemaname?: string; relname: string } }> {
  const n = stmt.node;
  if (stmt.kind === 'AlterTableStmt' && n.objtype === 'OBJECT_TABLE') {
    return ((n.cmds as Array<{ AlterTableCmd: Record<string, unknown> }>) ?? []).map((c) => ({
      stmt,
      kind: String(c.AlterTableCmd.subtype),
      node: c.AlterTableCmd,
    }));
  }
  if (stmt.kind === 'DropStmt' && n.removeType === 'OBJECT_TABLE') {
    return ((n.objects as Array<{ List: { items: unknown[] } }>) ?? []).map((o) => {
      const names = strings(o.List.items);
      return {
        stmt,
        kind: 'DropStmt',
        node: { ...n, objects: [o] },
        rv: { schemaname: names.length > 1 ? names[names.length - 2] : undefined, relname: names[names.length - 1]! },
      };
    });
  }
  if (stmt.kind === 'RenameStmt' && ['OBJECT_TABLE', 'OBJECT_COLUMN', 'OBJECT_TABCONSTRAINT'].includes(String(n.renameType))) {
    return [{ stmt, kind: 'RenameStmt', node: n, rv: n.relation as { relname: string } }];
  }
  if (stmt.kind === 'RenameStmt') return [{ stmt, kind: 'RenameStmt', node: n }];
  return [{ stmt, kind: stmt.kind, node: n }];
}

/** Groups each file's locks per table and transaction and estimates how long each is held. */
async function estimateLocks(model: Model, sizes: Sizes, raw: Map<string, RawLock[]>, migrations: MigrationAnalysis[]): Promise<void> {
  const all = [...raw.values()].flat().filter((l) => l.oid);
  const heaps = new Map<string, number>();
  for (const oid of new Set(all.map((l) => l.oid!))) heaps.set(oid, (await sizes.of(oid)).heap);
  const largest = [...heaps].sort((a, b) => b[1] - a[1])[0];
  if (largest) {
    const t = [...model.tables.values()].find((x) => x.live?.oid === largest[0]);
    if (t?.live) await sizes.calibrate(t.live.sql, largest[1]);
  }
  for (const m of migrations) {
    const locks = raw.get(m.name) ?? [];
    const cost = (l: RawLock) => (l.oid ? sizes.estimate(heaps.get(l.oid) ?? 0, l.work) : 0);
    for (const s of m.statements)
      s.locks = locks.filter((l) => l.stmt === s.index).map((l) => ({ table: l.table, mode: l.mode, estimateMs: Math.round(cost(l)) }));
    const byStmt = new Map<number, number>();
    for (const l of locks) byStmt.set(l.stmt, (byStmt.get(l.stmt) ?? 0) + cost(l));
    const groups = new Map<string, RawLock[]>();
    for (const l of locks) groups.set(`${l.table}\u0000${l.txn}`, [...(groups.get(`${l.table}\u0000${l.txn}`) ?? []), l]);
    for (const g of groups.values()) {
      // one hold each time the file's lock on the table gets stronger: each lasts to the end of the transaction
      const until = Math.max(...m.statements.filter((s) => s.txn === g[0]!.txn).map((s) => s.index));
      let current: LockMode | null = null;
      for (const l of [...g].sort((a, b) => a.stmt - b.stmt)) {
        if (current && LOCK_MODES.indexOf(l.mode) <= LOCK_MODES.indexOf(current)) continue;
        current = l.mode;
        const estimateMs = [...byStmt].filter(([i]) => i >= l.stmt && i <= until).reduce((s, [, ms]) => s + ms, 0);
        m.locks.push({
          table: l.table,
          mode: l.mode,
          from: l.stmt,
          until,
          estimateMs: Math.round(estimateMs),
          blocks: blocksOf(l.mode),
          oid: g.find((x) => x.oid)?.oid ?? null,
        });
      }
    }
  }
}
