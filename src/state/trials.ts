// belay.trials: dry runs and rehearsals, recorded apart from real runs (a protected environment asks for them).
import type { Db } from '../db/connection.ts';

const RECORD_TRIAL_SQL = `INSERT INTO belay.trials (kind, migration_id, checksum, result, summary) VALUES ($1, $2, $3, $4, $5::jsonb)`;

export async function recordTrial(
  db: Db,
  t: { kind: 'dry-run' | 'rehearse'; migrationId: string; checksum: string; pass: boolean; summary: object },
): Promise<void> {
  await db.query(RECORD_TRIAL_SQL, [t.kind, t.migrationId, t.checksum, t.pass ? 'pass' : 'fail', JSON.stringify(t.summary)]);
}
