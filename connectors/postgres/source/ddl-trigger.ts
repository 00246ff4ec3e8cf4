/**
 * DDL seen when it happens: an event trigger (one per database, shared by every pipeline of it) that
 * emits a transactional logical message `syncline.ddl` at the end of each ALTER TABLE, with the
 * table's OID, name, columns (type OID and modifier), primary key and statement as JSON. The message
 * reaches the slot in commit order with the data (pgstream does the same), so the source reports the
 * change at the exact position it took effect, even when no row of the table changes after it, and a
 * rename (same OID, new name) is recognised. Every ALTER TABLE of the database is emitted; each
 * pipeline's stream keeps those of its tables (by OID).
 *
 * Creating an event trigger needs a superuser. prepare() installs it when it may (idempotent, under
 * an advisory lock) and otherwise logs a warning: the source then sees a change through pgoutput's
 * Relation message, sent before the table's next row change (no rename seen; `syncline doctor`
 * reports it). The trigger never breaks a user's DDL: every error inside it becomes a WARNING.
 * `syncline pipeline drop` removes it with the last pipeline of the database (../resources.ts).
 */
import type pg from 'pg';

export const DDL_PREFIX = 'syncline.ddl';
export const DDL_TRIGGER = 'syncline_ddl';
export const DDL_FUNCTION = 'public.syncline_ddl_message';

/** The content of a `syncline.ddl` message. */
export interface PgDdlMessage {
  oid: number;
  schema: string;
  table: string;
  tag: string;
  query?: string;
  columns: { name: string; typeOid: number; typeMod: number }[];
  /** Primary key columns (empty: none). */
  key: string[];
}

export const DDL_TRIGGER_SQL = `
create or replace function ${DDL_FUNCTION}() returns event_trigger language plpgsql set search_path = pg_catalog as $fn$
declare
  r record;
  cols jsonb;
  pk jsonb;
begin
  for r in select objid, command_tag from pg_event_trigger_ddl_commands() where object_type = 'table' and command_tag = 'ALTER TABLE' loop
    begin
      select coalesce(jsonb_agg(jsonb_build_object('name', a.attname, 'typeOid', a.atttypid::int, 'typeMod', a.atttypmod) order by a.attnum), '[]'::jsonb) into cols
        from pg_attribute a where a.attrelid = r.objid and a.attnum > 0 and not a.attisdropped;
      select coalesce(jsonb_agg(a.attname order by k.ord), '[]'::jsonb) into pk
        from pg_index i cross join lateral unnest(i.indkey) with ordinality k(attnum, ord)
        join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
        where i.indrelid = r.objid and i.indisprimary;
      perform pg_logical_emit_message(true, '${DDL_PREFIX}', jsonb_build_object(
          'oid', r.objid::bigint, 'schema', n.nspname, 'table', c.relname, 'tag', r.command_tag,
          'query', left(current_query(), 2000), 'columns', cols, 'key', pk)::text)
        from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.oid = r.objid;
    exception when others then
      raise warning 'syncline DDL event trigger (ignored): %', sqlerrm;
    end;
  end loop;
exception when others then
  raise warning 'syncline DDL event trigger (ignored): %', sqlerrm;
end
$fn$`;

/**
 * Install the trigger (idempotent). 'installed' or 'present'; 'denied' (not a superuser) with the
 * server's message; other errors are thrown.
 */
export async function ensureDdlTrigger(client: pg.Client): Promise<{ state: 'installed' | 'present' } | { state: 'denied'; message: string }> {
  const present = await client.query(`select 1 from pg_event_trigger where evtname = $1 and evtenabled <> 'D'`, [DDL_TRIGGER]);
  if (present.rowCount! > 0) return { state: 'present' };
  try {
    await client.query('begin');
    await client.query(`select pg_advisory_xact_lock(hashtext('syncline.ddl_trigger'))`);
    const again = await client.query(`select 1 from pg_event_trigger where evtname = $1`, [DDL_TRIGGER]);
    if (again.rowCount === 0) {
      await client.query(DDL_TRIGGER_SQL);
      await client.query(`create event trigger ${DDL_TRIGGER} on ddl_command_end when tag in ('ALTER TABLE') execute function ${DDL_FUNCTION}()`);
    }
    await client.query('commit');
    return { state: again.rowCount === 0 ? 'installed' : 'present' };
  } catch (err) {
    await client.query('rollback').catch(() => undefined);
    const code = (err as { code?: string }).code;
    if (code === '42501') return { state: 'denied', message: (err as Error).message };
    throw err;
  }
}

/** Drop the trigger and its function (`syncline pipeline drop`, last pipeline of the database). */
export async function dropDdlTrigger(client: pg.Client): Promise<void> {
  await client.query(`drop event trigger if exists ${DDL_TRIGGER}`);
  await client.query(`drop function if exists ${DDL_FUNCTION}()`);
}

/** Parse a `syncline.ddl` message's content (null: not one). */
export function parseDdlMessage(content: Uint8Array): PgDdlMessage | null {
  try {
    const b = JSON.parse(Buffer.from(content).toString('utf8')) as PgDdlMessage;
    if (typeof b.oid !== 'number' || !Array.isArray(b.columns)) return null;
    return b;
  } catch {
    return null;
  }
}
