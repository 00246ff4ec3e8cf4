/**
 * `syncline doctor`'s PostgreSQL checks, as the source and sink registrations' `doctor` hooks: read
 * the facts (./introspect.ts) over one probe connection per pipeline and decide the findings with
 * the pure functions of ./doctor.ts. Server-wide limits (wal_level, slots, walsenders) are checked
 * once per source server for all the pipelines reading it.
 */
import { parseTableName } from '../../src/core/names.js';
import { decideKey } from '../../src/capture/table-key.js';
import { errorMessage } from '../../src/core/errors.js';
import { fail, type DoctorContext, type DoctorItem, type DoctorTable, type Finding, type SourceDoctorReport, type TargetDemand } from '../../src/observe/findings.js';
import { ORIGIN_FUNCTIONS, serverFindings, sourceFindings, targetFindings, type SourceDemand } from './doctor.js';
import { canExecute, describePublication, describeRole, describeServer, describeTables, type Query, type TableFacts } from './introspect.js';
import { PgProbe } from './probe.js';
import type { PgConnection, PgSinkConfig, PgSourceConfig } from './spec.js';

export const pgWhere = (c: PgConnection): string => `${c.user}@${c.host}:${c.port}/${c.database}`;

const q = (probe: PgProbe): Query => (text, params) => probe.query(text, params);

const names = (tables: { source: string }[]) =>
  tables.map((t) => {
    const { schema, table } = parseTableName(t.source);
    return { schema, table };
  });

/** A source table's facts as the target's checks need them: its key (as capture decides it) and the columns it writes. */
export function doctorTable(t: { source: string; key?: string[] }, f: TableFacts): DoctorTable {
  const decided = decideKey('', t.source, t.key, { columns: f.columns.map((c) => c.name), primaryKey: f.primaryKey, replicaIdentity: f.replicaIdentity });
  return {
    source: t.source,
    key: decided.ok ? decided.key : null,
    columns: f.columns.filter((c) => !c.generated).map((c) => ({ name: c.name, pgType: c.type, notNull: c.notNull })),
  };
}

export async function pgSourceDoctor(items: DoctorItem<PgSourceConfig>[], ctx: DoctorContext): Promise<SourceDoctorReport> {
  const findings: Finding[] = [];
  const perPipeline: Finding[] = [];
  const tables = new Map<string, DoctorTable[]>();
  const servers = new Map<string, { probe: PgProbe; demands: SourceDemand[] }>();
  const probes: PgProbe[] = [];
  try {
    for (const item of items) {
      const src = item.config;
      const probe = new PgProbe(src.connection, ctx.timeoutMs);
      probes.push(probe);
      const demand: SourceDemand = { pipeline: item.pipeline, slot: src.slot, publication: src.publication, tables: item.tables, mode: item.mode };
      const server = `${src.connection.host}:${src.connection.port}`;
      const s = servers.get(server) ?? { probe, demands: [] };
      s.demands.push(demand);
      servers.set(server, s);
      try {
        // One connection: one query at a time.
        const serverFacts = await describeServer(q(probe));
        const role = await describeRole(q(probe));
        const publication = await describePublication(q(probe), src.publication);
        const facts = await describeTables(q(probe), names(item.tables));
        tables.set(
          item.pipeline,
          item.tables.flatMap((t) => {
            const n = parseTableName(t.source);
            const f = facts.find((x) => x.schema === n.schema && x.table === n.table);
            return f ? [doctorTable(t, f)] : [];
          }),
        );
        perPipeline.push(...sourceFindings(item.subject, demand, { server: serverFacts, role, publication, tables: facts }, src.connection));
      } catch (err) {
        perPipeline.push(fail(item.subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as a role that may read the catalog (any role can, unless it was revoked)']));
      }
    }
    for (const [server, s] of servers) {
      try {
        findings.push(...serverFindings(`source server ${server}`, await describeServer(q(s.probe)), s.demands));
      } catch (err) {
        findings.push(fail(`source server ${server}`, 'settings', `cannot read them: ${errorMessage(err)}`, ['connect as a role that may read pg_settings and pg_replication_slots']));
      }
    }
    return { findings: [...findings, ...perPipeline], tables };
  } finally {
    await Promise.allSettled(probes.map((p) => p.close()));
  }
}

export async function pgTargetDoctor(items: (DoctorItem<PgSinkConfig> & { demands: TargetDemand[] })[], ctx: DoctorContext): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const item of items) {
    const probe = new PgProbe(item.config.connection, ctx.timeoutMs);
    try {
      const role = await describeRole(q(probe));
      const facts = await describeTables(q(probe), names(item.demands.map((d) => ({ source: d.table }))));
      let origins: boolean | undefined;
      if (item.twoWay) {
        origins = true;
        for (const fn of ORIGIN_FUNCTIONS) origins &&= await canExecute(q(probe), fn);
      }
      // Schemas of missing tables the role may create them in (a missing schema: CREATE on the database).
      const creatable = new Set<string>();
      const missingSchemas = new Set(item.demands.map((d) => parseTableName(d.table)).filter((n) => !facts.some((f) => f.schema === n.schema && f.table === n.table)).map((n) => n.schema));
      for (const schema of missingSchemas) {
        const [r] = await probe.query(
          `select case when exists (select 1 from pg_namespace where nspname = $1) then has_schema_privilege($1, 'CREATE') else has_database_privilege(current_database(), 'CREATE') end as ok`,
          [schema],
        );
        if (r?.ok === true) creatable.add(schema);
      }
      findings.push(...targetFindings(item.subject, item.demands, { role, tables: facts, origins, creatable }, { autoEvolve: item.config.autoEvolve, autoCreate: item.config.autoCreate }));
    } catch (err) {
      findings.push(fail(item.subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as a role that may read the catalog']));
    } finally {
      await probe.close();
    }
  }
  return findings;
}
