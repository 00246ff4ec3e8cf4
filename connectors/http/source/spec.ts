/**
 * Config spec of the HTTP API source (`type: http` under a pipeline's `source`), registered in
 * ./index.ts. One endpoint per table of the pipeline, listed page by page each pass; tracking modes
 * as the polling sources' (src/capture/poll/README.md): hash (full listing, finds deletes),
 * timestamp or version (an incremental query parameter such as updated_since).
 */
import { z } from 'zod';
import { pathIssue } from './jsonpath.js';

const path = (what: string) =>
  z
    .string()
    .min(1)
    .superRefine((v, ctx) => {
      const issue = pathIssue(v);
      if (issue) ctx.addIssue({ code: 'custom', message: issue });
    })
    .describe(`${what}: a path of the JSONPath subset $, .name, ['name'], [n], [*] (connectors/http/README.md).`);

export const HTTP_COLUMN_TYPES = ['string', 'int', 'long', 'double', 'decimal', 'bool', 'timestamptz', 'date', 'json'] as const;

const columnSpec = z
  .object({
    path: path('Where the value is in a record (relative to the record: $.id, $.owner.name)').optional(),
    type: z.enum(HTTP_COLUMN_TYPES).describe('string (text), int (int4), long (int8), double (float8), decimal (numeric, the number as printed), bool, timestamptz (ISO 8601 text; without an offset: UTC), date (YYYY-MM-DD), json (any JSON value, stored as jsonb). A value of another JSON type dead-letters its record.'),
  })
  .strict()
  .describe('One column: its path in the record (default $.<column name>) and type. A missing or null value is NULL.');

const paginationSpec = z
  .discriminatedUnion('type', [
    z.object({ type: z.literal('none').describe('One request per listing.') }).strict(),
    z
      .object({
        type: z.literal('cursor').describe('Each response carries the cursor of the next page; the listing ends when it is missing, null or empty.'),
        param: z.string().min(1).default('cursor').describe('Query parameter carrying the cursor.'),
        path: path('Where the next cursor is in the response body').default('$.next_cursor'),
      })
      .strict(),
    z
      .object({
        type: z.literal('page').describe('Numbered pages; the listing ends at a page with fewer records than `size` (or none).'),
        param: z.string().min(1).default('page').describe('Query parameter carrying the page number.'),
        start: z.number().int().min(0).default(1).describe('Number of the first page.'),
        sizeParam: z.string().min(1).optional().describe('Query parameter carrying the page size (sent with `size`).'),
        size: z.number().int().min(1).max(100_000).optional().describe('Records per page: a shorter page is the last. Without it only an empty page ends the listing.'),
      })
      .strict(),
    z
      .object({
        type: z.literal('offset').describe('offset/limit; the listing ends at a page with fewer records than `limit`.'),
        param: z.string().min(1).default('offset').describe('Query parameter carrying the offset (records skipped).'),
        limitParam: z.string().min(1).default('limit').describe('Query parameter carrying the limit.'),
        limit: z.number().int().min(1).max(100_000).default(100).describe('Records per page.'),
      })
      .strict(),
    z.object({ type: z.literal('link').describe("The response's `Link: <url>; rel=\"next\"` header names the next page (RFC 8288); the listing ends without one.") }).strict(),
  ])
  .describe(
    "How the pages of a listing follow each other, by `type`: none (one request); cursor {param: 'cursor', path: '$.next_cursor'} (the next page is the request with param = the value at path in the body; a missing, null or empty value ends); page {param: 'page', start: 1, sizeParam?, size?} (numbered pages; a page shorter than size, or empty, ends); offset {param: 'offset', limitParam: 'limit', limit: 100} (a page shorter than limit ends); link (the Link header's rel=\"next\" URL; none ends). Offset and page numbers shift when records are inserted or deleted during a listing: a record can be listed twice (emitted once) or missed for a pass (hash mode may then delete it and insert it again at the next pass); prefer cursor or link pagination where the API has it.",
  );

export type Pagination = z.infer<typeof paginationSpec>;

