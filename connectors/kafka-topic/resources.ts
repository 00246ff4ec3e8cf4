/**
 * What a Kafka topic source creates for its pipeline: its consumer group (the committed offsets,
 * i.e. its position) on the cluster that holds the topics. `syncline pipeline drop` lists it
 * (in use while the group has members: a capture is running) and deletes it; the topics are someone
 * else's and are never listed.
 */
import pino from 'pino';
import { KafkaClient } from '../../src/core/kafka.js';
import type { ConnectorResources, PipelineResource, ResourceContext } from '../../src/core/resources.js';
import type { KafkaTopicSourceConfig } from './spec.js';

export function kafkaTopicResources(config: KafkaTopicSourceConfig, ctx: ResourceContext): ConnectorResources {
  const client = new KafkaClient({ brokers: config.brokers, clientId: 'syncline-kafka-topic-drop', partitions: 1, replicationFactor: 1, retentionDays: 1 }, pino({ level: 'silent' }));
  const where = `kafka ${config.brokers.join(',')}`;
  return {
    async list(): Promise<PipelineResource[]> {
      const admin = await client.getAdmin();
      const { groups } = await admin.listGroups();
      if (!groups.some((g) => g.groupId === config.group)) return [];
      const [g] = (await admin.describeGroups([config.group])).groups;
      const r: PipelineResource = { kind: 'consumer group', name: config.group, where, detail: `offsets of ${config.topics.map((t) => t.topic).join(', ')}` };
      const shared = ctx.others.find((o) => (o.config as { type?: string; group?: string } | null)?.type === 'kafka-topic' && (o.config as { group?: string }).group === config.group);
      if (shared) r.keep = `pipeline ${shared.name} reads with it too`;
      else if (g && g.members.length > 0) r.inUse = `${g.members.length} member(s) (a running capture of pipeline ${ctx.pipeline})`;
      return [r];
    },
    async drop(resources: PipelineResource[]): Promise<void> {
      if (!resources.some((r) => r.kind === 'consumer group' && r.name === config.group)) return;
      const admin = await client.getAdmin();
      const { groups } = await admin.listGroups();
      if (groups.some((g) => g.groupId === config.group)) await admin.deleteGroups([config.group]);
    },
    close: () => client.close(),
  };
}
