/**
 * What the PostgreSQL connectors create for a pipeline, for `syncline pipeline drop`
 * (src/core/resources.ts): on the source, the replication slot and the publication; on the target,
 * the replication origins two-way writes are tagged with (`<origin>:<n>`, `<origin>/republish:<n>`,
 * `<origin>/republish-update:<n>`, see sink.ts). Nothing else: the target's tables and rows are the
 * user's and are never touched.
 *
 * Each client is opened on the first list() and closed by close(). Decisions (what is this
 * pipeline's alone) are the pure functions below; the queries only read the catalogs, drop() runs
 * `pg_drop_replication_slot`, `DROP PUBLICATION IF EXISTS` and `pg_replication_origin_drop`, skipping
 * what is already gone.
 */
import pg from 'pg';
import { connectSource, quoteIdent } from './source/prepare.js';
import { DDL_TRIGGER, dropDdlTrigger } from './source/ddl-trigger.js';
import { pgClientConfig, rawTypes } from './connection.js';
import { fatal, SynclineError } from '../../src/core/errors.js';
import { classifyPgError } from './errors.js';
import type { ConnectorResources, OtherPipeline, PipelineResource, ResourceContext } from '../../src/core/resources.js';
import type { PgConnection, PgSinkConfig, PgSourceConfig } from './spec.js';

const SLOT = 'replication slot';
const PUBLICATION = 'publication';
const ORIGIN = 'replication origin';

const server = (c: PgConnection) => `${c.host}:${c.port}`;
const whereOf = (c: PgConnection) => `postgres ${server(c)}/${c.database}`;

/** The other pipelines whose side (source or target) is a PostgreSQL connection. */
function pgOthers(others: OtherPipeline[]): { name: string; connection: PgConnection; slot?: string; publication?: string }[] {
  return others.flatMap((o) => {
    const c = o.config as { type?: string; connection?: PgConnection; slot?: string; publication?: string };
    return c?.type === 'postgres' && c.connection ? [{ name: o.name, connection: c.connection, slot: c.slot, publication: c.publication }] : [];
  });
}

export interface SlotRow {
  database: string | null;
  plugin: string | null;
  active: boolean;
  activePid: string | null;
  retained: string | null;
}

/** Whether the slot of `cfg` is this pipeline's to drop, kept (and why) or in use. */
export function slotVerdict(cfg: PgSourceConfig, row: SlotRow, others: OtherPipeline[]): Pick<PipelineResource, 'keep' | 'inUse'> {
  const sharing = pgOthers(others).filter((o) => o.slot === cfg.slot && server(o.connection) === server(cfg.connection)).map((o) => o.name);
  if (sharing.length > 0) return { keep: `also the slot of pipeline ${sharing.join(', ')}` };
  if (row.database !== cfg.connection.database) return { keep: `a slot of database ${row.database ?? '(physical)'}, not of ${cfg.connection.database}: not this pipeline's` };
  if (row.active) return { inUse: `active (walsender pid ${row.activePid ?? '?'})` };
  return {};
}

/** Whether the publication of `cfg` is this pipeline's alone: not shared, not FOR ALL TABLES, no table it does not capture. */
export function publicationVerdict(
  cfg: PgSourceConfig,
  pub: { allTables: boolean; tables: string[] },
  ctx: Pick<ResourceContext, 'pipeline' | 'tables' | 'others'>,
): Pick<PipelineResource, 'keep'> {
  const sharing = pgOthers(ctx.others)
    .filter((o) => o.publication === cfg.publication && server(o.connection) === server(cfg.connection) && o.connection.database === cfg.connection.database)
    .map((o) => o.name);
  if (sharing.length > 0) return { keep: `also the publication of pipeline ${sharing.join(', ')}` };
  if (pub.allTables) return { keep: 'FOR ALL TABLES: not one syncline creates' };
  const mine = new Set(ctx.tables);
  const foreign = pub.tables.filter((t) => !mine.has(t));
  if (foreign.length > 0) return { keep: `also publishes ${foreign.join(', ')}, which pipeline ${ctx.pipeline} does not capture` };
  return {};
}

