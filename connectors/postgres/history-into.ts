/**
 * `syncline history asof --into SCHEMA.TABLE` for a PostgreSQL target: the rebuilt rows written to a
 * new table of the target's database shaped like the target table (CREATE TABLE … (LIKE …)), in one
 * transaction. Values go in through jsonb_populate_recordset, each from its text form (the history
 * keeps canonical values: timestamps, numerics and bigints as text, bytea as \x hex, arrays as JSON arrays).
 * An existing table of that name is refused, never overwritten.
 */
import pg from 'pg';
import { fatal } from '../../src/core/errors.js';
import type { JsonRow } from '../../src/history/history.js';
import { pgClientConfig } from './connection.js';
import { quoteTable } from './ddl.js';
import { classifyPgError } from './errors.js';
import type { PgSinkConfig } from './spec.js';

export async function writeAsofInto(target: PgSinkConfig, table: string, into: string, rows: JsonRow[]): Promise<void> {
  const c = new pg.Client(pgClientConfig(target.connection));
  await c.connect().catch((err: unknown) => {
    throw classifyPgError(err, `history asof --into: connect to the target ${target.connection.host}:${target.connection.port}/${target.connection.database}`);
  });
  try {
    const exists = await c.query('select to_regclass($1) is not null as e', [quoteTable(into)]);
    if (exists.rows[0].e) throw fatal('HISTORY_INTO_EXISTS', `history asof --into ${into}: that table already exists in ${target.connection.database}; name a new one (it is never overwritten)`);
    await c.query('begin');
    await c.query(`create table ${quoteTable(into)} (like ${quoteTable(table)} including defaults)`);
    for (let i = 0; i < rows.length; i += 5000) {
      await c.query(`insert into ${quoteTable(into)} select * from jsonb_populate_recordset(null::${quoteTable(into)}, $1::jsonb)`, [JSON.stringify(rows.slice(i, i + 5000))]);
    }
    await c.query('commit');
  } catch (err) {
    await c.query('rollback').catch(() => undefined);
    throw (err as { kind?: string }).kind ? err : classifyPgError(err, `history asof --into ${into}`);
  } finally {
    await c.end().catch(() => undefined);
  }
}
