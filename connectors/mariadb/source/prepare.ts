/**
 * MariaDB/MySQL connections, error classification, server checks (binlog on, ROW, FULL row image,
 * replication privileges) and table descriptions (information_schema) for the MariaDB source.
 */
import mysql from 'mysql2/promise';
import type { ConnectionOptions } from 'mysql2';
import type { MariadbConnection } from './spec.js';
import { mariadbOptions } from '../connection.js';
import type { TableConfig } from '../../../src/core/config/schema.js';
import { errorMessage, fatal, retriable, SynclineError, tlsFailure } from '../../../src/core/errors.js';
import { formatTableName, parseTableName } from '../../../src/core/names.js';
import { columnTypeOf, type MariadbColumnInfo, type MariadbColumnType } from './types.js';

/** mysql2 options: values as text where exactness matters (dates, 64-bit integers, decimals), UTC. */
export function mysqlOptions(c: MariadbConnection): ConnectionOptions {
  return mariadbOptions(c, {
    dateStrings: true,
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
    jsonStrings: true, // MariaDB 10.5+ marks JSON columns in result metadata: mysql2 would parse them
  });
}

export const where = (c: MariadbConnection): string => `${c.host}:${c.port}/${c.database}`;

export function grantHint(c: MariadbConnection): string {
  return `run: GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${c.user}'@'%'; (REPLICATION CLIENT is called BINLOG MONITOR since MariaDB 10.5; either works)`;
}

const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'PROTOCOL_CONNECTION_LOST', 'PROTOCOL_SEQUENCE_TIMEOUT']);

/** The server's error 1236 (ER_MASTER_FATAL_ERROR_READING_BINLOG): the position asked for is not in the binlog (purged). */
export const BINLOG_GONE = 1236;

/**
 * Classify an error of mysql2/zongji: network and lost connections are retriable; refused
 * credentials (1045), missing privileges (1044, 1142, 1227) and a missing database (1049) are fatal.
 */
export function classifyMysqlError(err: unknown, c: MariadbConnection, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const e = err as { code?: string; errno?: number; fatal?: boolean };
  const msg = `${context}: ${errorMessage(err)}`;
  // A certificate that does not verify, or TLS the server cannot do: no retry makes it right (the
  // snapshot connections and the binlog reader share these settings).
  const tls = tlsFailure(err);
  if (tls || e?.code === 'HANDSHAKE_NO_SSL_SUPPORT') {
    return fatal('MARIADB_TLS', `${msg}: ${tls ?? 'the server does not offer TLS'} (MariaDB at ${c.host}:${c.port}; check connection.ssl, sslCaFile: the CA that signed the server certificate, and that host matches its name)`, err);
  }
  if (NETWORK.has(e?.code ?? '') || /connect ETIMEDOUT|Connection lost|closed state|ECONNRESET/.test(errorMessage(err))) return retriable(`MARIADB_${e?.code ?? 'CONNECTION'}`, msg, err);
  switch (e?.errno) {
    case 1045:
      return fatal('MARIADB_ACCESS_DENIED', `${msg} (check connection.user and connection.password)`, err);
    case 1044:
    case 1142:
    case 1143:
    case 1227:
      return fatal('MARIADB_PRIVILEGE', `${msg}; ${grantHint(c)}`, err);
    case 1049:
      return fatal('MARIADB_UNKNOWN_DATABASE', msg, err);
    default:
      return retriable(`MARIADB_${e?.code ?? e?.errno ?? 'ERROR'}`, msg, err);
  }
}

export async function connectMysql(c: MariadbConnection, what: string): Promise<mysql.Connection> {
  try {
    const conn = await mysql.createConnection(mysqlOptions(c));
    conn.on('error', () => undefined); // a lost idle connection fails its next query, classified there
    return conn;
  } catch (err) {
    throw classifyMysqlError(err, c, `${what}: cannot connect to MariaDB ${c.user}@${where(c)}`);
  }
}

/** The server settings binlog CDC needs, as read by `SELECT @@global.…` (doctor and the source's start). */
export interface BinlogSettings {
  logBin: string;
  format: string;
  image: string;
  serverId: number;
}

