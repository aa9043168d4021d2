// Order-independent table checksums, independent of the session's text settings.
import { type Db, transaction } from './connection.ts';
import { pinnedSettingsSql } from './sql.ts';

export interface TableChecksum {
  rows: number;
  /** sum(hashtextextended(t::text, 0)) as text: equal sets of rows give equal sums, in any order. */
  checksum: string;
}

/** Checksums one table (sqlName must already be quoted, e.g. from qualified()). */
export async function checksumTable(db: Db, sqlName: string): Promise<TableChecksum> {
  return transaction(db, async () => {
    await db.exec(pinnedSettingsSql());
    const r = await db.query<{ rows: number; checksum: string | null }>(
      `SELECT count(*)::float8 AS rows, coalesce(sum(hashtextextended(t::text, 0)), 0)::text AS checksum FROM ${sqlName} t`,
    );
    return { rows: Number(r.rows[0]!.rows), checksum: r.rows[0]!.checksum ?? '0' };
  });
}
