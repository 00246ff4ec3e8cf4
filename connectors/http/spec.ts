/** Config spec of the HTTP API sink connector (registered in ./index.ts). */
import { z } from 'zod';
import { retryOverrideSpec } from '../../src/core/config/schema.js';
import { templateIssue } from './template.js';

const METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;

const urlTemplate = (what: string) =>
  z
    .string()
    .min(1)
    .superRefine((v, ctx) => {
      const issue = templateIssue(v);
      if (issue) ctx.addIssue({ code: 'custom', message: issue });
    })
    .describe(`${what} URL template: {table} is the target table (canonical name, URL-encoded), {key.<column>} a key column's value, {key} the key values joined by ',' (each URL-encoded).`);

const operationSpec = (method: (typeof METHODS)[number], what: string) =>
  z
    .object({
      method: z.enum(METHODS).default(method).describe(`HTTP method of ${what}.`),
      url: urlTemplate(`${what}: overrides the target's url;`).optional(),
    })
    .strict()
    .prefault({})
    .describe(`How ${what} is sent.`);

export const httpSinkSpec = z
  .object({
    type: z.literal('http'),
    url: urlTemplate('Per-change').meta({ examples: ['https://api.example.com/v1/{table}/{key.id}'] }),
    operations: z
      .object({
        insert: operationSpec('POST', 'an insert or a snapshot row (a change without the update flag)'),
        update: operationSpec('PUT', 'an update of an existing source row'),
        delete: operationSpec('DELETE', 'a delete (no body)'),
        truncate: z
          .object({ method: z.enum(METHODS).default('DELETE').describe('HTTP method of a truncate.'), url: urlTemplate('Truncate (only {table} applies);') })
          .strict()
          .optional()
          .describe('How a source TRUNCATE is sent. Without it a truncate is dead-lettered (HTTP_TRUNCATE_UNSUPPORTED).'),
      })
      .strict()
      .prefault({})
      .describe('Method (and optionally URL) per kind of change. A change is an insert when the record has no update flag (inserts and snapshot rows), an update when it has (SinkRecord.update).'),
    batch: z
      .object({
        enabled: z.boolean().default(false).describe('Send changes batched: a JSON array of {op, table, key, values, position} per request, POSTed to `url`.'),
        url: z.string().url().optional().describe('Batch endpoint (required when enabled).'),
        maxRecords: z.number().int().min(1).max(10_000).default(100).describe('Most changes per request.'),
      })
      .strict()
      .prefault({})
      .describe('Batched requests. A batch answered with a poison status (4xx but 401/403/408/429) is sent again change by change, so only the refused ones are dead-lettered.'),
    headers: z.record(z.string(), z.string()).default({}).describe('Headers of every request (e.g. Authorization: "Bearer ${API_TOKEN}"): use ${ENV} interpolation for secrets.').meta({ secret: true }),
    idempotencyHeader: z.string().min(1).default('Idempotency-Key').describe("Header carrying the change's idempotency key: <position>/<16 hex of sha256(table, key)> (a batch: sha256 of its changes' keys). A retried or replayed change carries the same key, so the server can recognise it."),
    signature: z
      .object({
        secret: z.string().min(1).describe('HMAC-SHA256 key; use ${ENV} interpolation.').meta({ secret: true }),
        header: z.string().min(1).default('X-Syncline-Signature').describe('Header carrying sha256=<hex HMAC-SHA256 of the request body>.'),
      })
      .strict()
      .optional()
      .describe('Sign each request body.'),
    read: z
      .object({ url: urlTemplate('GET of the current object of a key;') })
      .strict()
      .optional()
      .describe(
        'GET of the current object, used only to fill the columns an update left unchanged (PostgreSQL unchanged TOAST values) from the server\'s current object. Without it such an update is dead-lettered (HTTP_UNCHANGED_COLUMNS) rather than sent with a column missing.',
      ),
    timeoutMs: z.number().int().min(100).max(600_000).default(10_000).describe('Timeout of one request; a request that times out is retried.'),
    concurrency: z.number().int().min(1).max(256).default(8).describe('Requests in flight per batch. Keys are spread over this many lanes by hash; a lane sends its changes in order, so the changes of one key never overtake each other.'),
    health: z.object({ url: z.string().url().describe('URL GET by ping (readiness, doctor); any status below 500 counts as reachable.') }).strict().optional().describe('Health check; without it ping only checks the url host answers TCP.'),
    retry: retryOverrideSpec.optional().describe('Retry policy of requests to this target; overrides the pipeline and default policy option by option.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.batch.enabled && !c.batch.url) ctx.addIssue({ code: 'custom', path: ['batch', 'url'], message: 'batch.enabled needs batch.url (the endpoint the JSON arrays are POSTed to)' });
    if (c.operations.truncate && /\{key/.test(c.operations.truncate.url)) ctx.addIssue({ code: 'custom', path: ['operations', 'truncate', 'url'], message: 'a truncate has no key: only {table} applies' });
  })
  .describe(
    'HTTP API target: each change a request (or batched JSON arrays), method per operation, URL templated with table and key, Idempotency-Key per change, optional HMAC signature. Conflict strategy must be source-wins (the target rows cannot be read back faithfully). connectors/http/README.md.',
  );

export type HttpSinkConfig = z.infer<typeof httpSinkSpec>;