export async function readBinlogSettings(conn: mysql.Connection): Promise<BinlogSettings> {
  const [rows] = await conn.query<mysql.RowDataPacket[]>(`SELECT @@global.log_bin AS log_bin, @@global.binlog_format AS format, @@global.binlog_row_image AS image, @@global.server_id AS server_id`);
  const v = rows[0]!;
  return { logBin: String(v.log_bin), format: String(v.format), image: String(v.image), serverId: Number(v.server_id) };
}

/** What is wrong with the settings, each with the code the start fails with and what to set (empty: all good). */
export function binlogProblems(v: BinlogSettings, at: string): { code: string; setting: string; message: string }[] {
  const out: { code: string; setting: string; message: string }[] = [];
  if (v.logBin !== '1' && v.logBin.toUpperCase() !== 'ON') {
    out.push({ code: 'MARIADB_BINLOG_OFF', setting: 'log_bin', message: `MariaDB at ${at} runs without a binary log: start it with log_bin (and binlog_format=ROW, binlog_row_image=FULL, a server_id)` });
    return out;
  }
  if (v.format.toUpperCase() !== 'ROW') {
    out.push({ code: 'MARIADB_BINLOG_FORMAT', setting: 'binlog_format', message: `MariaDB at ${at} has binlog_format=${v.format}: the source needs binlog_format=ROW (SET GLOBAL binlog_format='ROW' and in the server's configuration)` });
  }
  if (v.image.toUpperCase() !== 'FULL') {
    out.push({ code: 'MARIADB_BINLOG_ROW_IMAGE', setting: 'binlog_row_image', message: `MariaDB at ${at} has binlog_row_image=${v.image}: the source needs binlog_row_image=FULL (whole rows before and after each change)` });
  }
  return out;
}

/** The global replication privileges the SHOW GRANTS lines lack (REPLICATION SLAVE, REPLICATION CLIENT). */
export function missingReplicationGrants(grantLines: string[]): string[] {
  const global = grantLines.map((l) => l.toUpperCase()).filter((l) => / ON \*\.\* TO /.test(l)).join('\n');
  const all = /GRANT ALL PRIVILEGES ON \*\.\*/.test(global);
  const missing: string[] = [];
  if (!all && !/REPLICATION SLAVE/.test(global)) missing.push('REPLICATION SLAVE');
  if (!all && !/REPLICATION CLIENT|BINLOG MONITOR|SUPER/.test(global)) missing.push('REPLICATION CLIENT');
  return missing;
}

export async function showGrants(conn: mysql.Connection): Promise<string[]> {
  const [grants] = await conn.query<mysql.RowDataPacket[]>('SHOW GRANTS');
  return grants.map((g) => String(Object.values(g)[0]));
}

/**
 * The binlog must be on, row-based with full row images, and the user must be allowed to read it:
 * each is fatal, naming the setting or the GRANT to run.
 */
export async function checkServer(conn: mysql.Connection, c: MariadbConnection): Promise<void> {
  const problem = binlogProblems(await readBinlogSettings(conn), where(c))[0];
  if (problem) throw fatal(problem.code, problem.message);
  const missing = missingReplicationGrants(await showGrants(conn));
  if (missing.length > 0) {
    throw fatal('MARIADB_PRIVILEGE', `MariaDB user ${c.user} at ${where(c)} lacks ${missing.join(' and ')} on *.*, needed to read the binlog; ${grantHint(c)}`);
  }
}

export interface MariadbTable {
  schema: string; // the database
  table: string;
  key: string[];
  columns: { name: string; type: MariadbColumnType }[];
}

/**
 * Column names a MariaDB source cannot read: mysql2 refuses a result with any of them (its row parser
 * throws, and a streamed snapshot then hangs), and the binlog reader (@vlasky/zongji) builds each row
 * by assignment, which for `__proto__` sets the row's prototype (its values lost without a word).
 * Refused at start instead, naming the table. Other sources and the targets carry them
 * (test/proto-columns.int.test.ts).
 */
