/**
 * `syncline doctor` for MariaDB sources and targets (the registrations' `doctor` hooks).
 *
 * Source, once per server: the binlog on, ROW, FULL row images, a server_id; per pipeline: the
 * account's REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR) on *.*, SELECT on each table,
 * the tables, their keys, column names Avro can carry. Target, per pipeline: each table (or the
 * right to create it: autoCreate), its key constraint, SELECT/INSERT/UPDATE/DELETE and DROP (TRUNCATE
 * needs it), the columns (or ALTER: autoEvolve), and for two-way sync SUPER or BINLOG REPLAY
 * (`SET SESSION server_id`, ./origins.ts); for backfills, INSERT and DELETE on the source's signal
 * table `syncline_signals` (./source/backfill.ts). Rights are read from SHOW GRANTS of the current account
 * (global, database and table grants; database names with LIKE wildcards as MariaDB matches them);
 * privileges that reach the account only through a role are not followed: grant them to the
 * account or make the role its default (then SHOW GRANTS lists them).
 * The decisions are pure functions (unit-tested); the I/O is in the two hooks at the end.
 */
import mysql from 'mysql2/promise';
import { parseTableName } from '../../src/core/names.js';
import { isAvroName } from '../../src/core/avro.js';
import { errorMessage } from '../../src/core/errors.js';
import { fail, pass, type DoctorContext, type DoctorItem, type DoctorTable, type Finding, type SourceDoctorReport, type TargetDemand } from '../../src/observe/findings.js';
import { mariadbOptions, type MariadbConnection } from './connection.js';
import { addColumnsSql, columnOf, createTableSql, newTableColumns, quoteIdent } from './ddl.js';
import { ORIGINS_TABLE } from './origins.js';
import { binlogProblems, missingReplicationGrants, readBinlogSettings, readColumns, showGrants, type BinlogSettings } from './source/prepare.js';
import type { MariadbSourceConfig } from './source/spec.js';
import { SIGNAL_TABLE, signalTableSql } from './source/backfill.js';
import type { MariadbSinkConfig } from './spec.js';

export const mariadbWhere = (c: MariadbConnection): string => `${c.user}@${c.host}:${c.port}/${c.database}`;

const list = (xs: string[]) => xs.join(', ');

// ---------------------------------------------------------------------------------------------
// Grants

export interface Grant {
  privileges: Set<string>;
  /** A database name pattern (LIKE: `%`, `_`, `\_`) or '*'. */
  database: string;
  table: string;
}

/** The table-, database- and global-level grants of SHOW GRANTS lines (column grants and role grants are left out). */
export function parseGrants(lines: string[]): Grant[] {
  const out: Grant[] = [];
  for (const line of lines) {
    const m = /^GRANT (.+?) ON (?:TABLE )?(\*|`(?:[^`]|``)+`)\.(\*|`(?:[^`]|``)+`) TO /i.exec(line);
    if (!m) continue;
    const privs = m[1]!
      .split(/,(?![^(]*\))/)
      .map((p) => p.trim().toUpperCase())
      .filter((p) => !p.includes('(')); // column privileges do not cover the table
    const unq = (s: string) => (s === '*' ? '*' : s.slice(1, -1).replace(/``/g, '`'));
    out.push({ privileges: new Set(privs.map((p) => (p === 'ALL' ? 'ALL PRIVILEGES' : p))), database: unq(m[2]!), table: unq(m[3]!) });
  }
  return out;
}

function likeMatches(pattern: string, name: string): boolean {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '\\' && i + 1 < pattern.length) re += pattern[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    else if (ch === '%') re += '.*';
    else if (ch === '_') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 's').test(name);
}

/** Whether the grants give `privilege` on database.table (table undefined: on the database itself). */
export function granted(grants: Grant[], privilege: string, database: string, table?: string): boolean {
  return grants.some((g) => {
    if (!g.privileges.has(privilege) && !g.privileges.has('ALL PRIVILEGES')) return false;
    if (g.database === '*') return true;
    if (!likeMatches(g.database, database)) return false;
    return g.table === '*' || (table !== undefined && g.table === table);
  });
}

/** `'user'@'host'` of CURRENT_USER() ('user@host'), for GRANT statements. */
export function account(currentUser: string): string {
  const at = currentUser.lastIndexOf('@');
  const q = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
  return at < 0 ? q(currentUser) : `${q(currentUser.slice(0, at))}@${q(currentUser.slice(at + 1))}`;
}

