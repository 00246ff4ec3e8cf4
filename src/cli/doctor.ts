/**
 * `syncline doctor [--config FILE] [--pipeline NAME]...`: checks every prerequisite of every
 * enabled pipeline before it is started and prints, per failing check, what is wrong and the exact
 * SQL, command or setting that fixes it. Exit 0 only when every check passes.
 *
 *   kafka      reachable (the /ready probe); the topics syncline will create may be created
 *              (CreateTopics with validateOnly: nothing is created)
 *   registry   reachable (the /ready probe); the compatibility level of each subject the pipelines
 *              write is BACKWARD, unset or NONE (the codec sets BACKWARD over NONE)
 *   redis      reachable (the /ready probe); writable under each pipeline's keys (a Lua script and a
 *              MULTI that set and delete a probe key, as the version state does)
 *   source     reachable (the /ready probe); the server's wal_level and free slots and walsenders;
 *              the role's REPLICATION right, SELECT on the tables, the publication, each table's
 *              replica identity, the slot (connectors/postgres/doctor.ts)
 *   target     reachable (Sink.ping, the /ready probe); each table, its key constraint, the rights,
 *              the columns (connectors/postgres/doctor.ts)
 * A dependency that is not reachable is one failure; the checks that need it are then not run.
 * Read-only except the Redis probe key (deleted at once, expiring in 60 s in any case).
 */
import { Redis } from 'ioredis';
import type { Command } from 'commander';
import '../../connectors/index.js';
import { ORIGIN_FUNCTIONS, serverFindings, sourceFindings, targetFindings, type SourceDemand, type TargetDemand } from '../../connectors/postgres/doctor.js';
import { canExecute, describePublication, describeRole, describeServer, describeTables, type Query, type TableFacts } from '../../connectors/postgres/introspect.js';
import type { PgConnection, PgSinkConfig, PgSourceConfig } from '../../connectors/postgres/spec.js';
import { parseTableName } from '../core/names.js';
import { decideKey } from '../capture/table-key.js';
import { loadConfig } from '../core/config/load.js';
import { changeTopicPrefix, type PipelineConfig, type SynclineConfig } from '../core/config/schema.js';
import { errorMessage, fatal } from '../core/errors.js';
import { KafkaClient, topics } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { sinkRegistration } from '../core/registry.js';
import { dlqActionsTopic } from '../dlq/store.js';
import { dependencyProbes, DependencyChecks, watchRedis, type ReadyReport } from '../observe/checks.js';
import { PgProbe, pingMonitor } from '../../connectors/postgres/probe.js';
import { fail, formatFindings, pass, type Finding } from '../observe/findings.js';
import type { Sink } from '../sink/sink.js';
import { redisAddress } from '../core/dependencies.js';

export interface DoctorOptions {
  config: string;
  pipeline?: string[];
  /** Where the report goes (tests pass their own). */
  out?: (text: string) => void;
}

/** Runs every check, prints the report; returns the exit code (0: all passed). */
export async function doctor(opts: DoctorOptions): Promise<number> {
  const out = opts.out ?? ((t: string) => process.stdout.write(t));
  const config = loadConfig(opts.config);
  const selected = Object.entries(config.pipelines).filter(([name, p]) => p.enabled && (!opts.pipeline || opts.pipeline.includes(name)));
  const unknown = (opts.pipeline ?? []).filter((n) => !config.pipelines[n]);
  if (unknown.length > 0) throw fatal('DOCTOR_PIPELINE', `no pipeline ${unknown.join(', ')} in ${opts.config} (have: ${Object.keys(config.pipelines).join(', ')})`);
  const findings = await runChecks(config, selected);
  out(formatFindings(`syncline doctor: ${opts.config} (pipeline${selected.length === 1 ? '' : 's'} ${selected.map(([n]) => n).join(', ') || 'none enabled'})`, findings));
  return findings.every((f) => f.ok) ? 0 : 1;
}

const TIMEOUT_MS = 10_000;