const UNREADABLE_COLUMNS = new Set(['__proto__', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__']);

/** Read one table's columns from information_schema (null: the table does not exist; refused: see UNREADABLE_COLUMNS). */
export async function readColumns(conn: mysql.Connection, schema: string, table: string): Promise<{ name: string; type: MariadbColumnType; notNull: boolean }[] | null> {
  const [cols] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name, LOWER(DATA_TYPE) AS dataType, COLUMN_TYPE AS columnType, NUMERIC_PRECISION AS \`precision\`, NUMERIC_SCALE AS scale, CHARACTER_MAXIMUM_LENGTH AS charLength, IS_NULLABLE AS nullable
       FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
    [schema, table],
  );
  if (cols.length === 0) return null;
  // MariaDB's JSON is LONGTEXT with CHECK (json_valid(`col`)): the check tells them apart.
  const [checks] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT CHECK_CLAUSE AS clause FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?`,
    [schema, table],
  ).catch(() => [[] as mysql.RowDataPacket[]] as const);
  const json = new Set<string>();
  for (const ch of checks) {
    const m = /^json_valid\(`((?:[^`]|``)+)`\)$/i.exec(String(ch.clause).trim());
    if (m) json.add(m[1]!.replace(/``/g, '`'));
  }
  const name = formatTableName({ schema, table });
  const unreadable = cols.map((c) => String(c.name)).find((n) => UNREADABLE_COLUMNS.has(n));
  if (unreadable !== undefined) {
    throw fatal('MARIADB_COLUMN_NAME', `table ${name}: a column named ${unreadable} cannot be read from MariaDB (${unreadable === '__proto__' ? 'the binlog reader would lose its values, and ' : ''}mysql2 refuses a result holding it); rename the column, or leave the table out of the pipeline`);
  }
  return cols.map((c) => {
    const info: MariadbColumnInfo = {
      name: String(c.name),
      dataType: String(c.dataType),
      columnType: String(c.columnType),
      precision: c.precision === null ? null : Number(c.precision),
      scale: c.scale === null ? null : Number(c.scale),
      charLength: c.charLength === null ? null : Number(c.charLength),
      json: json.has(String(c.name)) || String(c.dataType) === 'json',
    };
    return { name: info.name, type: columnTypeOf(name, info), notNull: String(c.nullable) === 'NO' };
  });
}

/** A table's primary key columns in key order (empty: none). */
export async function readPrimaryKey(conn: mysql.Connection, schema: string, table: string): Promise<string[]> {
  const [pk] = await conn.query<mysql.RowDataPacket[]>(
    `SELECT COLUMN_NAME AS name FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY' ORDER BY SEQ_IN_INDEX`,
    [schema, table],
  );
  return pk.map((r) => String(r.name));
}

/**
 * Check every configured table: it exists (SOURCE_TABLE_MISSING otherwise), its key is known (the
 * primary key, or the configured key, whose columns must exist). Fatal errors name the table.
 */
export async function inspectTables(conn: mysql.Connection, tables: TableConfig[], pipeline: string): Promise<MariadbTable[]> {
  const out: MariadbTable[] = [];
  for (const t of tables) {
    const { schema, table } = parseTableName(t.source);
    const columns = await readColumns(conn, schema, table);
    if (!columns) throw fatal('SOURCE_TABLE_MISSING', `pipeline ${pipeline}: source table ${t.source} does not exist (MariaDB: database ${schema}, table ${table})`);
    const pk = (await readPrimaryKey(conn, schema, table)).map((name) => ({ name }));
    let key = pk.map((r) => String(r.name));
    if (t.key) {
      const unknown = t.key.filter((k) => !columns.some((c) => c.name === k));
      if (unknown.length > 0) throw fatal('SOURCE_KEY_UNKNOWN', `pipeline ${pipeline}: key column(s) ${unknown.join(', ')} of ${t.source} do not exist`);
      key = t.key;
    }
    if (key.length === 0) throw fatal('SOURCE_KEY_MISSING', `pipeline ${pipeline}: source table ${t.source} has no primary key: add one, or configure its key columns (tables[].key)`);
    out.push({ schema, table, key, columns });
  }
  return out;
}
