/**
 * Source database preparation and checks done once at capture start: connections with the session
 * settings our text parser expects, table/key validation, and the publication.
 */
import pg from 'pg';
import type { PgConnection } from '../spec.js';
import { pgClientConfig, rawTypes } from '../connection.js';
import { fatal } from '../../../src/core/errors.js';
import { classifyPgError } from '../errors.js';
import { decideKey } from '../../../src/capture/table-key.js';
import type { TableRequest } from '../../../src/capture/source.js';
import { formatTableName, parseTableName } from '../../../src/core/names.js';

export async function connectSource(c: PgConnection, what: string): Promise<pg.Client> {
  const client = new pg.Client({ ...pgClientConfig(c), types: rawTypes });
  try {
    await client.connect();
  } catch (err) {
    throw classifyPgError(err, `${what}: cannot connect to PostgreSQL ${c.user}@${c.host}:${c.port}/${c.database}`);
  }
  client.on('error', () => undefined); // surfaced by the next query
  return client;
}

/** A captured table as PostgreSQL knows it (the capture stage gets a PgTable with typed columns). */
export interface PgTable {
  schema: string;
  table: string;
  /** Key columns used for Kafka keys and target upserts. */
  key: string[];
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  /** Column names, in table order (as at start). */
  columns: string[];
}

