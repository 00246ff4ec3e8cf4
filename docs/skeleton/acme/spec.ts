/**
 * Config specs of the imaginary "acme" connectors (docs/adding-a-connector.md). One strict zod
 * object per side, `type` a literal; every field described, defaults where they make sense,
 * examples in .meta({ examples }), credentials .meta({ secret: true }) (ADR 0005). The loader puts
 * them in the `source` / `target` unions; `npm run docs:config` documents them.
 *
 * In a real connector this file is connectors/acme/spec.ts (imports one `../` shorter).
 */
import { z } from 'zod';
import { retryOverrideSpec } from '../../../src/core/config/schema.js';
import { NAME_RE, NAME_RULE } from '../../../src/core/names.js';

/** One connection block for every side: TLS options mean the same to the source, the monitor, the sink and `pipeline drop`. */
export const acmeConnectionSpec = z
  .object({
    host: z.string().default('127.0.0.1').describe('Host name or address of the Acme server.'),
    port: z.number().int().min(1).max(65535).default(7700).describe('TCP port.'),
    database: z.string().min(1).describe('Acme database.').meta({ examples: ['shop'] }),
    user: z.string().min(1).describe('User name.').meta({ examples: ['syncline'] }),
    password: z.string().optional().describe('Password; use ${ENV_VAR} interpolation, never a literal.').meta({ secret: true }),
    ssl: z.boolean().default(false).describe('Connect with TLS; the server certificate is verified against the system CAs (or sslCaFile) and its name against host.'),
    sslCaFile: z.string().optional().describe('PEM file of the CA certificate(s) that signed the server certificate.').meta({ examples: ['/etc/syncline/acme-ca.pem'] }),
    sslVerify: z.boolean().default(true).describe('false: TLS without verifying the server certificate (encrypted, not authenticated). For tests.'),
  })
  .strict()
  .describe('Acme connection.');

export type AcmeConnection = z.infer<typeof acmeConnectionSpec>;

export const acmeSourceSpec = z
  .object({
    type: z.literal('acme'),
    connection: acmeConnectionSpec,
    // The stream's id: the key of the pipeline's record in <prefix>.capture.offsets (CaptureOffset.slot),
    // which the registration's streamId() returns so that `syncline pipeline drop` finds it.
    slot: z
      .string()
      .regex(NAME_RE, NAME_RULE)
      .describe(`Id of this pipeline's change stream, the key of its record in <prefix>.capture.offsets: ${NAME_RULE}. Two pipelines may not share one.`)
      .meta({ examples: ['acme_orders'] }),
    snapshot: z.enum(['initial', 'never']).default('initial').describe('initial: copy every table once, then stream from the snapshot\'s position; never: stream only.'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
    saveEveryMs: z.number().int().min(100).default(1000).describe('How often the acknowledged log position is saved to <prefix>.capture.offsets.'),
  })
  .strict()
  .describe('Acme source read from the server\'s change log.');

export const acmeSinkSpec = z
  .object({
    type: z.literal('acme'),
    connection: acmeConnectionSpec,
    timeoutMs: z.number().int().min(100).default(10000).describe('Timeout of one request to the server.'),
    retry: retryOverrideSpec.optional().describe('Retry policy of writes to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .describe('Acme target written with idempotent batched upserts and deletes by key.');

export type AcmeSourceConfig = z.infer<typeof acmeSourceSpec>;
export type AcmeSinkConfig = z.infer<typeof acmeSinkSpec>;
