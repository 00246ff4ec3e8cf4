/** Kafka, registry and Redis clients for one-shot CLI commands (dlq, replay), closed by close(). */
import '../../connectors/index.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { AvroCodec } from '../core/codec.js';
import { KafkaClient } from '../core/kafka.js';
import { rootLogger } from '../core/log.js';
import { audit, setProcessActor } from '../security/audit/recorder.js';
import { cliUser } from './who.js';
import { createRedis } from '../core/redis.js';

export async function openClients(config: SynclineConfig) {
  const log = rootLogger.child({ stage: 'cli' });
  const kafka = new KafkaClient(config.kafka, log.child({ stage: 'kafka' }));
  const codec = new AvroCodec(config.schemaRegistry);
  const redis = createRedis(config.redis, { maxRetriesPerRequest: 3 });
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis.error'));
  await redis.connect();
  // What the command does is recorded in the audit trail, done by the user running it.
  const auditing = audit.configure(config.audit, log.child({ stage: 'audit' }));
  setProcessActor({ actor: cliUser() });
  return {
    config, kafka, codec, redis, log,
    async close() {
      await kafka.close();
      redis.disconnect();
      if (auditing) await audit.release();
    },
  };
}
