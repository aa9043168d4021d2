// The safe form of a migration file, as a plan of steps: what runs before its transaction (index builds
// CONCURRENTLY, each with its undo), what runs in it (everything else, in order, with the history row), and
// what runs after it commits (VALIDATE CONSTRAINT of constraints added NOT VALID, SET NOT NULL through a
// validated CHECK). Explicit BEGIN/COMMIT are dropped: the whole file is one transaction. A large UPDATE
// that opens the file runs first as a belay batched step (batched-update.ts): decided once, written in
// keyset batches with the undo log, rolled back by belay if anything after it fails.
import { ident, qualified } from '../db/sql.ts';
import type { StatementInfo } from './analyze.ts';
import { type BatchedDelete, batchedDelete } from './batched-delete.ts';
import { type BatchedUpdate, batchedUpdate } from './batched-update.ts';
import { strings } from './fragments.ts';
import type { ParsedFile } from './parse.ts';
import { dropIndexConcurrentlySql } from './prisma-sql.ts';
import type { MigrationFile, Statement } from './types.ts';

export type Phase = 'batched' | 'before' | 'transaction' | 'after';

export interface DeployStep {
  phase: Phase;
  sql: string;
  /** The statement of migration.sql it comes from (1-based), or null for steps belay adds. */
  statement: number | null;
  /** Why it differs from the file, when it does. */
  why?: string;
  /** SQL that undoes a `before` step if the migration fails later. */
  undo?: string;
  /** An index built CONCURRENTLY: checked valid (indisvalid) after the build. */
  index?: string;
  /** A `batched` step: the UPDATE as a belay step. */
  batched?: BatchedUpdate;
  /** A `batched` step: the DELETE in keyset batches with its undo table. */
  deleted?: BatchedDelete;
}

export interface MigrationPlan {
  name: string;
  checksum: string;
  steps: DeployStep[];
}

export interface RewriteOptions {
  /** Rewrite for concurrency (a server); false runs the file as it is in one transaction (PGlite). */
  rewrite: boolean;
  /** The schema unqualified names resolve to. */
  schema: string;
  /** An UPDATE or DELETE that opens the file, on a table of at least this many rows (estimated), runs batched; unset: never. */
  batchOver?: number;
  /** Why a DELETE on `schema.table` cannot be batched ('' when it can; absent: not looked up, not batched). */
  deleteHazards?: ReadonlyMap<string, string>;
}

