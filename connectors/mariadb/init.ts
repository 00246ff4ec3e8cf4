/**
 * `syncline init` for MariaDB (the registrations' `init` hooks, src/core/init-plan.ts): a
 * mariadb:// (or mysql://) URL, each base table of the URL's database proposed as it is (its primary
 * key, or a unique index on NOT NULL columns: the binlog carries whole rows, so any such key works)
 * or left out with the fix (column names Avro cannot carry renamed; a column type the source cannot
 * carry; no key: the columns that identify a row), and the config blocks of a MariaDB source and target.
 */
import mysql from 'mysql2/promise';
import { fatal } from '../../src/core/errors.js';
import { isAvroName } from '../../src/core/avro.js';
import { avroRenames, configTableName, connectionLines, keyCandidate, parseInitUrl, show, yamlValue, type InitEndpoint, type InitSource, type InitTarget, type TableName, type TablePlan } from '../../src/core/init-plan.js';
import { errorMessage } from '../../src/core/errors.js';
import { mariadbOptions, type MariadbConnection } from './connection.js';
import { quoteIdent } from './ddl.js';
import { columnTypeOf } from './source/types.js';

export interface MariadbUrl {
  host: string;
  port: number;
  database: string;
  user: string;
  /** Only to connect; never written. */
  password?: string;
  ssl: boolean;
}

/** `mariadb://user:password@host:port/database[?ssl=true]` (also mysql://): the database is required. */
export function parseMariadbUrl(text: string, what: string): MariadbUrl {
  const { url: u, host } = parseInitUrl(text, what, ['mariadb:', 'mysql:'], 'mariadb://user:password@host:port/database');
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!database) throw fatal('INIT_ARGUMENT', `${what}: the URL names no database (mariadb://user@host:port/<database>)`);
  for (const k of u.searchParams.keys()) if (k !== 'ssl') throw fatal('INIT_ARGUMENT', `${what}: URL parameter '${k}' is not supported (only ssl=true)`);
  const ssl = u.searchParams.get('ssl');
  if (ssl !== null && !['true', 'false'].includes(ssl)) throw fatal('INIT_ARGUMENT', `${what}: ssl must be true or false, got '${ssl}'`);
  return { host, port: u.port ? Number(u.port) : 3306, database, user: decodeURIComponent(u.username) || 'root', password: u.password ? decodeURIComponent(u.password) : undefined, ssl: ssl === 'true' };
}

const showUrl = (u: MariadbUrl) => `mariadb://${encodeURIComponent(u.user)}@${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}/${encodeURIComponent(u.database)}`;

/** What init reads of one table (information_schema). */
export interface MariadbTableFacts {
  database: string;
  table: string;
  columns: { name: string; dataType: string; columnType: string; notNull: boolean; precision: number | null; scale: number | null; charLength: number | null }[];
  primaryKey: string[];
  /** Unique indexes other than the primary key whose columns are all NOT NULL. */
  uniqueKeys: { index: string; columns: string[] }[];
}

export function planMariadbTable(f: MariadbTableFacts): TablePlan {
  const shown = `${show(f.database)}.${show(f.table)}`;
  const sql = `${quoteIdent(f.database)}.${quoteIdent(f.table)}`;
  const candidate = keyCandidate(f.uniqueKeys);
  const key = f.primaryKey.length > 0 ? f.primaryKey : candidate ? candidate.columns : f.columns.map((c) => c.name);
  const keyFrom = f.primaryKey.length > 0 ? 'primary key' : candidate ? `unique index ${show(candidate.index)}` : 'every column: keep the ones that identify a row';
  const columns = { table: shown, columns: f.columns.map((c) => `${show(c.name)} ${c.columnType}${c.notNull ? ' NOT NULL' : ''}`) };
  const base = { at: { schema: f.database, table: f.table }, name: configTableName(f.database, f.table), keyFrom, columns };
  if (base.name === null) return { ...base, key, included: false, addable: false, reason: `the config's table pattern cannot name ${shown} yet (rename it)`, fix: [] };
  const unsupported: string[] = [];
  for (const c of f.columns) {
    try {
      columnTypeOf(shown, { name: c.name, dataType: c.dataType, columnType: c.columnType, precision: c.precision, scale: c.scale, charLength: c.charLength, json: false });
    } catch {
      unsupported.push(`${show(c.name)} ${c.columnType}`);
    }
  }
  if (unsupported.length > 0) return { ...base, key, included: false, addable: false, reason: `${shown} has column${unsupported.length === 1 ? '' : 's'} of a type the MariaDB source cannot carry: ${unsupported.join(', ')}`, fix: [] };
  const reasons: string[] = [];
  const fix: string[] = [];
  const renames = avroRenames(f.columns.map((c) => c.name), isAvroName);
  for (const [col, to] of renames) fix.push(`ALTER TABLE ${sql} RENAME COLUMN ${quoteIdent(col)} TO ${quoteIdent(to)};`);
  if (renames.size > 0) reasons.push(`has column${renames.size === 1 ? '' : 's'} ${[...renames.keys()].map(show).join(', ')} that ${renames.size === 1 ? 'is not a valid Avro field name' : 'are not valid Avro field names'} ([A-Za-z_][A-Za-z0-9_]*)`);
  if (f.primaryKey.length === 0 && !candidate) reasons.push('has no primary key and no unique index on NOT NULL columns');
  const renamedKey = key.map((k) => renames.get(k) ?? k);
  if (reasons.length === 0) return { ...base, key: renamedKey, included: true, addable: false, fix: [] };
  return {
    ...base,
    key: renamedKey,
    included: false,
    addable: true,
    reason: `${shown} ${reasons.join('; and ')}`,
    fix,
    addNote: 'The binlog carries whole rows, so any columns that identify a row can be the key: add it here with them:',
  };
}

