/**
 * `syncline pipeline drop NAME [--config FILE] [--dry-run] [--yes]`: list, then remove, exactly what
 * pipeline NAME created — its replication slot, publication and replication origins (through its
 * connectors' `resources`, src/core/resources.ts), its Kafka topics and consumer groups, its entry
 * of `<prefix>.capture.offsets` (the topic itself when no other entry is left), the registry
 * subjects of the topics it drops, and its Redis keys — and nothing of any other pipeline (what is
 * shared is listed as kept, with the reason; decisions in ./drop-plan.ts).
 *
 * Lifecycle: one run opens its own Kafka, Redis, registry and PostgreSQL clients, lists everything
 * (listing changes nothing: that is all --dry-run does), refuses while the pipeline runs (its slot
 * is active, one of its consumer groups has members), asks for confirmation (unless --yes; without
 * a terminal --yes is required), drops, then lists again and fails if anything it meant to drop is
 * still there. Every step skips what is already gone, so an interrupted drop is finished by running
 * it again, and a second run finds nothing and says so.
 *
 * Exit codes: 0 dropped (or nothing to drop, or a dry run), 1 running / failed, 2 usage (unknown
 * pipeline, no confirmation).
 */
import { createInterface } from 'node:readline/promises';
import '../../connectors/index.js';
import { loadConfig } from '../core/config/load.js';
import { changeTopicPrefix, type SynclineConfig } from '../core/config/schema.js';
import { classifyHttpStatus, classifyNetworkError, classifyRedisError, errorCode, errorMessage, fatal } from '../core/errors.js';
import { KafkaClient, topics } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { sinkRegistration, sourceRegistration } from '../core/registry.js';
import type { ConnectorResources, PipelineResource, ResourceContext } from '../core/resources.js';
import { schemaChangesTopic } from '../capture/schema-changes.js';
import { readRanges, topicBounds } from '../core/topic-reader.js';
import { originOf } from '../sink/build.js';
import { captureOffsetItems, KIND, liveKeys, ownsGroup, pipelineTopics, redisPattern, renderPlan, runningMessage, subjectsOf } from './drop-plan.js';
import { createRedis, redisWhere, scanKeys, unlinkKeys, type RedisClient } from '../core/redis.js';
import { registryAccess } from '../core/registry-http.js';

export interface DropOptions {
  config: string;
  dryRun?: boolean;
  yes?: boolean;
}

/** Host and port of a URL, without credentials. */
function address(url: string): string {
  try {
    const u = new URL(url);
    return u.port ? `${u.hostname}:${u.port}` : u.hostname;
  } catch {
    return '(unparsable url)';
  }
}

/** Everything one drop run talks to, and what it found. */
class PipelineDropper {
  private readonly kafka: KafkaClient;
  private readonly redis: RedisClient;
  private readonly connectors: ConnectorResources[] = [];
  private readonly byConnector = new Map<PipelineResource, ConnectorResources>();
  private readonly prefix: string;
  private readonly keyPrefix: string;
  private readonly registry: string;
  private readonly where: { kafka: string; redis: string; registry: string };

