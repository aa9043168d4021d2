// belay's schemas hold every before-image it wrote (the undo log) and whole copies of tables (backups):
// only their owner may read them. belay creates them itself, takes every privilege from everyone else,
// including what default privileges gave (ALTER DEFAULT PRIVILEGES … GRANT SELECT ON TABLES TO app, set
// for the whole database, applies to every table belay creates too), and refuses schemas of that name
// that it did not create, that another role owns, or that grant anything to another role.
import type { Db } from '../db/connection.ts';
import { ident } from '../db/sql.ts';
import { StateError } from '../errors.ts';

/** The comment belay puts on the schemas it creates; a schema without it was not made by belay. */
export const SCHEMA_MARK = "created by belay: migration state and backups, readable by this schema's owner only";

/** The roles whose privileges belay's session has by membership: itself and the roles it is a member of (not superuser's "everything"). */
const MINE_CTE = `WITH RECURSIVE mine AS (
  SELECT oid FROM pg_roles WHERE rolname = current_user
  UNION SELECT m.roleid FROM pg_auth_members m JOIN mine ON m.member = mine.oid
)`;

const objtype = (col: string) =>
  `CASE ${col} WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES' WHEN 'f' THEN 'FUNCTIONS' WHEN 'T' THEN 'TYPES' ELSE 'SCHEMAS' END`;
const grantee = (col: string) => `CASE WHEN ${col} = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(${col})) END`;

/** What each of belay's schemas that exists looks like: owner, mark, grants to others, objects of others. */
export const SCHEMA_AUDIT_SQL = `${MINE_CTE}
SELECT n.nspname AS schema, pg_get_userbyid(n.nspowner) AS owner, n.nspowner IN (SELECT oid FROM mine) AS "ownedByMe",
       current_user::text AS "me", obj_description(n.oid, 'pg_namespace') AS comment,
       -- made by an earlier belay, before schemas were marked: belay.state_version exists under the same owner
       EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
                WHERE s.nspname = 'belay' AND c.relname = 'state_version' AND s.nspowner = n.nspowner) AS "hasState",
       coalesce((SELECT array_agg(DISTINCT ${grantee('a.grantee')}) FROM aclexplode(n.nspacl) a WHERE a.grantee <> n.nspowner), '{}') AS "schemaGrantees",
       coalesce((SELECT array_agg(DISTINCT format('%s.%s to %s', quote_ident(n.nspname), quote_ident(c.relname), ${grantee('a.grantee')}))
                   FROM pg_class c, aclexplode(c.relacl) a WHERE c.relnamespace = n.oid AND a.grantee <> c.relowner), '{}') AS "tableGrants",
       coalesce((SELECT array_agg(format('%s.%s (owner %s)', quote_ident(n.nspname), quote_ident(c.relname), pg_get_userbyid(c.relowner)))
                   FROM pg_class c WHERE c.relnamespace = n.oid AND c.relowner NOT IN (SELECT oid FROM mine)), '{}') AS "othersObjects",
       coalesce((SELECT array_agg(DISTINCT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I REVOKE ALL ON %s FROM %s;', pg_get_userbyid(d.defaclrole), n.nspname,
                                   ${objtype('d.defaclobjtype')}, ${grantee('a.grantee')}))
                   FROM pg_default_acl d, aclexplode(d.defaclacl) a WHERE d.defaclnamespace = n.oid AND a.grantee <> d.defaclrole), '{}') AS "defaultGrants"
  FROM pg_namespace n WHERE n.nspname = ANY ($1::text[])`;

/** Every grant on the schema and its relations to a role other than the owner, as REVOKE statements. */
const REVOKES_SQL = `
SELECT format('REVOKE ALL ON SCHEMA %I FROM %s CASCADE', n.nspname, string_agg(DISTINCT ${grantee('a.grantee')}, ', ')) AS sql
  FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = $1 AND a.grantee <> n.nspowner GROUP BY n.nspname
UNION ALL
SELECT format('REVOKE ALL ON %s %s FROM %s CASCADE', CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, c.oid::regclass, string_agg(DISTINCT ${grantee('a.grantee')}, ', '))
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.relnamespace = to_regnamespace(quote_ident($1)) AND a.grantee <> c.relowner AND ($2::regclass IS NULL OR c.oid = $2::regclass)
 GROUP BY c.oid, c.relkind
UNION ALL
SELECT format('ALTER DEFAULT PRIVILEGES IN SCHEMA %I REVOKE ALL ON %s FROM %s', $1,
              ${objtype('d.defaclobjtype')},
              string_agg(DISTINCT ${grantee('a.grantee')}, ', '))
  FROM pg_default_acl d, aclexplode(d.defaclacl) a
 WHERE $2::regclass IS NULL AND d.defaclnamespace = to_regnamespace(quote_ident($1)) AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
   AND a.grantee <> d.defaclrole
 GROUP BY d.defaclobjtype`;