export const quoteIdent = (s: string) => '"' + s.replace(/"/g, '""') + '"';
export const quoteTable = (schema: string, table: string) => `${quoteIdent(schema)}.${quoteIdent(table)}`;

/**
 * Check every configured table: it exists, its key is known (primary key, or configured key with
 * REPLICA IDENTITY FULL so deletes and updates carry the key's old values). Fatal errors name the table.
 */
export async function inspectTables(client: pg.Client, tables: TableRequest[], pipeline: string): Promise<PgTable[]> {
  const out: PgTable[] = [];
  for (const t of tables) {
    const { schema, table } = parseTableName(t.source);
    const rel = await client.query<{ oid: string; relreplident: string }>(
      `select c.oid::text as oid, c.relreplident from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = $1 and c.relname = $2 and c.relkind in ('r','p')`,
      [schema, table],
    );
    if (rel.rowCount === 0) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${pipeline}: source table ${t.source} does not exist${await spellingHint(client, schema, table)}`);
    const { oid, relreplident } = rel.rows[0]!;
    const cols = await client.query<{ attname: string }>(
      `select attname from pg_attribute where attrelid = $1::oid and attnum > 0 and not attisdropped order by attnum`,
      [oid],
    );
    const pk = await client.query<{ attname: string }>(
      `select a.attname from pg_index i join lateral unnest(i.indkey) with ordinality k(attnum, ord) on true
         join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where i.indrelid = $1::oid and i.indisprimary order by k.ord`,
      [oid],
    );
    const facts = { columns: cols.rows.map((r) => r.attname), primaryKey: pk.rows.map((r) => r.attname), replicaIdentity: relreplident as PgTable['replicaIdentity'] };
    const decided = decideKey(pipeline, t.source, t.key, facts, quoteTable(schema, table));
    if (!decided.ok) throw fatal(decided.code, decided.message);
    out.push({ schema, table, key: decided.key, replicaIdentity: relreplident as PgTable['replicaIdentity'], columns: facts.columns });
  }
  return out;
}

/**
 * For a table that does not exist: the tables whose names differ only in case (names in the config
 * are not folded to lower case, unlike SQL's unquoted names), as a hint for the error message.
 */
async function spellingHint(client: pg.Client, schema: string, table: string): Promise<string> {
  const r = await client
    .query<{ nspname: string; relname: string }>(
      `select n.nspname, c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where lower(n.nspname) = lower($1) and lower(c.relname) = lower($2) and c.relkind in ('r','p') limit 3`,
      [schema, table],
    )
    .catch(() => null);
  if (!r || r.rowCount === 0) return '';
  return ` (did you mean ${r.rows.map((x) => formatTableName({ schema: x.nspname, table: x.relname })).join(' or ')}? Names in the config are taken as written, without folding case)`;
}

/**
 * Create the publication for the configured tables, or add tables missing from an existing one.
 * Without the privileges for that (42501: the user must own the tables and may create in the
 * database) the error says what to run: an administrator's CREATE/ALTER PUBLICATION, or the grants.
 */
export async function ensurePublication(client: pg.Client, publication: string, tables: PgTable[], conn?: PgConnection): Promise<void> {
  const list = tables.map((t) => quoteTable(t.schema, t.table)).join(', ');
  try {
    // Several processes may start at once on the same source (a capture and its restart, the
    // pipelines of one database): the check and the create run under one transaction-scoped
    // advisory lock on the name, so the second waits and then finds the publication.
    await client.query('begin');
    await client.query(`select pg_advisory_xact_lock(hashtext('syncline.publication'), hashtext($1))`, [publication]);
    await ensureLocked(client, publication, tables, list);
    await client.query('commit');
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    const where = conn ? ` in database ${conn.database} as user ${conn.user} (${conn.host}:${conn.port})` : '';
    const e = classifyPgError(err, `cannot create or update publication ${publication}${where}`);
    if ((err as { code?: string }).code !== '42501') throw e;
    const user = conn ? quoteIdent(conn.user) : 'the syncline user';
    e.message +=
      `. Either an administrator creates it once (syncline then only reads it): CREATE PUBLICATION ${quoteIdent(publication)} FOR TABLE ${list}; ` +
      `(or ALTER PUBLICATION ${quoteIdent(publication)} ADD TABLE … for tables added later), ` +
      `or ${user} owns the tables and may create publications: ALTER TABLE … OWNER TO ${user}; GRANT CREATE ON DATABASE ${conn ? quoteIdent(conn.database) : '…'} TO ${user};`;
    throw e;
  }
}

/** The check and the create or add, with the advisory lock held. */
async function ensureLocked(client: pg.Client, publication: string, tables: PgTable[], list: string): Promise<void> {
  const exists = await client.query(`select 1 from pg_publication where pubname = $1`, [publication]);
  if (exists.rowCount === 0) {
    await client.query(`create publication ${quoteIdent(publication)} for table ${list}`);
    return;
  }
  const have = await client.query<{ schemaname: string; tablename: string }>(
    `select schemaname, tablename from pg_publication_tables where pubname = $1`,
    [publication],
  );
  const present = new Set(have.rows.map((r) => formatTableName({ schema: r.schemaname, table: r.tablename })));
  const missing = tables.filter((t) => !present.has(formatTableName(t)));
  if (missing.length > 0) {
    await client.query(`alter publication ${quoteIdent(publication)} add table ${missing.map((t) => quoteTable(t.schema, t.table)).join(', ')}`);
  }
}

/** What a role needs for logical replication, for the message of a 42501 on the replication connection. */
export function replicationGrantHint(conn: PgConnection): string {
  return `user ${conn.user} needs the REPLICATION attribute: ALTER ROLE ${quoteIdent(conn.user)} REPLICATION; (and SELECT on the captured tables for the snapshot)`;
}

/**
 * After the replication stream failed: is the slot gone? Polls for up to `withinMs`, since the
 * usual way to drop an active slot is to terminate its walsender (our stream fails at that moment)
 * and drop the slot right after. A query error counts as "not known to be gone".
 */
export async function slotDropped(client: pg.Client, slot: string, withinMs = 2000): Promise<boolean> {
  const until = Date.now() + withinMs;
  for (;;) {
    const r = await client.query(`select 1 from pg_replication_slots where slot_name = $1`, [slot]).catch(() => null);
    if (!r) return false;
    if (r.rowCount === 0) return true;
    if (Date.now() >= until) return false;
    await new Promise((res) => setTimeout(res, 100));
  }
}
