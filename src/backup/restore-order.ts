// The order a restore writes its tables in, from the foreign keys between them: parents are put back before
// their children, children's extra rows deleted before their parents'. A deferrable foreign key is deferred
// to COMMIT instead (it does not constrain the order); a self-reference is checked per statement, which sees
// the whole table's rows. A cycle of non-deferrable foreign keys has no such order: refused before any write.
import type { Db } from '../db/connection.ts';
import { StateError } from '../errors.ts';
import { FOREIGN_KEYS_AMONG_SQL } from './backup-sql.ts';

export interface ForeignKeyEdge {
  name: string;
  /** Indexes into the tables given. */
  child: number;
  parent: number;
  deferrable: boolean;
}

export interface RestoreOrder {
  /** Indexes into the tables given, parents first. */
  parentsFirst: number[];
  /** Foreign keys among the tables that are deferred to COMMIT (SET CONSTRAINTS … DEFERRED). */
  deferred: string[];
}

/** The foreign keys between the tables (qualified, quoted names), self-references left out. */
export async function foreignKeysAmong(db: Db, tables: readonly string[]): Promise<ForeignKeyEdge[]> {
  const r = await db.query<{ name: string; child: number; parent: number; deferrable: boolean }>(FOREIGN_KEYS_AMONG_SQL, [tables]);
  return r.rows.map((x) => ({ name: x.name, child: Number(x.child) - 1, parent: Number(x.parent) - 1, deferrable: x.deferrable }));
}

/** Kahn's order over the non-deferrable edges, ties kept in the order given (pure, for tests). */
export function orderByForeignKeys(tables: readonly string[], edges: readonly ForeignKeyEdge[]): RestoreOrder {
  const hard = edges.filter((e) => !e.deferrable && e.child !== e.parent);
  const waiting = tables.map((_, i) => new Set(hard.filter((e) => e.child === i).map((e) => e.parent)));
  const done: number[] = [];
  while (done.length < tables.length) {
    const next = tables.findIndex((_, i) => !done.includes(i) && [...waiting[i]!].every((p) => done.includes(p)));
    if (next < 0) {
      const left = tables.map((_, i) => i).filter((i) => !done.includes(i));
      const cycle = hard.filter((e) => left.includes(e.child) && left.includes(e.parent));
      throw new StateError(
        'BELAY_RESTORE_CYCLE',
        `the tables ${left.map((i) => tables[i]).join(', ')} reference each other through foreign keys that are not deferrable (${cycle.map((e) => `"${e.name}"`).join(', ')}): no order restores them one after the other; nothing was restored`,
        {
          details: { tables: left.map((i) => tables[i]), constraints: cycle.map((e) => e.name) },
          fix: `Make one of them deferrable (ALTER TABLE … ALTER CONSTRAINT "${cycle[0]?.name}" DEFERRABLE) so that the restore checks it at COMMIT, or restore the backups one at a time with belay backups restore.`,
        },
      );
    }
    done.push(next);
  }
  return { parentsFirst: done, deferred: [...new Set(edges.filter((e) => e.deferrable).map((e) => e.name))] };
}
