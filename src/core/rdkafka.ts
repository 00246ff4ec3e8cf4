/**
 * The librdkafka producer (config `kafka.producer: librdkafka`): @confluentinc/kafka-javascript's
 * KafkaJS-compatible API, behind KafkaClient's BatchProducer. The package is optional (a native
 * addon: a prebuilt binary from GitHub, or built from its bundled librdkafka sources with a C
 * toolchain), so it is loaded only when configured, and a missing package is a fatal error that
 * says how to install it.
 *
 * Same guarantees as the kafkajs producer: idempotent (no duplicates or reordering from retries),
 * acks=all, messages sent with an explicit partition. librdkafka batches and pipelines the requests
 * itself (linger 5 ms, up to 5 in flight, which idempotence keeps in order).
 */
import type { Message } from 'kafkajs';
import type { Logger } from 'pino';
import { classifyNetworkError, fatal } from './errors.js';
import type { BatchProducer, KafkaSettings } from './kafka-settings.js';

export const RDKAFKA_PACKAGE = '@confluentinc/kafka-javascript';

/** The subset of the package's KafkaJS-compatible API used here. */
interface RdProducer {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  sendBatch(args: { topicMessages: { topic: string; messages: Message[] }[] }): Promise<unknown>;
}
interface RdKafkaJs {
  Kafka: new (cfg: unknown) => { producer(cfg: unknown): RdProducer };
  logLevel: Record<string, number>;
  CompressionTypes: Record<string, string>;
}

/** Load the optional package (undefined when it is not installed or its binary does not load). */
export async function loadRdkafka(): Promise<{ api?: RdKafkaJs; error?: string }> {
  try {
    const name: string = RDKAFKA_PACKAGE;
    const mod = (await import(name)) as { KafkaJS?: RdKafkaJs; default?: { KafkaJS?: RdKafkaJs } };
    const api = mod.KafkaJS ?? mod.default?.KafkaJS;
    return api ? { api } : { error: 'the package has no KafkaJS export' };
  } catch (err) {
    return { error: (err as Error).message.split('\n')[0] };
  }
}

export async function rdkafkaProducer(settings: KafkaSettings, log: Logger): Promise<BatchProducer> {
  const { api, error } = await loadRdkafka();
  if (!api) {
    throw fatal('KAFKA_PRODUCER_UNAVAILABLE', `kafka.producer is librdkafka, but ${RDKAFKA_PACKAGE} cannot be loaded (${error}); install it (npm install ${RDKAFKA_PACKAGE}) or set kafka.producer: kafkajs`);
  }
  const kafka = new api.Kafka({ kafkaJS: { brokers: settings.brokers, clientId: settings.clientId, logLevel: api.logLevel.ERROR } });
  const producer = kafka.producer({
    kafkaJS: { idempotent: true, acks: -1, compression: api.CompressionTypes.None ?? 'none', maxInFlightRequests: 5, allowAutoTopicCreation: false },
    'linger.ms': 5,
    // One change may be large (the topics take 16 MB messages).
    'message.max.bytes': 16 * 1024 * 1024 + 1024 * 1024,
    // kafka.ssl / kafka.sasl as librdkafka's properties (the same meaning as kafkajs' in ./kafka.ts).
    ...(settings.ssl || settings.sasl ? { 'security.protocol': settings.ssl ? (settings.sasl ? 'sasl_ssl' : 'ssl') : 'sasl_plaintext' } : {}),
    ...(settings.ssl?.caFile ? { 'ssl.ca.location': settings.ssl.caFile } : {}),
    ...(settings.ssl ? { 'enable.ssl.certificate.verification': settings.ssl.verify, 'ssl.endpoint.identification.algorithm': settings.ssl.verify ? 'https' : 'none' } : {}),
    ...(settings.sasl ? { 'sasl.mechanisms': settings.sasl.mechanism.toUpperCase(), 'sasl.username': settings.sasl.username, 'sasl.password': settings.sasl.password } : {}),
  } as never);
  try {
    await producer.connect();
  } catch (err) {
    throw classifyNetworkError(err, `cannot connect to Kafka at ${settings.brokers.join(',')} (librdkafka producer)`);
  }
  log.info({ client: RDKAFKA_PACKAGE }, 'kafka.producer.librdkafka');
  return {
    async sendBatch(topicMessages) {
      await producer.sendBatch({ topicMessages });
    },
    disconnect: () => producer.disconnect(),
  };
}