async function runChecks(config: SynclineConfig, pipelines: [string, PipelineConfig][]): Promise<Finding[]> {
  const log = rootLogger.child({ stage: 'doctor' });
  const timeoutMs = Math.max(config.observability?.checkTimeoutMs ?? 3000, 5000);
  const kafka = new KafkaClient(config.kafka, log);
  const redis = new Redis(config.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: true, retryStrategy: () => null });
  redis.on('error', () => undefined); // reported by the checks
  const pgPipelines = pipelines.filter(([, p]) => (p.source as { type: string }).type === 'postgres');
  const sources = pgPipelines.map(([pipeline, p]) => ({ pipeline, probe: new PgProbe((p.source as PgSourceConfig).connection, TIMEOUT_MS) }));
  const targets: { pipeline: string; sink: Sink }[] = pipelines.map(([pipeline, p]) => ({ pipeline, sink: sinkRegistration((p.target as { type: string }).type).create(p.target as never, { pipeline, log }) }));
  const targetProbes = new Map<string, PgProbe>();
  for (const [pipeline, p] of pipelines) if ((p.target as { type: string }).type === 'postgres') targetProbes.set(pipeline, new PgProbe((p.target as PgSinkConfig).connection, TIMEOUT_MS));
  try {
    const ready = await new DependencyChecks(dependencyProbes({ kafka, registryUrl: config.schemaRegistry.url, redis: watchRedis(redis), sources: sources.map((s) => ({ pipeline: s.pipeline, monitor: pingMonitor(s.probe) })), targets }), timeoutMs).run();
    const findings: Finding[] = [];
    const reach = (subject: string, name: string, fix: string[]): boolean => {
      const c = ready.checks[name]!;
      findings.push(c.ok ? pass(subject, 'reachable', `answered in ${c.latencyMs} ms`) : fail(subject, 'reachable', c.lastError ?? 'no answer', fix));
      return c.ok;
    };

    const kafkaSubject = `kafka ${config.kafka.brokers.join(',')}`;
    if (reach(kafkaSubject, 'kafka', ['start Kafka, or correct kafka.brokers'])) findings.push(await kafkaTopics(kafkaSubject, kafka, config, pipelines));

    const registrySubject = `registry ${config.schemaRegistry.url}`;
    if (reach(registrySubject, 'registry', ['start the registry, or correct schemaRegistry.url'])) findings.push(await registryCompatibility(registrySubject, config, pipelines, timeoutMs));

    const redisSubject = `redis ${redisAddress(config.redis.url)}`;
    if (reach(redisSubject, 'redis', ['start Redis, or correct redis.url (host, port, user and password)'])) findings.push(await redisWritable(redisSubject, redis, config, pipelines));

    findings.push(...(await postgresChecks(config, pipelines, ready, sources, targetProbes)));
    for (const [pipeline, p] of pipelines) {
      if ((p.source as { type: string }).type !== 'postgres') findings.push(pass(`pipeline ${pipeline}: source`, 'checks', `none for source type ${(p.source as { type: string }).type}`));
    }
    return findings;
  } finally {
    redis.disconnect();
    await Promise.allSettled([kafka.close(), ...sources.map((s) => s.probe.close()), ...targets.map((t) => t.sink.close()), ...[...targetProbes.values()].map((p) => p.close())]);
  }
}

// ---------------------------------------------------------------------------------------------
// Kafka

/** Every topic the pipelines create, with how (ensureTopics' callers: capture, dead letters, DLQ actions, capture offsets). */
export function plannedTopics(config: SynclineConfig, pipelines: [string, PipelineConfig][]): { topic: string; partitions: number; compact: boolean }[] {
  const out = new Map<string, { topic: string; partitions: number; compact: boolean }>();
  const add = (topic: string, partitions: number, compact = false) => out.set(topic, { topic, partitions, compact });
  for (const [name, p] of pipelines) {
    for (const t of p.tables) {
      const { schema, table } = parseTableName(t.source);
      add(topics.cdc(changeTopicPrefix(config, p), schema, table), config.kafka.partitions);
    }
    add(topics.dlq(config.topicPrefix, name), 1);
    add(dlqActionsTopic(config.topicPrefix, name), 1);
  }
  if (pipelines.length > 0) add(topics.captureOffsets(config.topicPrefix), 1, true);
  return [...out.values()];
}