async function readTables(c: MariadbConnection, asked: TableName[] | 'all'): Promise<MariadbTableFacts[]> {
  const conn = await mysql.createConnection(mariadbOptions(c, { connectTimeout: 30_000 }));
  conn.on('error', () => undefined);
  try {
    const names: TableName[] =
      asked === 'all'
        ? (await conn.query<mysql.RowDataPacket[]>(`SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, [c.database]))[0].map((r) => ({ schema: String(r.s), table: String(r.t) }))
        : asked;
    const out: MariadbTableFacts[] = [];
    for (const n of names) {
      const [cols] = await conn.query<mysql.RowDataPacket[]>(
        `SELECT COLUMN_NAME AS name, LOWER(DATA_TYPE) AS dataType, COLUMN_TYPE AS columnType, IS_NULLABLE AS nullable, NUMERIC_PRECISION AS \`precision\`, NUMERIC_SCALE AS scale, CHARACTER_MAXIMUM_LENGTH AS charLength
           FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`,
        [n.schema, n.table],
      );
      if (cols.length === 0) continue;
      const columns = cols.map((r) => ({ name: String(r.name), dataType: String(r.dataType), columnType: String(r.columnType), notNull: String(r.nullable) === 'NO', precision: r.precision === null ? null : Number(r.precision), scale: r.scale === null ? null : Number(r.scale), charLength: r.charLength === null ? null : Number(r.charLength) }));
      const [idx] = await conn.query<mysql.RowDataPacket[]>(
        `SELECT INDEX_NAME AS idx, COLUMN_NAME AS col FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 ORDER BY INDEX_NAME, SEQ_IN_INDEX`,
        [n.schema, n.table],
      );
      const byIndex = new Map<string, string[]>();
      for (const r of idx) byIndex.set(String(r.idx), [...(byIndex.get(String(r.idx)) ?? []), String(r.col)]);
      const notNull = new Set(columns.filter((x) => x.notNull).map((x) => x.name));
      out.push({
        database: n.schema,
        table: n.table,
        columns,
        primaryKey: byIndex.get('PRIMARY') ?? [],
        uniqueKeys: [...byIndex].filter(([i, cs]) => i !== 'PRIMARY' && cs.every((x) => notNull.has(x))).map(([index, cs]) => ({ index, columns: cs })),
      });
    }
    return out.sort((a, b) => a.database.localeCompare(b.database) || a.table.localeCompare(b.table));
  } catch (err) {
    throw new Error(`MariaDB ${c.user}@${c.host}:${c.port}/${c.database}: ${errorMessage(err)}`);
  } finally {
    await conn.end().catch(() => undefined);
  }
}

type MariadbEndpoint = InitEndpoint & { url: MariadbUrl };

function endpoint(u: MariadbUrl, role: 'source' | 'target'): MariadbEndpoint {
  return {
    url: u,
    type: 'mariadb',
    shown: showUrl(u),
    at: { host: u.host, port: u.port, database: u.database },
    password: u.password,
    targetTable: (t) => ({ schema: u.database, table: t.table }),
    lines: (passwordVar) => [
      '      type: mariadb',
      ...connectionLines(u, passwordVar),
      ...(role === 'source'
        ? [
            '      # Reads the binlog (log_bin, binlog_format=ROW, binlog_row_image=FULL) as a replica: the account needs',
            '      # REPLICATION SLAVE and REPLICATION CLIENT (BINLOG MONITOR) on *.* and SELECT on the tables;',
            '      # `syncline doctor` checks them. The replica serverId is derived from the pipeline name (serverId: to set one).',
            '      snapshot: initial      # copy the existing rows once (a consistent snapshot, no locks), then stream changes',
          ]
        : ['      autoCreate: true       # create missing tables (and the database) from the source\'s columns']),
    ],
  };
}

export const mariadbInitSource: InitSource = {
  schemes: ['mariadb:', 'mysql:'],
  parse: (url, what) => endpoint(parseMariadbUrl(url, what), 'source'),
  defaultSchema: (e) => e.at.database,
  async read(e, asked) {
    const u = (e as MariadbEndpoint).url;
    const c: MariadbConnection = { host: u.host, port: u.port, database: u.database, user: u.user, password: u.password, ssl: u.ssl, sslVerify: true };
    return (await readTables(c, asked)).map(planMariadbTable);
  },
  defaultTarget: (e) => {
    const u = (e as MariadbEndpoint).url;
    return endpoint({ ...u, database: `${u.database}_target` }, 'target');
  },
};

export const mariadbInitTarget: InitTarget = {
  schemes: ['mariadb:', 'mysql:'],
  parse: (url, what) => endpoint(parseMariadbUrl(url, what), 'target'),
};