  constructor(private readonly config: SynclineConfig, private readonly name: string) {
    const p = config.pipelines[name]!;
    this.prefix = config.topicPrefix;
    this.keyPrefix = config.redis.keyPrefix ?? config.topicPrefix;
    this.registry = config.schemaRegistry.url.replace(/\/+$/, '');
    this.where = { kafka: `kafka ${config.kafka.brokers.join(',')}`, redis: config.redis.sentinel ? `redis sentinel master ${config.redis.sentinel.name} (${config.redis.sentinel.nodes.join(',')})` : config.redis.cluster ? `redis cluster ${config.redis.cluster.nodes.join(',')}` : `redis ${address(config.redis.url)}`, registry: `registry ${address(this.registry)}` };
    this.kafka = new KafkaClient(config.kafka, rootLogger.child({ stage: 'kafka' }));
    this.redis = createRedis(config.redis, { maxRetriesPerRequest: 3 });
    this.redis.on('error', () => undefined); // surfaced by the next command
    const others = Object.entries(config.pipelines).filter(([n]) => n !== name);
    const ctx = (side: 'source' | 'target'): ResourceContext => ({
      pipeline: name, topicPrefix: this.prefix, tables: p.tables.map((t) => t.source), origin: originOf(this.prefix, name),
      others: others.map(([n, o]) => ({ name: n, config: o[side] })),
    });
    const src = sourceRegistration((p.source as { type: string }).type).resources;
    const dst = sinkRegistration((p.target as { type: string }).type).resources;
    // A follower (ADR 0039) owns nothing of its source: the slot and publication are the followed pipeline's.
    if (src && !p.follows) this.connectors.push(src(p.source as never, ctx('source')));
    if (dst) this.connectors.push(dst(p.target as never, ctx('target')));
  }

  /** Everything of the pipeline that exists now, each to drop, kept (why) or in use (by what). */
  async list(): Promise<PipelineResource[]> {
    const items: PipelineResource[] = [];
    this.byConnector.clear();
    for (const c of this.connectors) {
      for (const r of await c.list()) {
        this.byConnector.set(r, c);
        items.push(r);
      }
    }
    items.push(...(await this.kafkaItems()));
    items.push(...(await this.redisItems()));
    return items;
  }

  private async kafkaItems(): Promise<PipelineResource[]> {
    const where = this.where.kafka;
    let admin;
    try {
      admin = await this.kafka.getAdmin();
    } catch (err) {
      throw classifyNetworkError(err, `cannot connect to Kafka at ${this.config.kafka.brokers.join(',')} (kafka.brokers)`);
    }
    const existing = new Set(await admin.listTopics());
    const out: PipelineResource[] = [];
    const describe = async (topic: string) => {
      const b = await topicBounds(this.kafka, topic);
      const n = b.reduce((s, x) => s + Number(x.high - x.low), 0);
      return `${b.length} partition${b.length === 1 ? '' : 's'}, ${n} message${n === 1 ? '' : 's'}`;
    };

    // Consumer groups: this pipeline's (in use while they have members), and the others' offsets.
    const groupIds = (await admin.listGroups()).groups.map((g) => g.groupId);
    const mine = groupIds.filter((g) => ownsGroup(this.prefix, this.name, g));
    if (mine.length > 0) {
      for (const g of (await admin.describeGroups(mine)).groups) {
        if (g.state === 'Dead') continue;
        const members = g.members.map((m) => `${m.clientId}@${m.clientHost}`);
        out.push({ kind: KIND.group, name: g.groupId, where, ...(members.length > 0 ? { inUse: `has ${members.length} member${members.length === 1 ? '' : 's'} (${[...new Set(members)].join(', ')})` } : {}) });
      }
    }

    const t = pipelineTopics(this.config, this.name);
    for (const topic of t.own) if (existing.has(topic)) out.push({ kind: KIND.topic, name: topic, where, detail: await describe(topic) });
    // Change topics: kept while another pipeline of the config uses them, or another group reads them.
    const candidates = t.change.filter((c) => c.sharedWith.length === 0).map((c) => c.topic);
    const readers = await this.foreignReaders(candidates.filter((c) => existing.has(c)), groupIds.filter((g) => !mine.includes(g)));
    for (const c of t.change) {
      const keep = c.sharedWith.length > 0 ? `also the change topic of pipeline ${c.sharedWith.join(', ')}` : readers.has(c.topic) ? `read by consumer group ${readers.get(c.topic)!.join(', ')}` : undefined;
      if (existing.has(c.topic)) out.push({ kind: KIND.topic, name: c.topic, where, detail: await describe(c.topic), ...(keep ? { keep } : {}) });
    }
    out.push(...(await this.subjectItems(candidates.filter((c) => !readers.has(c)))));

    // This pipeline's entry of <prefix>.capture.offsets (the topic too when nothing else is in it).
    const streamOf = (name: string) => {
      const source = this.config.pipelines[name]!.source as { type: string };
      return sourceRegistration(source.type).streamId(source, name);
    };
    const slot = streamOf(this.name);
    const offsets = topics.captureOffsets(this.prefix);
    if (existing.has(offsets)) {
      const sameSlot = Object.keys(this.config.pipelines).filter((n) => n !== this.name && streamOf(n) === slot);
      out.push(...captureOffsetItems(offsets, slot, await this.liveOffsetKeys(offsets), sameSlot, where, [`backfill:${this.name}`]));
    }
    // The schema-change log of the pipeline's change topic prefix (src/capture/schema-changes.ts): with
    // the last pipeline of the config that writes change topics under that prefix (kept otherwise,
    // its records name their pipeline).
    const changePrefix = changeTopicPrefix(this.config, this.config.pipelines[this.name]!);
    const schemaLog = schemaChangesTopic(changePrefix);
    if (existing.has(schemaLog)) {
      const sharing = Object.keys(this.config.pipelines).filter((n) => n !== this.name && changeTopicPrefix(this.config, this.config.pipelines[n]!) === changePrefix);
      out.push({ kind: KIND.topic, name: schemaLog, where, detail: await describe(schemaLog), ...(sharing.length > 0 ? { keep: `also the schema-change log of pipeline ${sharing.join(', ')}` } : {}) });
    }
    return out;
  }