async function kafkaTopics(subject: string, kafka: KafkaClient, config: SynclineConfig, pipelines: [string, PipelineConfig][]): Promise<Finding> {
  const check = 'topic creation';
  const planned = plannedTopics(config, pipelines);
  let brokers = 0;
  try {
    const admin = await kafka.getAdmin();
    brokers = (await admin.describeCluster()).brokers.length;
    const existing = new Set(await admin.listTopics());
    const missing = planned.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return pass(subject, check, `all ${planned.length} topics exist`);
    const retentionMs = String(config.kafka.retentionDays * 24 * 3600 * 1000);
    // validateOnly: the broker checks the request (rights, replication factor, policies) and creates nothing.
    await admin.createTopics({
      validateOnly: true,
      waitForLeaders: false,
      topics: missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.partitions,
        replicationFactor: config.kafka.replicationFactor,
        configEntries: t.compact ? [{ name: 'cleanup.policy', value: 'compact' }] : [{ name: 'cleanup.policy', value: 'delete' }, { name: 'retention.ms', value: retentionMs }],
      })),
    });
    return pass(subject, check, `${missing.length} of ${planned.length} topics to create at the first start; the broker accepts creating them (validated, nothing created)`);
  } catch (err) {
    const types = new Set([(err as { type?: string }).type, ...((err as { errors?: { type?: string }[] }).errors ?? []).map((e) => e.type)].filter((t): t is string => !!t));
    const why = [...types].join(', ') || errorMessage(err);
    const create = `or create them beforehand: kafka-topics.sh --bootstrap-server ${config.kafka.brokers[0]} --create --topic <topic> --partitions ${config.kafka.partitions} --replication-factor ${Math.min(config.kafka.replicationFactor, Math.max(brokers, 1))} (topics: ${planned.map((t) => t.topic).join(', ')})`;
    if (types.has('INVALID_REPLICATION_FACTOR')) {
      return fail(subject, check, `refused: kafka.replicationFactor is ${config.kafka.replicationFactor} but the cluster has ${brokers} broker${brokers === 1 ? '' : 's'}`, [`kafka.replicationFactor: ${Math.max(brokers, 1)}   (in the config)`]);
    }
    if ([...types].some((t) => t.endsWith('AUTHORIZATION_FAILED'))) {
      return fail(subject, check, `refused (${why}): syncline's principal may not create topics`, [
        `kafka-acls.sh --bootstrap-server ${config.kafka.brokers[0]} --add --allow-principal User:<syncline's principal> --operation Create --operation Describe --operation Write --operation Read --resource-pattern-type prefixed --topic ${config.topicPrefix}.`,
        create,
      ]);
    }
    return fail(subject, check, `refused: ${why}${types.size > 0 ? ` (${errorMessage(err)})` : ''}`, [create]);
  }
}

// ---------------------------------------------------------------------------------------------
// Registry

/** The compatibility levels the codec works with (src/core/codec.ts): BACKWARD, and NONE, which it replaces by BACKWARD. */
export function compatibilityFinding(subject: string, url: string, levels: { subject: string; level: string | null }[], global: string | null): Finding {
  const check = 'compatibility';
  const wrong = levels.filter((l) => l.level !== null && l.level !== 'BACKWARD' && l.level !== 'NONE');
  const base = url.replace(/\/+$/, '');
  if (wrong.length > 0) {
    return fail(
      subject,
      check,
      `${wrong.map((w) => `${w.subject} is ${w.level}`).join(', ')}: syncline registers BACKWARD-compatible schemas and refuses to register under another level`,
      wrong.map((w) => `curl -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' --data '{"compatibility": "BACKWARD"}' '${base}/config/${encodeURIComponent(w.subject)}'`),
    );
  }
  const set = levels.filter((l) => l.level !== null);
  const none = set.filter((l) => l.level === 'NONE').length;
  return pass(
    subject,
    check,
    `${levels.length} subjects: ${set.length - none} BACKWARD, ${none > 0 ? `${none} NONE (set to BACKWARD at the next registration), ` : ''}${levels.length - set.length} without a level of their own (BACKWARD at the first registration)${global ? `; global level ${global}` : ''}`,
  );
}

