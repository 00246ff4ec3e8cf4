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
import '../../connectors/index.js';
import { formatTableName, parseTableName } from '../core/names.js';
import { loadConfig } from '../core/config/load.js';
import { changeTopicPrefix, targetTablesOf, type PipelineConfig, type SynclineConfig } from '../core/config/schema.js';
import { errorMessage, fatal } from '../core/errors.js';
import { KafkaClient, topics } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { sinkRegistration, sourceRegistration, type SourceRegistration } from '../core/registry.js';
import { dlqActionsTopic } from '../dlq/store.js';
import { dependencyProbes, DependencyChecks, watchRedis, type ReadyReport } from '../observe/checks.js';
import { fail, formatFindings, pass, type DoctorItem, type DoctorTable, type Finding, type TargetDemand } from '../observe/findings.js';
import type { SourceMonitor } from '../capture/source.js';
import type { Sink } from '../sink/sink.js';
import { checkRedisMode, clusterHealth, createRedis, isCluster, redisConfigPath, redisUrlAddress, type RedisClient } from '../core/redis.js';
import { registryAccess } from '../core/registry-http.js';

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
  const redis = createRedis(config.redis, { maxRetriesPerRequest: 1, enableOfflineQueue: true, once: true });
  redis.on('error', () => undefined); // reported by the checks
  if (isCluster(redis)) redis.on('node error', () => undefined);
  const typeOf = (c: unknown) => (c as { type: string }).type;
  const sources: { pipeline: string; monitor: SourceMonitor }[] = pipelines.map(([pipeline, p]) => ({ pipeline, monitor: sourceRegistration(typeOf(p.source)).monitor(p.source as never, TIMEOUT_MS, pipeline) }));
  const targets: { pipeline: string; sink: Sink }[] = pipelines.map(([pipeline, p]) => ({ pipeline, sink: sinkRegistration(typeOf(p.target)).create(p.target as never, { pipeline, log }) }));
  try {
    const ready = await new DependencyChecks(dependencyProbes({ kafka, registry: config.schemaRegistry, redis: watchRedis(redis), sources, targets }), timeoutMs).run();
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

    const redisSubject = config.redis.sentinel ? `redis sentinel master ${config.redis.sentinel.name} (${config.redis.sentinel.nodes.join(',')})` : config.redis.cluster ? `redis cluster ${config.redis.cluster.nodes.join(',')}` : `redis ${redisUrlAddress(config.redis.url)}`;
    const redisFix = config.redis.sentinel
      ? ['start the sentinels and the master they monitor (scripts/redis-sentinel.sh up for a local set), or correct redis.sentinel (nodes: host:port of the sentinels, name: the monitored master) and redis.url (scheme, user and password)']
      : config.redis.cluster
      ? ['start the cluster (scripts/redis-cluster.sh up for a local one), or correct redis.cluster.nodes (host:port of cluster-mode nodes) and redis.url (scheme, user and password)']
      : ['start Redis, or correct redis.url (host, port, user and password)'];
    if (reach(redisSubject, 'redis', redisFix)) findings.push(await redisWritable(redisSubject, redis, config, pipelines));

    findings.push(...(await connectorChecks(pipelines, ready, { timeoutMs: TIMEOUT_MS })));
    return findings;
  } finally {
    redis.disconnect();
    await Promise.allSettled([kafka.close(), ...sources.map((s) => s.monitor.close()), ...targets.map((t) => t.sink.close())]);
  }
}

/**
 * A source type without doctor checks of its own: its start's checks, run as the start runs them
 * (connect, then describe the configured tables: each exists, its key is known, the connector's
 * own options name real columns), the first failure reported with its message. The tables it
 * describes feed the target's checks.
 */