export const httpEndpointSpec = z
  .object({
    url: z.string().url().describe('URL of the listing (GET). Its own query parameters are kept.').meta({ examples: ['https://api.example.com/v1/customers'] }),
    params: z.record(z.string(), z.string()).default({}).describe('Query parameters added to every request of the listing.'),
    pagination: paginationSpec.prefault({ type: 'none' }),
    recordsPath: path('Where the records array is in a response body (a missing or null array is an empty page)').default('$').meta({ examples: ['$.data.items', '$.results[*]'] }),
    columns: z.record(z.string(), columnSpec).refine((c) => Object.keys(c).length > 0, 'at least one column').describe('The table\'s columns, in order: name → {path, type}. Fields of a record not listed are ignored.'),
    key: z.array(z.string().min(1)).min(1).describe('Columns that identify a record (each must be in columns; a record without them is dead-lettered).'),
    mode: z
      .enum(['hash', 'timestamp', 'version'])
      .default('hash')
      .describe('hash: the whole listing each pass, compared key by key with the last pass (finds inserts, updates and deletes). timestamp / version: after the first pass, only the records changed since the watermark (minus the overlap) are asked for with `since.param`; never sees deletes.'),
    column: z.string().min(1).optional().describe('timestamp / version: the tracking column (a timestamptz column for timestamp, long for version) whose highest value seen is the watermark.'),
    since: z
      .object({
        param: z.string().min(1).describe('Query parameter carrying the lower bound.').meta({ examples: ['updated_since'] }),
        format: z.enum(['iso', 'epoch-ms', 'epoch-s']).default('iso').describe('timestamp: how the bound is written: ISO 8601 UTC with milliseconds, or milliseconds / seconds since the epoch (rounded down). version: always the number.'),
      })
      .strict()
      .optional()
      .describe('timestamp / version: the incremental parameter, sent with the watermark minus the overlap. The API must return every record whose tracking value is at or after it.'),
    overlapMs: z.number().int().min(0).default(5000).describe('timestamp: how far before the watermark each pass asks again. Must cover the duration of a listing plus the time between a record\'s timestamp and its being listed. Records read again unchanged are not emitted twice.'),
    overlap: z.number().int().min(0).default(0).describe('version: how many units below the watermark each pass asks again.'),
  })
  .strict()
  .superRefine((e, ctx) => {
    const names = Object.keys(e.columns);
    for (const [i, k] of e.key.entries()) if (!names.includes(k)) ctx.addIssue({ code: 'custom', path: ['key', i], message: `key column '${k}' is not in columns (have: ${names.join(', ')})` });
    if (e.mode !== 'hash') {
      if (!e.column) ctx.addIssue({ code: 'custom', path: ['column'], message: `mode ${e.mode} needs a tracking column` });
      else if (!names.includes(e.column)) ctx.addIssue({ code: 'custom', path: ['column'], message: `tracking column '${e.column}' is not in columns (have: ${names.join(', ')})` });
      else {
        const want = e.mode === 'timestamp' ? 'timestamptz' : 'long';
        if (e.columns[e.column]!.type !== want) ctx.addIssue({ code: 'custom', path: ['column'], message: `mode ${e.mode} needs a ${want} tracking column; '${e.column}' is ${e.columns[e.column]!.type}` });
      }
      if (!e.since) ctx.addIssue({ code: 'custom', path: ['since'], message: `mode ${e.mode} needs since.param (the query parameter of the incremental listing)` });
    }
  })
  .describe('One table read from an HTTP API listing.');

export type HttpEndpoint = z.infer<typeof httpEndpointSpec>;

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name');

export const httpAuthSpec = z
  .object({
    bearer: z.object({ env: envName.describe('Environment variable holding the token.') }).strict().optional().describe('Authorization: Bearer <token>.'),
    basic: z.object({ userEnv: envName.describe('Environment variable holding the user.'), passwordEnv: envName.describe('Environment variable holding the password.') }).strict().optional().describe('Authorization: Basic base64(user:password).'),
    header: z.object({ name: z.string().min(1).describe('Header name.').meta({ examples: ['X-Api-Key'] }), env: envName.describe('Environment variable holding its value.') }).strict().optional().describe('A header of your choice.'),
  })
  .strict()
  .refine((a) => [a.bearer, a.basic, a.header].filter(Boolean).length <= 1, 'give one of bearer, basic, header')
  .describe('Credentials, taken only from environment variables (never written in the config, never logged). A variable that is not set stops the start naming it.');

export const httpSourceSpec = z
  .object({
    type: z.literal('http'),
    endpoints: z.record(z.string(), httpEndpointSpec).describe('One endpoint per table, by its name as in tables[].source (e.g. api.customers: schema api, table customers).'),
    auth: httpAuthSpec.optional(),
    headers: z.record(z.string(), z.string()).default({}).describe('Extra headers of every request (not secrets: use auth).'),
    rateLimit: z
      .object({
        requestsPerSecond: z.number().positive().max(10_000).describe('Average requests per second (a token bucket, retries included).'),
        burst: z.number().int().min(1).max(10_000).default(1).describe('Requests that may go at once after a quiet spell.'),
      })
      .strict()
      .optional()
      .describe('Limit of requests to the API. Without it requests go one after the other as fast as the API answers.'),
    timeoutMs: z.number().int().min(100).max(600_000).default(30_000).describe('Timeout of one request; a timed-out request is retried.'),
    retry: z
      .object({
        retries: z.number().int().min(0).max(1000).default(8).describe('Retries of one request (429, 408, 5xx, network errors, timeouts) before the pass fails (the capture is then restarted by the supervisor and reads again from its last acknowledged pass).'),
        initialDelayMs: z.number().int().min(0).default(500).describe('Delay before the first retry (a Retry-After from the server replaces it).'),
        maxDelayMs: z.number().int().min(0).default(30_000).describe('Upper bound of a computed delay.'),
      })
      .strict()
      .prefault({})
      .describe('Retries of a request. 401/403 stop the capture (credentials); any other 4xx stops it naming the URL and the first KB of the body.'),
    intervalMs: z.number().int().min(10).max(86_400_000).default(60_000).describe('Realtime mode: the wait between the end of one pass and the start of the next.'),
    stateDir: z
      .string()
      .min(1)
      .default('.syncline/poll')
      .describe('Directory where hash mode keeps each endpoint\'s per-key content hashes (one file per acknowledged pass, under <stateDir>/<stream id>/). Lost: those endpoints are read again as a snapshot (its sweep deletes what is gone).'),
    batchSize: z.number().int().min(1).max(100000).default(2000).describe('Changes per Kafka produce batch.'),
    lingerMs: z.number().int().min(0).max(10000).default(20).describe('How long capture waits to fill a batch before producing it.'),
  })
  .strict()
  .describe('HTTP API listings polled page by page (cursor, page, offset or Link pagination), tracked by content hash (deletes found) or an incremental parameter (timestamp, version). connectors/http/README.md.');

export type HttpSourceConfig = z.infer<typeof httpSourceSpec>;