async function registryCompatibility(subject: string, config: SynclineConfig, pipelines: [string, PipelineConfig][], timeoutMs: number): Promise<Finding> {
  const base = config.schemaRegistry.url.replace(/\/+$/, '');
  const level = async (path: string): Promise<string | null> => {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
    const text = await res.text();
    if (res.status === 404) return null;
    if (!res.ok) throw new Error(`GET ${base}${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
    const body = JSON.parse(text) as { compatibilityLevel?: string; compatibility?: string };
    return (body.compatibilityLevel ?? body.compatibility ?? '').toUpperCase() || null;
  };
  try {
    const subjects = plannedTopics(config, pipelines).filter((t) => t.topic.includes('.cdc.')).flatMap((t) => [`${t.topic}-key`, `${t.topic}-value`]);
    const levels: { subject: string; level: string | null }[] = [];
    for (let i = 0; i < subjects.length; i += 16) {
      const part = subjects.slice(i, i + 16);
      levels.push(...(await Promise.all(part.map(async (s) => ({ subject: s, level: await level(`/config/${encodeURIComponent(s)}`) })))));
    }
    const global = await level('/config').catch(() => null);
    return compatibilityFinding(subject, base, levels, global);
  } catch (err) {
    return fail(subject, 'compatibility', `cannot read the compatibility levels: ${errorMessage(err)}`, ['check schemaRegistry.url: it must be the base of a Confluent-compatible API (Apicurio: …/apis/ccompat/v7)']);
  }
}

// ---------------------------------------------------------------------------------------------
// Redis


const PROBE_SCRIPT = "redis.call('SET', KEYS[1], ARGV[1], 'PX', 60000) redis.call('DEL', KEYS[1]) return 1";

async function redisWritable(subject: string, redis: Redis, config: SynclineConfig, pipelines: [string, PipelineConfig][]): Promise<Finding> {
  const keyPrefix = config.redis.keyPrefix ?? config.topicPrefix;
  let user = 'default';
  try {
    user = decodeURIComponent(new URL(config.redis.url).username) || 'default';
  } catch {
    // reported by the reachability check
  }
  try {
    for (const [name] of pipelines) {
      // The version state's key space and commands: Lua (compare-and-set), MULTI, hashes, expiry.
      const key = `${keyPrefix}:{${name}}:doctor`;
      await redis.eval(PROBE_SCRIPT, 1, key, 'probe');
      const replies = await redis.multi().hset(key, 'probe', '1').expire(key, 60).del(key).exec();
      const failed = replies?.find(([e]) => e);
      if (failed) throw failed[0];
    }
    return pass(subject, 'writable', `scripts and transactions under ${keyPrefix}:{<pipeline>}:… work`);
  } catch (err) {
    const msg = errorMessage(err);
    if (/NOPERM|NOAUTH|WRONGPASS/.test(msg)) {
      return fail(subject, 'writable', `refused: ${msg}`, [`ACL SETUSER ${user} ~${keyPrefix}:* +@read +@write +@scripting +@transaction +ping +info   (redis-cli, as an admin)`]);
    }
    if (/READONLY/.test(msg)) return fail(subject, 'writable', `refused: ${msg}`, ['point redis.url at the primary, not a read-only replica']);
    if (/OOM/.test(msg)) return fail(subject, 'writable', `refused: ${msg}`, ["CONFIG SET maxmemory <more> (or free memory): Redis is at its maxmemory and refuses writes"]);
    return fail(subject, 'writable', msg, ['check redis.url and that the server accepts writes']);
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

async function postgresChecks(
  config: SynclineConfig,
  pipelines: [string, PipelineConfig][],
  ready: ReadyReport,
  sources: { pipeline: string; probe: PgProbe }[],
  targetProbes: Map<string, PgProbe>,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const q = (probe: PgProbe): Query => (text, params) => probe.query(text, params);
  const where = (c: PgConnection) => `${c.user}@${c.host}:${c.port}/${c.database}`;
  const sourceFacts = new Map<string, TableFacts[]>();

  // Server-wide limits once per server, for all its pipelines.
  const servers = new Map<string, { probe: PgProbe; demands: SourceDemand[] }>();
  const perPipeline: Finding[] = [];
  for (const { pipeline, probe } of sources) {
    const p = config.pipelines[pipeline]!;
    const src = p.source as PgSourceConfig;
    const subject = `pipeline ${pipeline}: source ${where(src.connection)}`;
    const c = ready.checks[`source:${pipeline}`]!;
    if (!c.ok) {
      perPipeline.push(fail(subject, 'reachable', c.lastError ?? 'no answer', [`start PostgreSQL, or correct pipelines.${pipeline}.source.connection (host, port, database, user, password)`]));
      continue;
    }
    perPipeline.push(pass(subject, 'reachable', `answered in ${c.latencyMs} ms`));
    const demand: SourceDemand = { pipeline, slot: src.slot, publication: src.publication, tables: p.tables };
    const server = `${src.connection.host}:${src.connection.port}`;
    const s = servers.get(server) ?? { probe, demands: [] };
    s.demands.push(demand);
    servers.set(server, s);
    try {
      const names = p.tables.map((t) => {
        const { schema, table } = parseTableName(t.source);
        return { schema, table };
      });
      // One connection: one query at a time.
      const serverFacts = await describeServer(q(probe));
      const role = await describeRole(q(probe));
      const publication = await describePublication(q(probe), src.publication);
      const tables = await describeTables(q(probe), names);
      sourceFacts.set(pipeline, tables);
      perPipeline.push(...sourceFindings(subject, demand, { server: serverFacts, role, publication, tables }, src.connection));
    } catch (err) {
      perPipeline.push(fail(subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as a role that may read the catalog (any role can, unless it was revoked)']));
    }
  }
  for (const [server, s] of servers) {
    try {
      findings.push(...serverFindings(`source server ${server}`, await describeServer(q(s.probe)), s.demands));
    } catch (err) {
      findings.push(fail(`source server ${server}`, 'settings', `cannot read them: ${errorMessage(err)}`, ['connect as a role that may read pg_settings and pg_replication_slots']));
    }
  }
  findings.push(...perPipeline);

  for (const [pipeline, p] of pipelines) {
    const target = p.target as { type: string };
    const conn = target.type === 'postgres' ? (target as PgSinkConfig).connection : undefined;
    const subject = `pipeline ${pipeline}: target ${conn ? where(conn) : target.type}`;
    const c = ready.checks[`target:${pipeline}`]!;
    if (!c.ok) {
      findings.push(fail(subject, 'reachable', c.lastError ?? 'no answer', [`start the target, or correct pipelines.${pipeline}.target${conn ? '.connection (host, port, database, user, password)' : ''}`]));
      continue;
    }
    findings.push(pass(subject, 'reachable', `answered in ${c.latencyMs} ms`));
    const probe = targetProbes.get(pipeline);
    if (!probe) continue; // a sink type without checks of its own
    try {
      const demands = targetDemands(p, sourceFacts.get(pipeline));
      const names = demands.map((d) => {
        const { schema, table } = parseTableName(d.table);
        return { schema, table };
      });
      const role = await describeRole(q(probe));
      const tables = await describeTables(q(probe), names);
      let origins: boolean | undefined;
      if (p.peer) {
        origins = true;
        for (const fn of ORIGIN_FUNCTIONS) origins &&= await canExecute(q(probe), fn);
      }
      findings.push(...targetFindings(subject, demands, { role, tables, origins }, { autoEvolve: (p.target as PgSinkConfig).autoEvolve }));
    } catch (err) {
      findings.push(fail(subject, 'catalog', `cannot read it: ${errorMessage(err)}`, ['connect as a role that may read the catalog']));
    }
  }
  return findings;
}

/**
 * Each target table with the key and columns the source gives it (through the column renames).
 * `source`: the source tables' facts, undefined when the source could not be read; a table missing
 * there is reported by the source's checks and not checked again here.
 */
export function targetDemands(p: PipelineConfig, source: TableFacts[] | undefined): TargetDemand[] {
  const at = (t: { source: string }) => {
    const { schema, table } = parseTableName(t.source);
    return source?.find((x) => x.schema === schema && x.table === table);
  };
  return p.tables.filter((t) => !source || at(t)).map((t) => {
    const f = at(t);
    const rename = (c: string) => t.columns?.[c] ?? c;
    const decided = f ? decideKey('', t.source, t.key, { columns: f.columns.map((c) => c.name), primaryKey: f.primaryKey, replicaIdentity: f.replicaIdentity }) : null;
    const key = (decided?.ok ? decided.key : t.key ?? f?.primaryKey ?? []).map(rename);
    return {
      source: t.source,
      table: t.target ?? t.source,
      key,
      columns: (f?.columns ?? []).filter((c) => !c.generated).map((c) => ({ name: rename(c.name), type: c.type, notNull: c.notNull })),
    };
  });
}

export function doctorCommand(program: Command, defaultConfig: string): void {
  program
    .command('doctor')
    .description('check every prerequisite of every pipeline (PostgreSQL settings, rights, publication, replica identity, slots; Kafka, registry, Redis; target tables) and print the fix of each that fails. Exit 0 only when all pass')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-p, --pipeline <name>', 'only this pipeline (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (opts: { config: string; pipeline?: string[] }) => {
      const code = await doctor(opts);
      // Clients of unreachable services may keep retrying in the background: do not wait for them.
      process.stdout.write('', () => process.exit(code));
    });
}