async function describeCheck(reg: SourceRegistration, it: DoctorItem<unknown>, p: PipelineConfig): Promise<{ finding: Finding; tables?: DoctorTable[] }> {
  const source = reg.create(it.config as never, { pipeline: it.pipeline, log: rootLogger.child({ stage: 'doctor', pipeline: it.pipeline }) });
  try {
    await source.connect();
    const described = await source.describe(p.tables);
    const tables: DoctorTable[] = described.map((d) => ({ source: formatTableName({ schema: d.schema, table: d.table }), key: d.key, columns: d.columns.map((c) => ({ name: c.name, pgType: c.type.pgType, notNull: d.key.includes(c.name) })) }));
    return { finding: pass(it.subject, 'tables', `${described.length} described as the start does (the ${reg.type} connector has no further doctor checks)`), tables };
  } catch (err) {
    return { finding: fail(it.subject, 'tables', errorMessage(err), [`fix what the message names (the ${reg.type} source's start stops on it)`]) };
  } finally {
    await source.stop().catch(() => undefined);
  }
}

/** What to do about a source or target that did not answer: start it or correct its address, or grant what a refusal names. */
function unreachableFix(pipeline: string, role: 'source' | 'target', connection: boolean, error: string | null | undefined): string[] {
  const field = `pipelines.${pipeline}.${role}${connection ? '.connection (host, port, database, user, password)' : ''}`;
  if (/access denied|permission denied|authentication failed|not permitted|password/i.test(error ?? '')) {
    return [`correct ${field}, or give the account access to it (as an administrator; the refusal above names what is missing)`];
  }
  return [`start the ${role}, or correct ${field}`];
}

/**
 * Each pipeline's source and target: reachable (the /ready probes), then the checks of its
 * connector (the registrations' `doctor` hooks, called once per connector type with every pipeline
 * of that type that answered). The sources' checks come first: the targets' are decided from the
 * tables the sources found.
 */