// ---------------------------------------------------------------------------------------------
// Source

export function serverFindings(subject: string, v: BinlogSettings, at: string): Finding[] {
  const problems = binlogProblems(v, at);
  const cnf = 'in the server configuration ([mariadbd] in /etc/mysql/mariadb.conf.d/): log_bin, binlog_format=ROW, binlog_row_image=FULL, server_id=<unique, not 0>; then restart MariaDB (scripts/stack.sh up does it here)';
  const out: Finding[] = [];
  for (const setting of ['log_bin', 'binlog_format', 'binlog_row_image']) {
    const p = problems.find((x) => x.setting === setting);
    const value = setting === 'log_bin' ? v.logBin : setting === 'binlog_format' ? v.format : v.image;
    if (p) out.push(fail(subject, setting, p.message.replace(/^MariaDB at \S+ /, ''), setting === 'log_bin' ? [cnf] : [`SET GLOBAL ${setting} = '${setting === 'binlog_format' ? 'ROW' : 'FULL'}';   -- and ${cnf}`]));
    else if (!problems.some((x) => x.setting === 'log_bin')) out.push(pass(subject, setting, String(value)));
  }
  if (v.serverId > 0) out.push(pass(subject, 'server_id', String(v.serverId)));
  else out.push(fail(subject, 'server_id', 'is 0: a server with server_id 0 refuses replicas', ['SET GLOBAL server_id = 1;   -- (any id no other server of the topology uses) and in the server configuration']));
  return out;
}

/** What the source found of one configured table (null: it does not exist or cannot be seen). */
export interface SourceTableFacts {
  source: string;
  columns: { name: string; pgType: string; notNull: boolean }[] | null;
  primaryKey: string[];
  configuredKey?: string[];
  select: boolean;
}

export function sourceFindings(subject: string, pipeline: string, user: string, grants: string[], tables: SourceTableFacts[]): { findings: Finding[]; tables: DoctorTable[] } {
  const findings: Finding[] = [];
  const missingRepl = missingReplicationGrants(grants);
  if (missingRepl.length === 0) findings.push(pass(subject, 'replication rights', `${user} may read the binlog`));
  else findings.push(fail(subject, 'replication rights', `${user} lacks ${list(missingRepl)} on *.*, needed to read the binlog`, [`GRANT ${list(missingRepl)} ON *.* TO ${user};   -- REPLICATION CLIENT is BINLOG MONITOR since MariaDB 10.5; either works`]));

  // MariaDB hides a table from an account without any right on it: a table not found that the
  // account may not read is reported under SELECT right (its GRANT fails if it does not exist).
  const missing = tables.filter((t) => t.columns === null && t.select);
  const hidden = tables.filter((t) => t.columns === null && !t.select);
  const present = tables.filter((t) => t.columns !== null);
  if (missing.length === 0) findings.push(pass(subject, 'tables', `${present.length} found${hidden.length > 0 ? `; ${hidden.length} not visible to ${user} (SELECT right)` : ''}`));
  else findings.push(fail(subject, 'tables', `${list(missing.map((t) => t.source))} ${missing.length === 1 ? 'does' : 'do'} not exist`, [`create ${missing.length === 1 ? 'it' : 'them'}, or remove ${missing.length === 1 ? 'it' : 'them'} from pipelines.${pipeline}.tables`]));

  const unreadable = tables.filter((t) => !t.select);
  if (unreadable.length === 0) findings.push(pass(subject, 'SELECT right', `on ${present.length} table${present.length === 1 ? '' : 's'}`));
  else {
    findings.push(
      fail(subject, 'SELECT right', `${user} may not read ${list(unreadable.map((t) => t.source))} (the snapshot reads them)${hidden.length > 0 ? `; ${list(hidden.map((t) => t.source))} ${hidden.length === 1 ? 'is' : 'are'} not visible to it, so ${hidden.length === 1 ? 'it' : 'they'} may also not exist` : ''}`, unreadable.map((t) => {
        const n = parseTableName(t.source);
        return `GRANT SELECT ON ${quoteIdent(n.schema)}.${quoteIdent(n.table)} TO ${user};`;
      })),
    );
  }

  const out: DoctorTable[] = [];
  tables.forEach((t, index) => {
    if (t.columns === null) return;
    const cols = t.columns;
    const check = `key of ${t.source}`;
    let key: string[] | null = null;
    if (t.configuredKey) {
      const unknown = t.configuredKey.filter((k) => !cols.some((c) => c.name === k));
      if (unknown.length > 0) findings.push(fail(subject, check, `configured key column${unknown.length === 1 ? '' : 's'} ${list(unknown)} do${unknown.length === 1 ? 'es' : ''} not exist`, [`fix pipelines.${pipeline}.tables[${index}].key (columns: ${list(cols.map((c) => c.name))})`]));
      else {
        key = t.configuredKey;
        findings.push(pass(subject, check, `(${list(key)}), configured (the binlog carries whole rows, so any key works)`));
      }
    } else if (t.primaryKey.length > 0) {
      key = t.primaryKey;
      findings.push(pass(subject, check, `primary key (${list(key)})`));
    } else {
      const n = parseTableName(t.source);
      findings.push(fail(subject, check, 'no primary key and no key configured', [`ALTER TABLE ${quoteIdent(n.schema)}.${quoteIdent(n.table)} ADD PRIMARY KEY (<the columns that identify a row>);`, `or in the config, pipelines.${pipeline}.tables[${index}]: key: [<columns>]`]));
    }
    out.push({ source: t.source, key, columns: cols });
  });

  const bad = present.flatMap((t) => t.columns!.filter((c) => !isAvroName(c.name)).map((c) => `${t.source}.${c.name}`));
  if (bad.length === 0) findings.push(pass(subject, 'column names', `valid Avro field names in ${present.length} table${present.length === 1 ? '' : 's'}`));
  else findings.push(fail(subject, 'column names', `${list(bad)}: not valid Avro field names ([A-Za-z_][A-Za-z0-9_]*), so the table's changes cannot be written`, ['rename the column (ALTER TABLE … RENAME COLUMN …)']));
  return { findings, tables: out };
}

