// disableUserTriggers, as a batch honours it: the step's batches run under session_replication_role =
// replica, and check themselves the foreign keys from the table over the written columns, which the server
// then does not (their triggers are ordinary ones). Foreign keys into the table are belay check's notes.
import { catalogFacts } from '../db/catalog-facts.ts';
import type { Db } from '../db/connection.ts';
import type { KeyShape } from '../db/key-sql.ts';
import type { Guard } from '../contract.ts';
import type { BatchedStep } from '../spec/define.ts';
import { foreignKeyGuardSql } from './batch-sql.ts';

/** The in-batch checks that stand in for the foreign keys a step with disableUserTriggers switches off. */
export async function replicaRoleGuards(db: Db, step: BatchedStep, key: KeyShape): Promise<Guard[]> {
  if (!step.disableUserTriggers) return [];
  const facts = await catalogFacts(db, step.table, step.writes);
  return facts.foreignKeysFrom.map((fk) => ({ name: `foreign key ${fk.name}`, sql: foreignKeyGuardSql(fk, key) }));
}