export function planMigration(file: MigrationFile, parsed: ParsedFile, infos: readonly StatementInfo[], opts: RewriteOptions): MigrationPlan {
  const steps: DeployStep[] = [];
  const stmts = parsed.statements;
  // only UPDATEs that open the file: nothing earlier in it can be undone once their batches commit
  let leading = true;
  for (const s of stmts) {
    const info = infos.find((i) => i.index === s.index);
    const act = info?.actions[0];
    const tx = (sql: string, why?: string): void => void steps.push({ phase: 'transaction', sql, statement: s.index, ...(why ? { why } : {}) });
    if (s.kind === 'TransactionStmt') continue;
    const over: number | undefined = leading && opts.rewrite ? opts.batchOver : undefined;
    const batched: BatchedUpdate | undefined = over !== undefined && act ? batchedUpdate(parsed, s, act, over) : undefined;
    const deleted: BatchedDelete | undefined =
      over !== undefined && act && !batched ? batchedDelete(parsed, s, act, over, file.name, opts.deleteHazards?.get(`${act.schema}.${act.table}`)) : undefined;
    leading &&= batched !== undefined || deleted !== undefined;
    if (deleted) {
      steps.push({
        phase: 'batched',
        sql: s.text,
        statement: s.index,
        deleted,
        why: `about ${Math.round(deleted.rows).toLocaleString('en-US')} rows: deleted in keyset batches, every deleted row kept in ${deleted.undo}; put back if the rest of the file fails`,
      });
      continue;
    }
    if (batched) {
      steps.push({
        phase: 'batched',
        sql: s.text,
        statement: s.index,
        batched,
        why: `about ${Math.round(batched.rows).toLocaleString('en-US')} rows: decided once, written in keyset batches with the undo log (rows that already hold the new values are not rewritten); rolled back if the rest of the file fails`,
      });
      continue;
    }
    if (s.kind === 'IndexStmt') {
      const name = s.node.idxname ? String(s.node.idxname) : null;
      const rel = s.node.relation as { schemaname?: string };
      const reused = name && stmts.some((o) => o.index < s.index && namesOf(o).includes(name));
      if (opts.rewrite && name && act?.live && !act.touchedBefore && !reused) {
        const index = qualified([rel.schemaname ?? opts.schema, name]);
        steps.push({
          phase: 'before',
          sql: s.node.concurrent ? s.text : withConcurrently(parsed, s),
          statement: s.index,
          index,
          undo: dropIndexConcurrentlySql(index),
          why: 'built CONCURRENTLY before the transaction: writes to the table go on during the build',
        });
        continue;
      }
      if (s.node.concurrent)
        tx(withoutConcurrently(parsed, s), 'CONCURRENTLY removed: the table is new or changed earlier in this file, so the index is built in the transaction');
      else tx(s.text);
      continue;
    }
    if (s.kind === 'DropStmt' && s.node.concurrent) {
      tx(withoutConcurrently(parsed, s), 'CONCURRENTLY removed: it cannot run in the transaction');
      continue;
    }
    const cmds = (s.node.cmds as Array<{ AlterTableCmd: Record<string, unknown> }> | undefined) ?? [];
    if (opts.rewrite && s.kind === 'AlterTableStmt' && cmds.length === 1 && act?.live) {
      const cmd = cmds[0]!.AlterTableCmd;
      const rel = s.node.relation as { schemaname?: string; relname: string };
      const table = qualified([rel.schemaname ?? opts.schema, rel.relname]);
      const c = (cmd.def as { Constraint?: { contype: string; conname?: string; skip_validation?: boolean } } | undefined)?.Constraint;
      if (cmd.subtype === 'AT_AddConstraint' && c && ['CONSTR_FOREIGN', 'CONSTR_CHECK'].includes(c.contype) && !c.skip_validation && c.conname) {
        tx(`${core(parsed, s)} NOT VALID`, 'added NOT VALID: checked for new rows at once, existing rows validated after the commit without blocking writes');
        steps.push({
          phase: 'after',
          sql: `ALTER TABLE ${table} VALIDATE CONSTRAINT ${ident(c.conname)}`,
          statement: s.index,
          why: 'validates the existing rows under a SHARE UPDATE EXCLUSIVE lock',
        });
        continue;
      }
      if (cmd.subtype === 'AT_SetNotNull') {
        const col = String(cmd.name);
        const check = ident(`belay_nn_${rel.relname}_${col}`.slice(0, 63));
        tx(
          `ALTER TABLE ${table} ADD CONSTRAINT ${check} CHECK (${ident(col)} IS NOT NULL) NOT VALID`,
          'SET NOT NULL through a CHECK added NOT VALID, validated after the commit',
        );
        steps.push(
          { phase: 'after', sql: `ALTER TABLE ${table} VALIDATE CONSTRAINT ${check}`, statement: s.index, why: 'scans the rows without blocking writes' },
          {
            phase: 'after',
            sql: `ALTER TABLE ${table} ALTER COLUMN ${ident(col)} SET NOT NULL`,
            statement: s.index,
            why: 'uses the validated CHECK instead of scanning the table',
          },
          { phase: 'after', sql: `ALTER TABLE ${table} DROP CONSTRAINT ${check}`, statement: null, why: 'the CHECK is no longer needed' },
        );
        continue;
      }
    }
    tx(s.text);
  }
  const order: Phase[] = ['batched', 'before', 'transaction', 'after'];
  return { name: file.name, checksum: file.checksum, steps: order.flatMap((ph) => steps.filter((x) => x.phase === ph)) };
}

/** Names a statement drops or renames (an index dropped before being built again under the same name). */
function namesOf(s: Statement): string[] {
  if (s.kind === 'DropStmt') return ((s.node.objects as Array<{ List?: { items: unknown[] } }>) ?? []).flatMap((o) => strings(o.List?.items).slice(-1));
  if (s.kind === 'RenameStmt') return [String((s.node.relation as { relname?: string } | undefined)?.relname ?? s.node.subname ?? ''), String(s.node.newname)];
  if (s.kind === 'AlterTableStmt') return ((s.node.cmds as Array<{ AlterTableCmd: { name?: string } }>) ?? []).map((c) => String(c.AlterTableCmd.name ?? ''));
  return [];
}

/** The statement up to its last token (no trailing comment before the semicolon). */
function core(p: ParsedFile, s: Statement): string {
  const toks = p.text.tokens(s.start, s.end);
  return p.text.slice(s.start, toks[toks.length - 1]!.end);
}

function withConcurrently(p: ParsedFile, s: Statement): string {
  const toks = p.text.tokens(s.start, s.end);
  const idx = toks.find((t) => t.up === 'INDEX')!;
  return `${p.text.slice(s.start, idx.end)} CONCURRENTLY${p.text.slice(idx.end, s.end)}`;
}

function withoutConcurrently(p: ParsedFile, s: Statement): string {
  const c = p.text.tokens(s.start, s.end).find((t) => t.up === 'CONCURRENTLY')!;
  return `${p.text.slice(s.start, c.start)}${p.text.slice(c.end, s.end).replace(/^\s+/, '')}`;
}