/**
 * Backfills (source/backfill.ts) write watermarks and signals into `syncline_signals` in the source's
 * connection database: INSERT and DELETE on it, and the table (or CREATE on the database so the first
 * backfill creates it). With snapshot: initial a table added to the config later is backfilled, so a
 * missing right fails; with snapshot: never backfills are on request only, and the check passes
 * saying what a backfill would need.
 */
export function signalTableFindings(subject: string, user: string, db: string, exists: boolean, grants: Grant[], needed: boolean): Finding[] {
  const write = ['INSERT', 'DELETE'].filter((r) => !granted(grants, r, db, SIGNAL_TABLE));
  const create = !exists && !granted(grants, 'CREATE', db, SIGNAL_TABLE);
  const check = 'backfill signal table';
  if (write.length === 0 && !create) return [pass(subject, check, `${user} may write ${db}.${SIGNAL_TABLE}${exists ? '' : ' (created by the first backfill)'}`)];
  const why = [create ? `${db}.${SIGNAL_TABLE} does not exist and ${user} may not create it` : '', write.length > 0 ? `${user} lacks ${list(write)} on ${db}.${SIGNAL_TABLE}` : ''].filter(Boolean).join('; ');
  const fix = [...(create ? [`${signalTableSql(db)};`] : []), ...(write.length > 0 ? [`GRANT ${list(write)} ON ${quoteIdent(db)}.${SIGNAL_TABLE} TO ${user};`] : [])];
  if (!needed) return [pass(subject, check, `not usable (${why}); backfills (syncline backfill) would need: ${fix.join(' ')}`)];
  return [fail(subject, check, `${why}: backfills, and the backfill of a table added to the config, write their watermarks there`, fix)];
}

// ---------------------------------------------------------------------------------------------
// Target

export interface TargetTableFacts {
  /** Target 'database.table'. */
  table: string;
  /** null: the table does not exist. */
  columns: string[] | null;
  /** Column lists of the primary key and the unique indexes. */
  uniqueKeys: string[][];
}