const DDL_TRIGGER_KIND = 'event trigger';

/**
 * The DDL event trigger (source/ddl-trigger.ts) is one per database: dropped with the last pipeline
 * capturing from it (no other pipeline of the config on the same database, no other logical slot in it).
 */
export function ddlTriggerVerdict(cfg: PgSourceConfig, otherSlots: string[], others: OtherPipeline[]): Pick<PipelineResource, 'keep'> {
  const sharing = pgOthers(others).filter((o) => server(o.connection) === server(cfg.connection) && o.connection.database === cfg.connection.database).map((o) => o.name);
  if (sharing.length > 0) return { keep: `pipeline ${sharing.join(', ')} also captures database ${cfg.connection.database}` };
  if (otherSlots.length > 0) return { keep: `database ${cfg.connection.database} has other logical slots (${otherSlots.join(', ')}) whose pipelines may use it` };
  return {};
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The replication origins a pipeline's sink creates: `<origin>:<n>`, `<origin>/republish:<n>`, `<origin>/republish-update:<n>`. */
export function isPipelineOrigin(origin: string, name: string): boolean {
  return new RegExp(`^${escapeRe(origin)}(?:/republish|/republish-update)?:\\d+$`).test(name);
}

export function pgSourceResources(cfg: PgSourceConfig, ctx: ResourceContext): ConnectorResources {
  let client: pg.Client | undefined;
  const where = whereOf(cfg.connection);
  const open = async () => (client ??= await connectSource(cfg.connection, `pipeline ${ctx.pipeline}: source`));
  return {
    async list() {
      let c: pg.Client;
      try {
        c = await open();
      } catch (err) {
        // A database that is gone holds no slot or publication (PostgreSQL refuses to drop a database a logical slot uses).
        if ((err as SynclineError).code === 'PG_3D000') return [];
        throw err;
      }
      const out: PipelineResource[] = [];
      const slot = await c.query<{ database: string | null; plugin: string | null; active: string; active_pid: string | null; retained: string | null }>(
        `select database, plugin, active::text, active_pid::text,
                pg_size_pretty(pg_wal_lsn_diff(case when pg_is_in_recovery() then pg_last_wal_receive_lsn() else pg_current_wal_lsn() end, restart_lsn)) as retained
           from pg_replication_slots where slot_name = $1`,
        [cfg.slot],
      ).catch((err: unknown) => {
        throw classifyPgError(err, `pipeline ${ctx.pipeline}: reading pg_replication_slots on ${where}`);
      });
      const s = slot.rows[0];
      if (s) {
        const row: SlotRow = { database: s.database, plugin: s.plugin, active: s.active === 'true', activePid: s.active_pid, retained: s.retained };
        out.push({ kind: SLOT, name: cfg.slot, where, detail: row.retained ? `retains ${row.retained} of WAL` : undefined, ...slotVerdict(cfg, row, ctx.others) });
      }
      const pub = await c.query<{ puballtables: string; tables: string }>(
        `select p.puballtables::text,
                coalesce((select json_agg(t.schemaname || '.' || t.tablename order by t.schemaname, t.tablename)
                            from pg_publication_tables t where t.pubname = p.pubname), '[]')::text as tables
           from pg_publication p where p.pubname = $1`,
        [cfg.publication],
      ).catch((err: unknown) => {
        throw classifyPgError(err, `pipeline ${ctx.pipeline}: reading pg_publication on ${where}`);
      });
      const p = pub.rows[0];
      if (p) {
        const tables = JSON.parse(p.tables) as string[];
        out.push({ kind: PUBLICATION, name: cfg.publication, where, detail: `${tables.length} table${tables.length === 1 ? '' : 's'}`, ...publicationVerdict(cfg, { allTables: p.puballtables === 'true', tables }, ctx) });
      }
      const trig = await c.query<{ slots: string }>(
        `select coalesce((select json_agg(slot_name order by slot_name) from pg_replication_slots
                           where database = current_database() and slot_type = 'logical' and slot_name <> $1), '[]')::text as slots
           from pg_event_trigger where evtname = $2`,
        [cfg.slot, DDL_TRIGGER],
      ).catch((err: unknown) => {
        throw classifyPgError(err, `pipeline ${ctx.pipeline}: reading pg_event_trigger on ${where}`);
      });
      const t = trig.rows[0];
      if (t) out.push({ kind: DDL_TRIGGER_KIND, name: DDL_TRIGGER, where, ...ddlTriggerVerdict(cfg, JSON.parse(t.slots) as string[], ctx.others) });
      return out;
    },
    async drop(resources) {
      if (resources.length === 0) return;
      const c = await open();
      for (const r of resources) {
        if (r.kind === DDL_TRIGGER_KIND) {
          await dropDdlTrigger(c).catch((err: unknown) => {
            throw classifyPgError(err, `pipeline ${ctx.pipeline}: dropping event trigger ${r.name} on ${where} (needs a superuser)`);
          });
        } else if (r.kind === SLOT) {
          await c.query(`select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1`, [r.name]).catch((err: { code?: string }) => {
            if (err?.code === '55006') throw fatal('PIPELINE_RUNNING', `pipeline ${ctx.pipeline}: replication slot ${r.name} on ${where} became active (a capture started meanwhile); stop it and run drop again`, err);
            throw classifyPgError(err, `pipeline ${ctx.pipeline}: dropping replication slot ${r.name} on ${where}`);
          });
        } else if (r.kind === PUBLICATION) {
          await c.query(`drop publication if exists ${quoteIdent(r.name)}`).catch((err: unknown) => {
            throw classifyPgError(err, `pipeline ${ctx.pipeline}: dropping publication ${r.name} on ${where} (needs its owner or a superuser)`);
          });
        }
      }
    },
    async close() {
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}

export function pgSinkResources(cfg: PgSinkConfig, ctx: ResourceContext): ConnectorResources {
  let client: pg.Client | undefined;
  // Replication origins belong to the server (cluster), not to a database.
  const where = `postgres ${server(cfg.connection)}`;
  const connect = async (database: string) => {
    const c = new pg.Client({ ...pgClientConfig({ ...cfg.connection, database }), types: rawTypes });
    c.on('error', () => undefined); // surfaced by the next query
    await c.connect();
    return c;
  };
  const open = async () => {
    if (client) return client;
    try {
      client = await connect(cfg.connection.database).catch((err: { code?: string }) => {
        // The target database is gone; its server's origins are not: read them from the maintenance database.
        if (err?.code === '3D000') return connect('postgres');
        throw err;
      });
    } catch (err) {
      throw classifyPgError(err, `pipeline ${ctx.pipeline}: target: cannot connect to PostgreSQL ${cfg.connection.user}@${server(cfg.connection)}/${cfg.connection.database}`);
    }
    return client;
  };
  return {
    async list() {
      const c = await open();
      const r = await c.query<{ roname: string }>(`select roname from pg_replication_origin where starts_with(roname, $1) order by roname`, [ctx.origin]).catch((err: unknown) => {
        throw classifyPgError(err, `pipeline ${ctx.pipeline}: reading pg_replication_origin on ${where}`);
      });
      return r.rows.filter((o) => isPipelineOrigin(ctx.origin, o.roname)).map((o) => ({ kind: ORIGIN, name: o.roname, where }));
    },
    async drop(resources) {
      if (resources.length === 0) return;
      const c = await open();
      for (const r of resources) {
        if (r.kind !== ORIGIN) continue;
        await c.query(`select pg_replication_origin_drop(roname) from pg_replication_origin where roname = $1`, [r.name]).catch((err: { code?: string }) => {
          if (err?.code === '55006') throw fatal('PIPELINE_RUNNING', `pipeline ${ctx.pipeline}: replication origin ${r.name} on ${where} is held by a session (a sink of this pipeline is running); stop it and run drop again`, err);
          throw err instanceof SynclineError ? err : classifyPgError(err, `pipeline ${ctx.pipeline}: dropping replication origin ${r.name} on ${where} (needs superuser or EXECUTE on pg_replication_origin_drop)`);
        });
      }
    },
    async close() {
      await client?.end().catch(() => undefined);
      client = undefined;
    },
  };
}
