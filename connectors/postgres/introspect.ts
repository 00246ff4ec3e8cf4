/**
 * What the PostgreSQL catalog says about tables, the server and the connected role: the facts
 * `syncline init` writes a config from and `syncline doctor` checks a config against. Read-only
 * catalog queries; any role that can connect may run them (rows it cannot see are simply absent).
 * The decisions taken from these facts are pure functions elsewhere (src/capture/table-key.ts,
 * ./doctor.ts), unit-tested without a server.
 */
import { quoteIdent, quoteTable } from './source/prepare.js';

/** Runs one query; rows with pg's default type parsing (PgProbe.query fits). */
export type Query = (text: string, params?: unknown[]) => Promise<Record<string, unknown>[]>;

export interface ColumnFacts {
  name: string;
  /** format_type(): `character varying(200)`, `numeric(12,2)`, `timestamp with time zone`. */
  type: string;
  notNull: boolean;
  /** A generated column (never written by syncline). */
  generated: boolean;
}

export interface TableFacts {
  schema: string;
  table: string;
  /** r: an ordinary table, p: a partitioned table. */
  kind: 'r' | 'p';
  /** A partition of a partitioned table. */
  partition: boolean;
  columns: ColumnFacts[];
  primaryKey: string[];
  replicaIdentity: 'd' | 'n' | 'f' | 'i';
  /** Columns of the REPLICA IDENTITY USING INDEX index ([] for other identities). */
  identityIndex: string[];
  /** Unique, non-partial indexes on plain NOT NULL columns other than the primary key: candidate keys. */
  uniqueKeys: { index: string; columns: string[] }[];
  /** The connected role may SELECT / INSERT / UPDATE / DELETE / TRUNCATE it. */
  privileges: { select: boolean; insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  /** The connected role owns it (or is a member of its owner): it may ALTER it and publish it. */
  owned: boolean;
}

export interface TableName {
  schema: string;
  table: string;
}

export const sqlTable = (t: TableName) => quoteTable(t.schema, t.table);
export const sqlIdent = quoteIdent;

const str = (v: unknown) => String(v);
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.map(String) : []);

/**
 * Facts of the named tables (absent ones are left out: compare with the names asked), or of every
 * ordinary and partitioned table outside the system schemas ('all'), sorted by schema and name.
 */
export async function describeTables(q: Query, which: TableName[] | 'all'): Promise<TableFacts[]> {
  const filter =
    which === 'all'
      ? `n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp_)'`
      : `(n.nspname, c.relname) in (select * from unnest($1::text[], $2::text[]))`;
  const params = which === 'all' ? [] : [which.map((t) => t.schema), which.map((t) => t.table)];
  const rels = await q(
    `select c.oid::text as oid, n.nspname::text as schema, c.relname::text as table, c.relkind::text as kind,
            c.relispartition as partition, c.relreplident::text as replident,
            has_table_privilege(c.oid, 'SELECT') as sel, has_table_privilege(c.oid, 'INSERT') as ins,
            has_table_privilege(c.oid, 'UPDATE') as upd, has_table_privilege(c.oid, 'DELETE') as del,
            has_table_privilege(c.oid, 'TRUNCATE') as trunc, pg_has_role(c.relowner, 'USAGE') as owned
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where c.relkind in ('r', 'p') and ${filter}
      order by n.nspname, c.relname`,
    params,
  );
  if (rels.length === 0) return [];
  const oids = rels.map((r) => str(r.oid));
  const cols = await q(
    `select attrelid::text as oid, attname::text as name, format_type(atttypid, atttypmod) as type, attnotnull as not_null, attgenerated <> '' as generated
       from pg_attribute where attrelid = any($1::oid[]) and attnum > 0 and not attisdropped order by attrelid, attnum`,
    [oids],
  );
  const idx = await q(
    `select i.indrelid::text as oid, ic.relname::text as index, i.indisprimary as primary, i.indisunique as unique,
            i.indisreplident as replident, i.indpred is not null or i.indexprs is not null or 0 = any(i.indkey::int2[]) as partial,
            array(select a.attname::text from unnest(i.indkey::int2[]) with ordinality k(num, ord)
                    join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.num order by k.ord) as columns
       from pg_index i join pg_class ic on ic.oid = i.indexrelid
      where i.indrelid = any($1::oid[]) and i.indisvalid
      order by i.indrelid, ic.relname`,
    [oids],
  );
  return rels.map((r) => {
    const oid = str(r.oid);
    const columns: ColumnFacts[] = cols
      .filter((c) => str(c.oid) === oid)
      .map((c) => ({ name: str(c.name), type: str(c.type), notNull: c.not_null === true, generated: c.generated === true }));
    const notNull = new Set(columns.filter((c) => c.notNull).map((c) => c.name));
    const indexes = idx.filter((i) => str(i.oid) === oid);
    const primaryKey = strings(indexes.find((i) => i.primary === true)?.columns);
    return {
      schema: str(r.schema),
      table: str(r.table),
      kind: r.kind === 'p' ? 'p' : 'r',
      partition: r.partition === true,
      columns,
      primaryKey,
      replicaIdentity: (['d', 'n', 'f', 'i'].includes(str(r.replident)) ? str(r.replident) : 'd') as TableFacts['replicaIdentity'],
      identityIndex: strings(indexes.find((i) => i.replident === true)?.columns),
      uniqueKeys: indexes
        .filter((i) => i.unique === true && i.primary !== true && i.partial !== true && strings(i.columns).every((c) => notNull.has(c)))
        .map((i) => ({ index: str(i.index), columns: strings(i.columns) })),
      privileges: { select: r.sel === true, insert: r.ins === true, update: r.upd === true, delete: r.del === true, truncate: r.trunc === true },
      owned: r.owned === true,
    };
  });
}