async function connectorChecks(pipelines: [string, PipelineConfig][], ready: ReadyReport, ctx: { timeoutMs: number }): Promise<Finding[]> {
  const findings: Finding[] = [];
  const typeOf = (c: unknown) => (c as { type: string }).type;
  const item = <C>(pipeline: string, p: PipelineConfig, role: 'source' | 'target', config: C, where: string): DoctorItem<C> => ({
    pipeline,
    config,
    tables: p.tables,
    twoWay: !!p.peer,
    mode: p.mode ?? 'realtime',
    subject: `pipeline ${pipeline}: ${role} ${where}`,
  });

  const sourceTables = new Map<string, DoctorTable[]>();
  const byType = new Map<string, DoctorItem<unknown>[]>();
  for (const [pipeline, p] of pipelines) {
    const type = typeOf(p.source);
    const reg = sourceRegistration(type);
    const it = item(pipeline, p, 'source', p.source as unknown, reg.where?.(p.source as never) ?? type);
    const c = ready.checks[`source:${pipeline}`]!;
    if (!c.ok) {
      findings.push(fail(it.subject, 'reachable', c.lastError ?? 'no answer', unreachableFix(pipeline, 'source', !!reg.where, c.lastError)));
      continue;
    }
    findings.push(pass(it.subject, 'reachable', `answered in ${c.latencyMs} ms`));
    if (!reg.doctor) {
      const r = await describeCheck(reg, it, p);
      findings.push(r.finding);
      if (r.tables) sourceTables.set(pipeline, r.tables);
      continue;
    }
    byType.set(type, [...(byType.get(type) ?? []), it]);
  }
  for (const [type, items] of byType) {
    const report = await sourceRegistration(type).doctor!(items as never, ctx);
    findings.push(...report.findings);
    for (const [pipeline, tables] of report.tables) sourceTables.set(pipeline, tables);
  }

  const targetsByType = new Map<string, (DoctorItem<unknown> & { demands: TargetDemand[] })[]>();
  for (const [pipeline, p] of pipelines) {
    const type = typeOf(p.target);
    const reg = sinkRegistration(type);
    const it = item(pipeline, p, 'target', p.target as unknown, reg.where?.(p.target as never) ?? type);
    const c = ready.checks[`target:${pipeline}`]!;
    if (!c.ok) {
      findings.push(fail(it.subject, 'reachable', c.lastError ?? 'no answer', unreachableFix(pipeline, 'target', !!reg.where, c.lastError)));
      continue;
    }
    findings.push(pass(it.subject, 'reachable', `answered in ${c.latencyMs} ms`));
    if (!reg.doctor) continue; // a sink type without checks of its own
    targetsByType.set(type, [...(targetsByType.get(type) ?? []), { ...it, demands: targetDemands(p, sourceTables.get(pipeline)) }]);
  }
  for (const [type, items] of targetsByType) findings.push(...(await sinkRegistration(type).doctor!(items as never, ctx)));
  return findings;
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
    const res = await registryAccess(config.schemaRegistry).fetch(`${base}${path}`, { signal: AbortSignal.timeout(timeoutMs) });
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

async function redisWritable(subject: string, redis: RedisClient, config: SynclineConfig, pipelines: [string, PipelineConfig][]): Promise<Finding> {
  const keyPrefix = config.redis.keyPrefix ?? config.topicPrefix;
  let user = 'default';
  try {
    user = config.redis.username ?? (decodeURIComponent(new URL(config.redis.url).username) || 'default');
  } catch {
    // reported by the reachability check
  }
  try {
    await checkRedisMode(redis, config.redis);
    for (const [name] of pipelines) {
      // The version state's key space and commands: Lua (compare-and-set), MULTI, hashes, expiry.
      const key = `${keyPrefix}:{${name}}:doctor`;
      await redis.eval(PROBE_SCRIPT, 1, key, 'probe');
      const replies = await redis.multi().hset(key, 'probe', '1').expire(key, 60).del(key).exec();
      const failed = replies?.find(([e]) => e);
      if (failed) throw failed[0];
    }
    const cluster = isCluster(redis) ? `; ${(await clusterHealth(redis)).detail}` : '';
    return pass(subject, 'writable', `scripts and transactions under ${keyPrefix}:{<pipeline>}:… work${cluster}`);
  } catch (err) {
    const msg = errorMessage(err);
    if (/NOPERM|NOAUTH|WRONGPASS/.test(msg)) {
      return fail(subject, 'writable', `refused: ${msg}`, [`ACL SETUSER ${user} ~${keyPrefix}:* +@read +@write +@scripting +@transaction +ping +info${isCluster(redis) ? ' +cluster|slots +cluster|info' : ''}   (redis-cli, as an admin${isCluster(redis) ? ', on every node' : ''})`]);
    }
    if (/READONLY/.test(msg)) return fail(subject, 'writable', `refused: ${msg}`, ['point redis.url at the primary, not a read-only replica']);
    if (/OOM/.test(msg)) return fail(subject, 'writable', `refused: ${msg}`, ["CONFIG SET maxmemory <more> (or free memory): Redis is at its maxmemory and refuses writes"]);
    if (/^(MOVED|ASK) /.test(msg) || (err as { code?: string }).code === 'REDIS_CLUSTER_MODE') return fail(subject, 'writable', `refused: ${msg}`, ['redis.url points at a node of a Redis Cluster: list its nodes in redis.cluster.nodes instead']);
    return fail(subject, 'writable', msg, [`check ${redisConfigPath(config.redis)} and that the server accepts writes`]);
  }
}

/**
 * Each target table with the key and columns the source gives it (through the column renames).
 * `source`: the source tables' facts, undefined when the source could not be read; a table missing
 * there is reported by the source's checks and not checked again here.
 */
export function targetDemands(p: PipelineConfig, source: DoctorTable[] | undefined): TargetDemand[] {
  const at = (t: { source: string }) => source?.find((x) => x.source === t.source);
  // A routed table (tables[].route) demands each of its route tables.
  return p.tables.filter((t) => !source || at(t)).flatMap((t) => {
    const f = at(t);
    const rename = (c: string) => t.columns?.[c] ?? c;
    const key = (f?.key ?? t.key ?? []).map(rename);
    return targetTablesOf(t).map((table) => ({
      source: t.source,
      table,
      key,
      columns: (f?.columns ?? []).map((c) => ({ name: rename(c.name), pgType: c.pgType, notNull: c.notNull })),
    }));
  });
}
