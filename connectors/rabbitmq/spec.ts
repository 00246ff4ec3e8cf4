/** Config spec of the RabbitMQ connector (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';
import { templateProblem } from './message.js';

export const rabbitmqConnectionSpec = z
  .object({
    host: z.string().default('127.0.0.1').describe('RabbitMQ host.'),
    port: z.number().int().min(1).max(65535).default(5672).describe('AMQP 0-9-1 port (5671 is the usual one with TLS).'),
    user: z.string().default('guest').describe('User name.'),
    password: z.string().default('guest').describe("Password (RabbitMQ's own guest/guest only works from localhost).").meta({ secret: true }),
    vhost: z.string().default('/').describe('Virtual host.'),
    heartbeatS: z.number().int().min(0).max(3600).default(30).describe('AMQP heartbeat in seconds (0: none): a dead peer is noticed after about twice this.'),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000).describe('How long opening a connection may take.'),
    ssl: z.boolean().default(false).describe('Connect with TLS (amqps). The server certificate is verified against the system CAs (or sslCaFile) and its name against host.'),
    sslCaFile: z.string().optional().describe('PEM file of the CA certificate(s) that signed the server certificate (a private CA), instead of the system CAs.').meta({ examples: ['/etc/syncline/rabbitmq-ca.pem'] }),
    sslVerify: z.boolean().default(true).describe('false: TLS without verifying the server certificate: encrypted but not authenticated; a warning says so. For tests, not production.'),
  })
  .strict()
  .prefault({})
  .describe('RabbitMQ broker.');

export type RabbitmqConnection = z.infer<typeof rabbitmqConnectionSpec>;

export const rabbitmqSinkSpec = z
  .object({
    type: z.literal('rabbitmq'),
    connection: rabbitmqConnectionSpec,
    exchange: z
      .string()
      .min(1)
      .max(255)
      .describe('Exchange every change is published to (connectors/rabbitmq/README.md: the message format).')
      .meta({ examples: ['shop.changes'] }),
    exchangeType: z.enum(['topic', 'direct', 'fanout', 'headers']).default('topic').describe('Type of the exchange, when syncline declares it (declare: true).'),
    declare: z
      .boolean()
      .default(true)
      .describe('Declare the exchange (durable) at connect, as exchangeType. false: it must exist already; a missing one stops the pipeline (RABBITMQ_404).'),
    routingKey: z
      .string()
      .min(1)
      .default('{table}.{op}')
      .superRefine((t, ctx) => {
        const why = templateProblem(t);
        if (why) ctx.addIssue({ code: 'custom', message: why });
      })
      .describe(
        'Routing key of each message, a template: {table} the target table as mapped (public.items), {schema} and {name} its two parts, {op} upsert, delete or truncate, {key} the key values in key column order joined by "." (empty for a truncate). A routing key longer than 255 bytes dead-letters its change (RABBITMQ_ROUTING_KEY).',
      )
      .meta({ examples: ['{table}.{op}', 'cdc.{name}.{key}'] }),
    mandatory: z
      .boolean()
      .default(true)
      .describe(
        'Publish with the mandatory flag: a change the exchange routes to no queue comes back and is dead-lettered as RABBITMQ_UNROUTABLE (with the exchange and routing key), the rest of the batch flows on. false: the broker drops such a message silently.',
      ),
    channels: z.number().int().min(1).max(64).default(4).describe('Idle confirm channels kept open for the next batches. Each batch publishes on a channel of its own (its keys in order), opened when none is idle; batches in flight are bounded by the processor (one per Kafka partition).'),
    confirmTimeoutMs: z.number().int().min(100).max(3_600_000).default(30_000).describe("How long a batch waits for the broker's publisher confirms before it fails (retriable) and is published again."),
    maxMessageBytes: z
      .number()
      .int()
      .min(1024)
      .max(536_870_912)
      .default(16 * 1024 * 1024)
      .describe("Largest message body published; a change whose body is larger is dead-lettered (RABBITMQ_MESSAGE_TOO_LARGE). Keep it at or below the broker's max_message_size (16 MiB by default in RabbitMQ 4)."),
    retry: retryOverrideSpec.optional().describe('Retry policy of publishes to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe(
    'RabbitMQ target: each change published as a persistent JSON message to one exchange, with publisher confirms (a change counts as applied once the broker confirmed it). Conflict strategies other than source-wins are refused: the broker cannot give back a row to compare with (connectors/rabbitmq/README.md).',
  );

export type RabbitmqSinkConfig = z.infer<typeof rabbitmqSinkSpec>;