export interface SchemaAudit {
  schema: string;
  owner: string;
  ownedByMe: boolean;
  me: string;
  comment: string | null;
  hasState: boolean;
  schemaGrantees: string[];
  tableGrants: string[];
  othersObjects: string[];
  defaultGrants: string[];
}

/**
 * Takes from every role but the owner whatever it holds on the schema (and default privileges set in it)
 * and on its relations, or on one relation of it. Inside the caller's transaction, right after belay
 * created them, so no other session ever sees a grant.
 */
export async function ownerOnly(db: Db, schema: string, relation?: string): Promise<void> {
  const r = await db.query<{ sql: string }>(REVOKES_SQL, [schema, relation ?? null]);
  for (const { sql } of r.rows) await db.query(sql);
}

/**
 * Refuses (BELAY_STATE_SCHEMA, exit 8) a schema of belay's that belay did not create, that another role
 * owns, holds objects of another role, or grants privileges to another role; says how to fix it.
 */
export async function assertOwnSchemas(db: Db, schemas: readonly string[]): Promise<SchemaAudit[]> {
  const audits = (await db.query<SchemaAudit>(SCHEMA_AUDIT_SQL, [schemas])).rows;
  for (const a of audits) {
    const s = ident(a.schema);
    const refuse = (why: string, fix: string, details: Record<string, unknown> = {}): never => {
      throw new StateError('BELAY_STATE_SCHEMA', `schema ${s} ${why}; belay keeps its undo log and backups there and will not use it`, {
        details: { schema: a.schema, owner: a.owner, role: a.me, ...details },
        fix,
      });
    };
    if (!a.ownedByMe) {
      refuse(
        `is owned by role "${a.owner}", not by "${a.me}" (the role belay runs as) or a role it is a member of: its owner could read or drop the backups`,
        `If ${s} is belay's from an earlier run as "${a.owner}", run belay as "${a.owner}"; otherwise move it out of the way (ALTER SCHEMA ${s} RENAME TO ${ident(`${a.schema}_old`)}) and run belay again: it creates its own.`,
      );
    }
    if (a.comment !== SCHEMA_MARK && !a.hasState) {
      refuse(
        'exists but was not created by belay',
        `Rename or drop it (ALTER SCHEMA ${s} RENAME TO ${ident(`${a.schema}_old`)}) and run belay again; if it was made for belay on purpose, mark it as its owner: COMMENT ON SCHEMA ${s} IS '${SCHEMA_MARK.replace(/'/g, "''")}';`,
      );
    }
    if (a.othersObjects.length > 0) {
      refuse(
        `holds objects of other roles (${a.othersObjects.join(', ')})`,
        `Move them out (ALTER TABLE … SET SCHEMA public) or drop them, then run belay again.`,
        { objects: a.othersObjects },
      );
    }
    const grants = [
      ...a.schemaGrantees.map((g) => `privileges on the schema to ${g}`),
      ...a.tableGrants,
      ...a.defaultGrants.map((g) => `default privileges (${g.replace(/;$/, '').replace(' REVOKE ALL ON', ' …').replace(' FROM ', ' to ')})`),
    ];
    if (grants.length > 0) {
      const to = [...new Set(a.tableGrants.map((g) => g.split(' to ').pop()!))].join(', ');
      const revokes = [
        ...(a.schemaGrantees.length ? [`REVOKE ALL ON SCHEMA ${s} FROM ${a.schemaGrantees.join(', ')} CASCADE;`] : []),
        ...(a.tableGrants.length
          ? [`REVOKE ALL ON ALL TABLES IN SCHEMA ${s} FROM ${to} CASCADE; REVOKE ALL ON ALL SEQUENCES IN SCHEMA ${s} FROM ${to} CASCADE;`]
          : []),
        ...a.defaultGrants,
      ];
      refuse(
        `grants privileges to other roles (${grants.join('; ')}): they could read the undo log and the backups`,
        `As the owner, take them back: ${revokes.join(' ')} Then run belay again.`,
        { grants },
      );
    }
  }
  return audits;
}