export interface ServerFacts {
  version: number;
  walLevel: string;
  maxReplicationSlots: number;
  maxWalSenders: number;
  walSegmentBytes: number;
  /** Replication slots of the whole server. */
  slots: SlotFacts[];
  /** Walsender processes running now (each streaming slot holds one). */
  walSenders: number;
}

export interface SlotFacts {
  name: string;
  plugin: string | null;
  type: string;
  database: string | null;
  active: boolean;
  activePid: number | null;
  /** reserved | extended | unreserved | lost (null on servers before 13). */
  walStatus: string | null;
  /** WAL the slot keeps from being removed: current position − restart_lsn (null when unknown). */
  retainedBytes: number | null;
}

export async function describeServer(q: Query): Promise<ServerFacts> {
  const [s] = await q(
    `select current_setting('server_version_num')::int as version, current_setting('wal_level') as wal_level,
            current_setting('max_replication_slots')::int as slots, current_setting('max_wal_senders')::int as senders,
            (select setting::bigint * case unit when 'B' then 1 when 'kB' then 1024 when 'MB' then 1048576 else 1 end
               from pg_settings where name = 'wal_segment_size') as segment,
            (select count(*)::int from pg_stat_activity where backend_type = 'walsender') as walsenders`,
  );
  const slots = await q(
    `select slot_name::text as name, plugin::text as plugin, slot_type as type, database::text as database, active, active_pid,
            wal_status, case when restart_lsn is null then null
                             when pg_is_in_recovery() then pg_last_wal_receive_lsn() - restart_lsn
                             else pg_current_wal_lsn() - restart_lsn end::float8 as retained
       from pg_replication_slots order by slot_name`,
  );
  return {
    version: Number(s!.version),
    walLevel: str(s!.wal_level),
    maxReplicationSlots: Number(s!.slots),
    maxWalSenders: Number(s!.senders),
    walSegmentBytes: Number(s!.segment),
    walSenders: Number(s!.walsenders),
    slots: slots.map((r) => ({
      name: str(r.name),
      plugin: r.plugin == null ? null : str(r.plugin),
      type: str(r.type),
      database: r.database == null ? null : str(r.database),
      active: r.active === true,
      activePid: r.active_pid == null ? null : Number(r.active_pid),
      walStatus: r.wal_status == null ? null : str(r.wal_status),
      retainedBytes: r.retained == null ? null : Number(r.retained),
    })),
  };
}

export interface RoleFacts {
  name: string;
  superuser: boolean;
  replication: boolean;
  database: string;
  /** May create in the current database (publications need it). */
  createInDatabase: boolean;
}

export async function describeRole(q: Query): Promise<RoleFacts> {
  const [r] = await q(
    `select current_user::text as name, r.rolsuper as superuser, r.rolreplication as replication, current_database()::text as database,
            has_database_privilege(current_database(), 'CREATE') as create_db
       from pg_roles r where r.rolname = current_user`,
  );
  return { name: str(r!.name), superuser: r!.superuser === true, replication: r!.replication === true, database: str(r!.database), createInDatabase: r!.create_db === true };
}

export interface PublicationFacts {
  name: string;
  allTables: boolean;
  publishes: { insert: boolean; update: boolean; delete: boolean; truncate: boolean };
  owned: boolean;
  /** Tables it covers ('schema.table' per pg_publication_tables). */
  tables: TableName[];
}

export async function describePublication(q: Query, name: string): Promise<PublicationFacts | null> {
  const [p] = await q(
    `select pubname::text as name, puballtables, pubinsert, pubupdate, pubdelete, pubtruncate, pg_has_role(pubowner, 'USAGE') as owned
       from pg_publication where pubname = $1`,
    [name],
  );
  if (!p) return null;
  const tables = await q(`select schemaname::text as schema, tablename::text as table from pg_publication_tables where pubname = $1`, [name]);
  return {
    name: str(p.name),
    allTables: p.puballtables === true,
    publishes: { insert: p.pubinsert === true, update: p.pubupdate === true, delete: p.pubdelete === true, truncate: p.pubtruncate === true },
    owned: p.owned === true,
    tables: tables.map((t) => ({ schema: str(t.schema), table: str(t.table) })),
  };
}

/** Whether the connected role may EXECUTE a function (by its signature, e.g. `pg_replication_origin_session_setup(text)`). */
export async function canExecute(q: Query, signature: string): Promise<boolean> {
  const [r] = await q(`select has_function_privilege($1, 'EXECUTE') as ok`, [signature]);
  return r?.ok === true;
}