export function targetFindings(
  subject: string,
  demands: TargetDemand[],
  facts: TargetTableFacts[],
  grants: Grant[],
  user: string,
  opts: { autoCreate: boolean; autoEvolve: boolean; twoWay: boolean; originsDatabase: string },
): Finding[] {
  const out: Finding[] = [];
  for (const d of demands) {
    const f = facts.find((x) => x.table === d.table);
    const n = parseTableName(d.table);
    const check = `table ${d.table}`;
    const types = Object.fromEntries(d.columns.map((c) => [c.name, c.pgType]));
    const create = d.key.length > 0 ? `${createTableSql(d.table, newTableColumns(d.key, types, []), d.key)};` : `create it with the columns of ${d.source} and a primary key on its key`;
    const rights = ['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'DROP'];
    if (!f || f.columns === null) {
      // A table-level grant cannot exist before its table: a table autoCreate creates is written under the database's grants.
      const lacking = (opts.autoCreate ? ['CREATE', ...rights] : []).filter((r) => !granted(grants, r, n.schema));
      const grant = `GRANT ${list(lacking)} ON ${quoteIdent(n.schema)}.* TO ${user};`;
      if (opts.autoCreate && lacking.length === 0) out.push(pass(subject, check, `missing; created at the first change (autoCreate)`));
      else if (opts.autoCreate) out.push(fail(subject, check, `does not exist, and ${user} lacks ${list(lacking)} on database ${n.schema} (autoCreate creates it, then writes it under the database's grants)`, [`${grant}   -- or create it and grant ${list(rights)} on it:`, create]));
      else out.push(fail(subject, check, 'does not exist (autoCreate is off)', [create]));
      continue;
    }
    const problems: string[] = [];
    const fix: string[] = [];
    const lacking = rights.filter((r) => !granted(grants, r, n.schema, n.table));
    if (lacking.length > 0) {
      problems.push(`${user} lacks ${list(lacking)}${lacking.includes('DROP') ? ' (DROP: TRUNCATE needs it)' : ''}`);
      fix.push(`GRANT ${list(lacking)} ON ${quoteIdent(n.schema)}.${quoteIdent(n.table)} TO ${user};`);
    }
    const absent = d.columns.filter((c) => !f.columns!.includes(c.name));
    const mayAlter = granted(grants, 'ALTER', n.schema, n.table);
    if (absent.length > 0 && !(opts.autoEvolve && mayAlter)) {
      problems.push(`has no column ${list(absent.map((c) => c.name))}${opts.autoEvolve ? ` and ${user} may not add ${absent.length === 1 ? 'it' : 'them'} (autoEvolve needs ALTER)` : ' (autoEvolve is off)'}`);
      fix.push(`${addColumnsSql(d.table, absent.map((c) => columnOf(c.name, c.pgType, false)))};`);
    }
    const keySet = new Set(d.key);
    const unique = f.uniqueKeys.some((cols) => cols.length === keySet.size && cols.every((c) => keySet.has(c)));
    if (d.key.length > 0 && !unique && d.key.every((k) => f.columns!.includes(k))) {
      problems.push(`has no primary key or unique index on the key (${list(d.key)}): upserts need one`);
      fix.push(`ALTER TABLE ${quoteIdent(n.schema)}.${quoteIdent(n.table)} ADD ${f.uniqueKeys.length === 0 ? 'PRIMARY KEY' : 'UNIQUE KEY'} (${list(d.key.map(quoteIdent))});`);
    }
    if (problems.length > 0) out.push(fail(subject, check, problems.join('; '), fix));
    else out.push(pass(subject, check, `exists, keyed on (${list(d.key)}), writable${absent.length > 0 ? `; columns ${list(absent.map((c) => c.name))} added at the first change (autoEvolve)` : ''}`));
  }
  if (opts.twoWay) {
    const tag = granted(grants, 'SUPER', '*') || granted(grants, 'BINLOG REPLAY', '*');
    const table = ['CREATE', 'SELECT', 'INSERT'].every((r) => granted(grants, r, opts.originsDatabase, ORIGINS_TABLE));
    if (tag && table) out.push(pass(subject, 'two-way origins', `${user} may tag its sessions (SET SESSION server_id) and keep ${ORIGINS_TABLE}`));
    else {
      out.push(
        fail(subject, 'two-way origins', `${[!tag ? `${user} may not SET SESSION server_id (needs SUPER or BINLOG REPLAY): two-way sync tags its writes so the peer skips them` : '', !table ? `may not create/write ${opts.originsDatabase}.${ORIGINS_TABLE}` : ''].filter(Boolean).join('; ')}`, [
          ...(!tag ? [`GRANT BINLOG REPLAY ON *.* TO ${user};   -- (SUPER before MariaDB 10.5.2)`] : []),
          ...(!table ? [`GRANT CREATE, SELECT, INSERT ON ${quoteIdent(opts.originsDatabase)}.* TO ${user};`] : []),
        ]),
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The hooks (I/O)

async function connect(c: MariadbConnection, timeoutMs: number): Promise<mysql.Connection> {
  const conn = await mysql.createConnection(mariadbOptions(c, { connectTimeout: timeoutMs }));
  conn.on('error', () => undefined);
  return conn;
}

async function currentAccount(conn: mysql.Connection): Promise<string> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>('SELECT CURRENT_USER() AS u');
  return account(String(rows[0]!.u));
}

async function keyColumns(conn: mysql.Connection, database: string, table: string): Promise<{ primary: string[]; unique: string[][] }> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT INDEX_NAME AS idx, COLUMN_NAME AS col FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
    [database, table],
  );
  const byIndex = new Map<string, string[]>();
  for (const r of rows) byIndex.set(String(r.idx), [...(byIndex.get(String(r.idx)) ?? []), String(r.col)]);
  return { primary: byIndex.get('PRIMARY') ?? [], unique: [...byIndex.values()] };
}

export async function mariadbSourceDoctor(items: DoctorItem<MariadbSourceConfig>[], ctx: DoctorContext): Promise<SourceDoctorReport> {
  const findings: Finding[] = [];
  const perPipeline: Finding[] = [];
  const tables = new Map<string, DoctorTable[]>();
  const servers = new Map<string, BinlogSettings | Error>();
  for (const item of items) {
    const c = item.config.connection;
    const server = `${c.host}:${c.port}`;
    let conn: mysql.Connection | undefined;
    try {
      conn = await connect(c, ctx.timeoutMs);
      if (!servers.has(server)) servers.set(server, await readBinlogSettings(conn).catch((err: unknown) => new Error(errorMessage(err))));
      const user = await currentAccount(conn);
      const grants = await showGrants(conn);
      const parsed = parseGrants(grants);
      const facts: SourceTableFacts[] = [];
      for (const t of item.tables) {
        const n = parseTableName(t.source);
        const cols = await readColumns(conn, n.schema, n.table);
        const keys = cols ? await keyColumns(conn, n.schema, n.table) : { primary: [] };
        facts.push({
          source: t.source,
          columns: cols ? cols.map((x) => ({ name: x.name, pgType: x.type.pgType, notNull: x.notNull })) : null,
          primaryKey: keys.primary,
          configuredKey: t.key,
          select: granted(parsed, 'SELECT', n.schema, n.table),
        });
      }
      const r = sourceFindings(item.subject, item.pipeline, user, grants, facts);
      perPipeline.push(...r.findings);
      const [sig] = await conn.query<mysql.RowDataPacket[]>('SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?', [c.database, SIGNAL_TABLE]);
      perPipeline.push(...signalTableFindings(item.subject, user, c.database, sig.length > 0, parsed, item.config.snapshot === 'initial'));
      tables.set(item.pipeline, r.tables);
    } catch (err) {
      perPipeline.push(fail(item.subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as an account that may read information_schema and SHOW GRANTS']));
    } finally {
      await conn?.end().catch(() => undefined);
    }
  }
  for (const [server, v] of servers) {
    if (v instanceof Error) findings.push(fail(`source server ${server}`, 'settings', `cannot read them: ${v.message}`, ['connect as an account that may read the global variables']));
    else findings.push(...serverFindings(`source server ${server}`, v, server));
  }
  return { findings: [...findings, ...perPipeline], tables };
}

export async function mariadbTargetDoctor(items: (DoctorItem<MariadbSinkConfig> & { demands: TargetDemand[] })[], ctx: DoctorContext): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const item of items) {
    let conn: mysql.Connection | undefined;
    try {
      conn = await connect(item.config.connection, ctx.timeoutMs);
      const user = await currentAccount(conn);
      const grants = parseGrants(await showGrants(conn));
      const facts: TargetTableFacts[] = [];
      for (const d of item.demands) {
        const n = parseTableName(d.table);
        const [cols] = await conn.query<mysql.RowDataPacket[]>(`SELECT COLUMN_NAME AS name FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, [n.schema, n.table]);
        const keys = await keyColumns(conn, n.schema, n.table);
        facts.push({ table: d.table, columns: cols.length > 0 ? cols.map((r) => String(r.name)) : null, uniqueKeys: keys.unique });
      }
      findings.push(...targetFindings(item.subject, item.demands, facts, grants, user, { autoCreate: item.config.autoCreate, autoEvolve: item.config.autoEvolve, twoWay: item.twoWay, originsDatabase: item.config.connection.database }));
    } catch (err) {
      findings.push(fail(item.subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as an account that may read information_schema and SHOW GRANTS']));
    } finally {
      await conn?.end().catch(() => undefined);
    }
  }
  return findings;
}