  /** Change topics (of `topicsToCheck`) that a consumer group not of this pipeline has committed offsets on → those groups. */
  private async foreignReaders(topicsToCheck: string[], groups: string[]): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    if (topicsToCheck.length === 0) return out;
    await Promise.all(
      groups.map(async (g) => {
        const offsets = await this.kafka.withAdmin((admin) => admin.fetchOffsets({ groupId: g, topics: topicsToCheck })).catch(() => []); // a group gone meanwhile reads nothing
        for (const t of offsets) {
          if (t.partitions.some((p) => Number(p.offset) >= 0)) out.set(t.topic, [...(out.get(t.topic) ?? []), g]);
        }
      }),
    );
    return out;
  }

  private async liveOffsetKeys(topic: string): Promise<string[]> {
    const ranges = (await topicBounds(this.kafka, topic)).map((b) => ({ topic, partition: b.partition, from: b.low, to: b.high }));
    const records: { key: string | null; value: Buffer | null }[] = [];
    await readRanges(this.kafka, ranges, async (_t, _p, messages) => {
      for (const m of messages) records.push({ key: m.key?.toString() ?? null, value: m.value });
    }, { groupPrefix: 'syncline-drop-reader' });
    return liveKeys(records);
  }

  /**
   * Subjects (also soft-deleted ones) of the change topics this pipeline alone uses, asked one by one
   * (`GET /subjects` is not a complete list everywhere: Apicurio's answers at most 1,000).
   */
  private async subjectItems(changeTopics: string[]): Promise<PipelineResource[]> {
    const out: PipelineResource[] = [];
    for (const s of changeTopics.flatMap(subjectsOf)) {
      const url = `${this.registry}/subjects/${encodeURIComponent(s)}/versions?deleted=true`;
      let res: Response;
      try {
        res = await registryAccess(this.config.schemaRegistry).fetch(url, { signal: AbortSignal.timeout(15000) });
      } catch (err) {
        throw classifyNetworkError(err, `cannot reach the schema registry at ${address(this.registry)} (schemaRegistry.url)`);
      }
      const body = await res.text();
      if (res.status === 404) continue;
      if (!res.ok) throw classifyHttpStatus(res.status, `schema registry GET /subjects/${s}/versions: ${body.slice(0, 200)}`);
      out.push({ kind: KIND.subject, name: s, where: this.where.registry });
    }
    return out;
  }

  private async redisItems(): Promise<PipelineResource[]> {
    const pattern = redisPattern(this.keyPrefix, this.name);
    let n = 0;
    const sample: string[] = [];
    await this.scan(pattern, async (keys) => {
      n += keys.length;
      for (const k of keys) if (sample.length < 2) sample.push(JSON.stringify(k));
    });
    if (n === 0) return [];
    return [{ kind: KIND.redis, name: `${this.keyPrefix}:{${this.name}}:*`, where: this.where.redis, detail: `${n} key${n === 1 ? '' : 's'}, e.g. ${sample.join(', ')}` }];
  }

  /** SCAN MATCH over the whole keyspace (the pattern is escaped: key prefixes may hold glob metacharacters). */
  private async scan(pattern: string, each: (keys: string[]) => Promise<void>): Promise<void> {
    try {
      if (this.redis.status === 'wait') await this.redis.connect();
      await scanKeys(this.redis, pattern, each);
    } catch (err) {
      throw classifyRedisError(err, `${redisWhere(this.config.redis)}: SCAN ${pattern}`);
    }
  }

  /** Drop every item that is neither kept nor in use; what is already gone is skipped. */
  async drop(items: PipelineResource[]): Promise<void> {
    const todo = items.filter((i) => !i.keep && !i.inUse);
    // 1. The connectors' (slot first: no capture can resume the pipeline after this).
    for (const c of this.connectors) await c.drop(todo.filter((i) => this.byConnector.get(i) === c));
    const admin = await this.kafka.getAdmin();
    // 2. Consumer groups (empty: checked by list()).
    const groups = todo.filter((i) => i.kind === KIND.group).map((i) => i.name);
    if (groups.length > 0) {
      await admin.deleteGroups(groups).catch((err: { groups?: { groupId: string; error?: { type?: string; message?: string } }[] }) => {
        const failed = (err.groups ?? []).filter((g) => g.error && g.error.type !== 'GROUP_ID_NOT_FOUND');
        if (err.groups && failed.length === 0) return;
        if (failed.some((g) => g.error?.type === 'NON_EMPTY_GROUP')) {
          throw fatal('PIPELINE_RUNNING', `pipeline ${this.name}: consumer group ${failed.map((g) => g.groupId).join(', ')} got members meanwhile (a process of the pipeline started); stop it and run drop again`);
        }
        throw classifyNetworkError(err, `deleting consumer groups ${groups.join(', ')}`);
      });
    }
    // 3. The capture-offset entry: a tombstone (compaction removes it; readers already see none).
    const topicNames = todo.filter((i) => i.kind === KIND.topic).map((i) => i.name);
    for (const i of todo.filter((x) => x.kind === KIND.offset)) {
      const [topic, slot] = i.name.split(' key ') as [string, string];
      // With the stream's entry, the pipeline's backfill state in the same topic (src/capture/backfill.ts).
      if (!topicNames.includes(topic)) await this.kafka.send([{ topic, key: Buffer.from(slot), value: null }, { topic, key: Buffer.from(`backfill:${this.name}`), value: null }]);
    }
    // 4. Topics, waited for until the cluster no longer lists them.
    if (topicNames.length > 0) {
      await admin.deleteTopics({ topics: topicNames, timeout: 30000 }).catch((err: { type?: string }) => {
        if (err?.type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw classifyNetworkError(err, `deleting topics ${topicNames.join(', ')}`);
      });
      for (let i = 0; ; i++) {
        const left = new Set(await admin.listTopics());
        if (!topicNames.some((t) => left.has(t))) break;
        if (i >= 120) throw fatal('DROP_INCOMPLETE', `topics still listed 60 s after their deletion: ${topicNames.filter((t) => left.has(t)).join(', ')}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    // 5. Registry subjects: soft delete, then permanent (a 404 means already gone).
    for (const s of todo.filter((i) => i.kind === KIND.subject)) {
      for (const q of ['', '?permanent=true']) {
        const res = await registryAccess(this.config.schemaRegistry).fetch(`${this.registry}/subjects/${encodeURIComponent(s.name)}${q}`, { method: 'DELETE', signal: AbortSignal.timeout(15000) }).catch((err: unknown) => {
          throw classifyNetworkError(err, `schema registry DELETE subject ${s.name}`);
        });
        if (!res.ok && res.status !== 404) throw classifyHttpStatus(res.status, `schema registry DELETE subject ${s.name}${q}: ${(await res.text()).slice(0, 200)}`);
      }
    }
    // 6. Redis keys, in the batches SCAN returns.
    if (todo.some((i) => i.kind === KIND.redis)) {
      await this.scan(redisPattern(this.keyPrefix, this.name), async (keys) => {
        await unlinkKeys(this.redis, keys);
      });
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.connectors.map((c) => c.close()));
    await this.kafka.close();
    this.redis.disconnect();
  }
}

async function confirm(name: string, n: number): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`drop these ${n} things of pipeline ${name}? type its name to confirm: `);
    return answer.trim() === name;
  } finally {
    rl.close();
  }
}

/** The command; returns the exit code. Output goes to `out`, refusals and errors to `err`. */
export async function pipelineDrop(name: string, o: DropOptions, out = process.stdout, err = process.stderr): Promise<number> {
  const config = loadConfig(o.config);
  if (!config.pipelines[name]) {
    err.write(`syncline pipeline drop: no pipeline '${name}' in ${o.config} (have: ${Object.keys(config.pipelines).join(', ') || 'none'}); drop needs the pipeline's config to find its slot, databases and names\n`);
    return 2;
  }
  const d = new PipelineDropper(config, name);
  try {
    const items = await d.list();
    const toDrop = items.filter((i) => !i.keep && !i.inUse);
    out.write(renderPlan(name, o.config, items) + '\n');
    const running = runningMessage(name, items);
    if (running) {
      err.write(`syncline pipeline drop: refused: ${running}\n`);
      return 1;
    }
    if (toDrop.length === 0) {
      out.write(`nothing to drop: pipeline ${name} has nothing left in PostgreSQL, Kafka, the registry or Redis${items.length > 0 ? ' but what other pipelines share (kept above)' : ''}\n`);
      return 0;
    }
    out.write('never touched: the target tables and their rows; the transactional id of a split deployment\'s processor expires in Kafka by itself (transactional.id.expiration.ms, 7 days)\n');
    if (o.dryRun) {
      out.write(`dry run: nothing was removed (run without --dry-run to drop these ${toDrop.length})\n`);
      return 0;
    }
    if (!o.yes) {
      if (!process.stdin.isTTY) {
        err.write('syncline pipeline drop: refused: no terminal to confirm on; pass --yes to drop without asking (or --dry-run to only list)\n');
        return 2;
      }
      if (!(await confirm(name, toDrop.length))) {
        err.write('syncline pipeline drop: not confirmed; nothing was removed\n');
        return 2;
      }
    }
    await d.drop(items);
    // What was meant to go must be gone: list again.
    const left = (await d.list()).filter((i) => !i.keep && !i.inUse);
    if (left.length > 0) throw fatal('DROP_INCOMPLETE', `still there after the drop: ${left.map((i) => `${i.kind} ${i.name}`).join(', ')}`);
    out.write(`dropped ${toDrop.length}: ${toDrop.map((i) => `${i.kind} ${i.name}`).join('; ')}\n`);
    return 0;
  } catch (e) {
    err.write(`syncline pipeline drop: ${errorCode(e)}: ${errorMessage(e)}\n`);
    return 1;
  } finally {
    await d.close();
  }
}
