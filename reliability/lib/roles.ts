// Roles the suite logs in as: one with only CONNECT (privilege errors), one with a password (secrets).
import { ident, literal } from '../../src/db/sql.ts';
import { admin, SERVER } from './server.ts';

/** The password of belay_pw. It must never appear in any output, file or state row. */
export const SECRET = 'S3cr3t-belay-Rel-9Qz';
/** A second password with characters a URL must encode ("/", "@", "%"). */
export const SECRET_ENC_RAW = 'S3cr3t/belay@Rel%7';
export const SECRET_ENC = encodeURIComponent(SECRET_ENC_RAW);
export const RO_ROLE = 'belay_t_ro';
export const PW_ROLE = 'belay_pw';

export async function ensureRoles(): Promise<void> {
  await admin(async (a) => {
    for (const [role, extra] of [
      [RO_ROLE, 'LOGIN NOSUPERUSER NOCREATEDB'],
      [PW_ROLE, `LOGIN SUPERUSER PASSWORD ${literal(SECRET)}`],
    ] as const) {
      const r = await a.query(`SELECT 1 FROM pg_roles WHERE rolname = $1`, [role]);
      if (r.rowCount === 0) await a.query(`CREATE ROLE ${ident(role)} ${extra}`);
      else await a.query(`ALTER ROLE ${ident(role)} ${extra}`);
    }
  });
}

/** URL of a database as the role, with its password when it has one. */
export function roleUrl(role: string, db: string, password?: string, port = new URL(SERVER).port || '5432'): string {
  const host = new URL(SERVER).hostname;
  return `postgres://${role}${password ? `:${encodeURIComponent(password)}` : ''}@${host}:${port}/${db}`;
}
