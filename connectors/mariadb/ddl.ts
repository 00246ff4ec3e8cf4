/**
 * DDL and names of the MariaDB sink, as pure functions. A canonical table name `schema.table`
 * (src/core/names.ts) is MariaDB's `database`.`table`: MariaDB's databases are what PostgreSQL's
 * schemas are (one namespace of tables per connection), so the schema part names the database.
 *
 * Created tables: the columns in the source's order with the types of ./types.ts (each column's
 * source type in its comment), the key columns NOT NULL as PRIMARY KEY, InnoDB, utf8mb4 with the
 * binary no-pad collation (`utf8mb4_nopad_bin`): text compares byte for byte like PostgreSQL's, so
 * keys 'a' and 'A' or 'a' and 'a ' are two rows, not one. No defaults, checks or other indexes.
 */
import { parseTableName } from '../../src/core/names.js';
import { commentOf, mariaTypeOf, quoteString } from './types.js';

export const quoteIdent = (s: string): string => '`' + s.replace(/`/g, '``') + '`';

/** 'schema.table' → { database, table }. */
export function splitTable(table: string): { database: string; table: string } {
  const n = parseTableName(table);
  return { database: n.schema, table: n.table };
}

/** 'shop.users' → `shop`.`users`. */
export function quoteTable(table: string): string {
  const n = splitTable(table);
  return quoteIdent(n.database) + '.' + quoteIdent(n.table);
}

export interface NewColumn {
  name: string;
  /** MariaDB type. */
  type: string;
  /** Source type, kept in the column comment (undefined: the change carried none). */
  pgType?: string;
}

/**
 * The columns of a new table: every column the changes' schema names (in its order), then columns a
 * record writes that the schema does not name, then key columns named by neither.
 */
export function newTableColumns(key: string[], sourceTypes: Record<string, string>, written: Iterable<string>): NewColumn[] {
  const keys = new Set(key);
  const out: NewColumn[] = [];
  const seen = new Set<string>();
  const add = (name: string) => {
    if (seen.has(name)) return;
    seen.add(name);
    out.push(columnOf(name, sourceTypes[name], keys.has(name)));
  };
  for (const c of Object.keys(sourceTypes)) add(c);
  for (const c of written) add(c);
  for (const c of key) add(c);
  return out;
}

export function columnOf(name: string, pgType: string | undefined, key: boolean): NewColumn {
  return { name, type: mariaTypeOf(pgType, key), ...(pgType !== undefined ? { pgType } : {}) };
}

function columnSql(c: NewColumn, notNull: boolean): string {
  return `${quoteIdent(c.name)} ${c.type}${notNull ? ' NOT NULL' : ' NULL'}${c.pgType !== undefined ? ' COMMENT ' + quoteString(commentOf(c.pgType)) : ''}`;
}

export const TABLE_OPTIONS = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin';

/** CREATE TABLE IF NOT EXISTS `db`.`t` (…, PRIMARY KEY (…)) ENGINE=InnoDB …. */
export function createTableSql(table: string, columns: NewColumn[], key: string[]): string {
  const keys = new Set(key);
  const cols = columns.map((c) => columnSql(c, keys.has(c.name)));
  return `CREATE TABLE IF NOT EXISTS ${quoteTable(table)} (${[...cols, `PRIMARY KEY (${key.map(quoteIdent).join(', ')})`].join(', ')}) ${TABLE_OPTIONS}`;
}

/** ALTER TABLE `db`.`t` ADD COLUMN IF NOT EXISTS … (new columns are nullable: existing rows have no value). */
export function addColumnsSql(table: string, columns: NewColumn[]): string {
  return `ALTER TABLE ${quoteTable(table)} ${columns.map((c) => `ADD COLUMN IF NOT EXISTS ${columnSql(c, false)}`).join(', ')}`;
}

export function createDatabaseSql(database: string): string {
  return `CREATE DATABASE IF NOT EXISTS ${quoteIdent(database)} CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin`;
}

/** GET_LOCK names are at most 64 characters: a table's lock is named by a hash of its name. */
export function lockName(table: string, hash: (s: string) => string): string {
  return 'syncline.ddl.' + hash(table).slice(0, 40);
}
