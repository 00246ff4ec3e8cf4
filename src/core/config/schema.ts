/**
 * The config spec: the single source for validation (with file and line of each mistake, see
 * load.ts), for the TypeScript types (z.infer) and for docs/config.md (scripts/gen-config-docs.ts).
 * Connector sections (`source`, `target`) come from the connector registry.
 */
import { z } from 'zod';
import { registeredSinks, registeredSources } from '../registry.js';
import { alertExprError } from '../../observe/alerts/expr.js';
import { parseWindow, timeZoneProblem, WindowSyntaxError } from '../../sync/windows.js';
import { cronProblem } from '../../sync/schedule.js';
import { canonicalTableName, cdcTopicName, kafkaCollisionKey, MAX_TOPIC_LENGTH, NAME_RE, NAME_RULE, NameError, parseTableName } from '../names.js';

const TABLE_NAME_RULE =
  "'schema.table'. Each part is bare (letters, digits, _ and $, not starting with a digit; taken as written, no case folding: public.Users is the table \"Users\") or double-quoted (any characters, a \" written twice: '\"My \"\" Schema\".\"Order Lines\"'); at most 63 bytes per part.";

/**
 * A table name as written in the config → its canonical form (src/core/names.ts), so that every
 * later comparison, map key and topic name sees one spelling. Description and examples sit on the
 * input side, where the docs generator reads them.
 */
const qualifiedTable = (description: string, examples?: string[]) =>
  z
    .string()
    .describe(`${description} ${TABLE_NAME_RULE}`)
    .meta(examples ? { examples } : {})
    .transform((text, ctx) => {
      try {
        return canonicalTableName(text);
      } catch (err) {
        if (!(err instanceof NameError)) throw err;
        ctx.addIssue({ code: 'custom', message: err.message });
        return z.NEVER;
      }
    });

/** Pipeline names: the one rule of syncline names (src/core/names.ts), also used by slots and publications. */
export const nameSpec = z.string().regex(NAME_RE, NAME_RULE);

export const conflictSpec = z
  .object({
    strategy: z
      .enum(['source-wins', 'target-wins', 'latest-timestamp', 'manual', 'custom'])
      .default('latest-timestamp')
      .describe(
        'How a conflict is settled. A conflict is a change whose target row was modified independently since syncline last wrote it (detected by reading the affected target rows once per batch, locked until the write commits), or, with latest-timestamp, whose timestamp is older than the target row\'s. source-wins: the change is written; target-wins: the target row is kept; latest-timestamp: the row with the later `field` wins, a tie goes to the greater content hash (the same answer on both sides of a two-way pair); manual: the change is parked in the dead-letter topic as a `conflict` (source, target and last-synced versions with a field diff) and later changes of its key wait behind it until an operator settles it (`syncline dlq`); custom: `module` decides.',
      ),
    field: z.string().default('updated_at').describe('Timestamp column compared by latest-timestamp.'),
    module: z
      .string()
      .min(1)
      .optional()
      .describe("strategy custom: ES module (path relative to this config file's directory) exporting resolve(conflict) → 'source' | 'target' | 'manual' | { merged: row } (or a merged row object), sync or async. conflict = { pipeline, table, op, key, source, target, lastSynced, position, sourceTsMs }. A resolver that throws or returns anything else parks the change as a `conflict` dead letter with the error; the pipeline goes on.")
      .meta({ examples: ['./resolve-orders.mjs'] }),
  })
  .strict()
  .describe('Conflict resolution.');

const retryFields = {
  retries: z.number().int().min(0).max(100).describe('Retries after the first attempt (attempts = retries + 1).'),
  initialDelayMs: z.number().int().min(0).describe('Delay before the first retry.'),
  maxDelayMs: z.number().int().min(0).describe('Upper bound of any computed delay.'),
  multiplier: z.number().min(1).describe('Growth factor of the delay.'),
  jitter: z.number().min(0).max(1).describe('Random spread of each delay, as a fraction (0.2 = ±20 %).'),
};
const delaysOrdered = (r: { initialDelayMs?: number; maxDelayMs?: number }) =>
  r.initialDelayMs === undefined || r.maxDelayMs === undefined || r.initialDelayMs <= r.maxDelayMs;
const delaysMessage = { message: 'initialDelayMs must not exceed maxDelayMs', path: ['initialDelayMs'] };

export const retrySpec = z
  .object({
    retries: retryFields.retries.default(3),
    initialDelayMs: retryFields.initialDelayMs.default(1000),
    maxDelayMs: retryFields.maxDelayMs.default(30000),
    multiplier: retryFields.multiplier.default(2),
    jitter: retryFields.jitter.default(0.2),
  })
  .strict()
  .refine(delaysOrdered, delaysMessage)
  .describe('Retry policy for retriable errors (then the record is dead-lettered). A server\'s Retry-After replaces the computed delay.');

/** Overrides of the retry policy (pipeline or connector level): only the options given change. */
export const retryOverrideSpec = z
  .object(retryFields)
  .partial()
  .strict()
  .refine(delaysOrdered, delaysMessage)
  .describe('Overrides of defaults.retry; options not given are inherited.');

export const batchSpec = z
  .object({
    size: z.number().int().min(1).max(50000).default(1000).describe('Most records written to a target in one transaction.'),
  })
  .strict()
  .describe('Sink batching.');

/** Rules of one field of a table (validation runs on the mapped record: target column names). */
export const fieldRuleSpec = z
  .object({
    required: z.boolean().optional().describe('The field must be present and not null. Other rules skip a null value.'),
    type: z
      .enum(['string', 'number', 'integer', 'boolean', 'date', 'datetime', 'uuid', 'object', 'array'])
      .optional()
      .describe("Kind of value. number accepts numeric columns' exact decimal strings and int8; date is 'YYYY-MM-DD', datetime 'YYYY-MM-DDTHH:MM:SS[.ffffff][Z]'; object/array: json/jsonb text of that shape (array also a PostgreSQL array)."),
    coerce: z
      .boolean()
      .optional()
      .describe("With type string, number, integer or boolean: a value of another kind that converts cleanly is converted (\"42\" → 42, \"true\" → true) and the conversion is recorded on the record; otherwise it is a violation."),
    format: z
      .enum(['email', 'phone', 'url', 'uri', 'uuid', 'hostname', 'ipv4', 'ipv6'])
      .optional()
      .describe('Text format: email, phone (E.164: + and 2 to 15 digits), url (http/https/ftp with a public host), uri (any absolute URI), uuid, hostname, ipv4, ipv6.'),
    pattern: z.string().optional().describe('Regular expression (JavaScript syntax, unicode mode) the text must match; anchor it with ^…$ to match the whole value.').meta({ examples: ['^[A-Z]{2}$'] }),
    min: z
      .union([z.number(), z.string()])
      .optional()
      .describe("Lower bound (inclusive): a number (exact for numeric and int8), or for dates and times an absolute date/date-time ('2020-01-01') or a duration relative to the validation time (-P1Y, P30D, -PT12H, now)."),
    max: z.union([z.number(), z.string()]).optional().describe('Upper bound (inclusive), same forms as min.').meta({ examples: ['now'] }),
    minLength: z.number().int().min(0).optional().describe('Fewest characters (Unicode code points) of a text, or items of an array.'),
    maxLength: z.number().int().min(0).optional().describe('Most characters (Unicode code points) of a text, or items of an array.'),
    enum: z
      .array(z.union([z.string(), z.number(), z.boolean()]))
      .min(1)
      .optional()
      .describe('Allowed values (numbers compare exactly: 2.50 equals 2.5).')
      .meta({ examples: [['active', 'vip']] }),
    custom: z
      .string()
      .regex(/^[A-Za-z_$][A-Za-z0-9_$]*$/, 'a function name')
      .optional()
      .describe("Name of a function exported by the pipeline's validation.module: fn(value, record) returns true (valid), false, or a message string (invalid). Not called for null."),
    sensitive: z.boolean().optional().describe("Mask this field's value ('***') in dead-letter violations."),
  })
  .strict()
  .describe('Rules of one field (a target column name). Every violated rule is reported, not only the first.');

/** A cross-field rule of a table. */
export const crossFieldRuleSpec = z
  .object({
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_-]*$/, 'letters, digits, _ and -').describe('Name of the rule (unique in the table); reported and counted by it.').meta({ examples: ['shipped_after_ordered'] }),
    check: z
      .string()
      .min(1)
      .describe("Condition every record must meet: fields, numbers, 'text', true/false/null, + - * / %, = != < <= > >=, and/or/not, is [not] null, sum(array), len(x), abs(x), coalesce(a, b). A null operand makes it unknown, which passes (as an SQL CHECK)."),
    message: z.string().optional().describe("Readable reason given when the check fails; default 'check failed: <check>'."),
  })
  .strict()
  .describe('A rule over several fields of the record.');

export const tableValidateSpec = z
  .object({
    fields: z.record(z.string(), fieldRuleSpec).optional().describe('Rules per field (target column name).'),
    rules: z.array(crossFieldRuleSpec).optional().describe('Cross-field rules.').meta({ examples: [[{ name: 'shipped_after_ordered', check: 'shipped_at >= ordered_at', message: 'shipped before it was ordered' }]] }),
  })
  .strict()
  .describe('Validation of inserted and updated rows (after column renames, before the target). An invalid record goes to the dead-letter topic as `invalid` with every violation listed; deletes and truncates are not validated.');

/** Pipeline-wide validation settings. */
export const pipelineValidationSpec = z
  .object({
    module: z.string().min(1).optional().describe("ES module exporting the functions named by `custom` rules; a path relative to this config file's directory.").meta({ examples: ['./validators.mjs'] }),
    mask: z.array(z.string().min(1)).optional().describe("Columns whose values are always masked ('***') in dead-letter violations, in every table.").meta({ examples: [['email', 'phone']] }),
  })
  .strict()
  .describe('Validation settings of the pipeline (the rules themselves are per table: tables[].validate).');

/** Change history of a pipeline or one table (src/history/): whether it is kept and for how long. */
export const historyRetentionSpec = z
  .object({
    enabled: z.boolean().default(true).describe('Keep the change history (a table inherits its pipeline\'s setting; `enabled: false` on a table turns it off there).'),
    days: z.number().int().min(1).max(36500).default(90).describe('Days a history entry is kept (by apply time). Whole day partitions are dropped once every table in them is past its retention; tables with fewer days than the longest have their older rows deleted.'),
    maxPerKey: z.number().int().min(1).max(100_000_000).default(10_000).describe('Most history entries kept per record key (the newest); older ones are trimmed by the pruning run. `history asof` refuses an instant older than what a trimmed key still reaches back to.'),
  })
  .strict();

/** A table's override: any field left out comes from the pipeline's history (or its defaults). */
export const tableHistorySpec = z
  .object({
    enabled: z.boolean().optional().describe('Keep this table\'s history (default: true when this section is given, else the pipeline\'s setting).'),
    days: z.number().int().min(1).max(36500).optional().describe('Days kept (default: the pipeline\'s, else 90).'),
    maxPerKey: z.number().int().min(1).max(100_000_000).optional().describe('Entries kept per key (default: the pipeline\'s, else 10,000).'),
  })
  .strict();


/** Scalar constants of `set` and `map` steps. */
const constantSpec = z.union([z.string(), z.number(), z.boolean(), z.null()]);

/** The kinds of transform step (exactly one per step); checked by transformStepIssues. */
export const TRANSFORM_KINDS = ['where', 'include', 'exclude', 'compute', 'set', 'cast', 'extract', 'map', 'timezone', 'custom'] as const;

/** One step of a table's `transform` chain (src/process/transform/). */
export const transformStepSpec = z
  .object({
    where: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Row filter: a condition in the language of validation checks (fields, 'text', numbers, = != < <= > >=, and/or/not, is [not] null, coalesce(a, b), …) over the row and `_op` ('insert', 'update', 'delete', 'snapshot'). A row passes only when it is true (null/unknown does not pass). An insert or snapshot row that does not pass is dropped; an update that passes is upserted (so a row moving into the filter appears); an update that does not pass left the filter (see onLeave). A delete is dropped only when the condition is false for the old row (REPLICA IDENTITY FULL; with onLeave keep only the key counts) or for `_op`; otherwise it is applied (deleting a row the target does not have changes nothing).",
      )
      .meta({ examples: ["status != 'draft' and region = 'eu'"] }),
    onLeave: z
      .enum(['delete', 'keep'])
      .optional()
      .describe("With `where`: what an update that does not pass does on the target. delete (default): the row is deleted there (with REPLICA IDENTITY DEFAULT there is no old row to tell whether it was in before: the delete is sent anyway, a no-op for a row the target does not have). keep: the update is dropped, the target keeps the last version that passed."),
    include: z.array(z.string().min(1)).min(1).optional().describe('Keep only these columns (target names); key columns are always kept.').meta({ examples: [['id', 'status', 'total']] }),
    exclude: z.array(z.string().min(1)).min(1).optional().describe('Drop these columns (target names); a key column cannot be dropped.').meta({ examples: [['internal_notes']] }),
    compute: z
      .record(z.string().min(1), z.string().min(1))
      .optional()
      .describe('Computed columns: column → expression (the language of validation checks: fields, + - * / %, abs(), len(), coalesce(), comparisons give true/false). Null operands give null.')
      .meta({ examples: [{ total_with_tax: 'total * 1.2' }] }),
    set: z.record(z.string().min(1), constantSpec).optional().describe('Constant columns: column → value.').meta({ examples: [{ origin: 'eu-shop' }] }),
    cast: z
      .record(z.string().min(1), z.enum(['string', 'number', 'integer', 'boolean']))
      .optional()
      .describe("Type casts with the validation coercions (lossless only: '42' → 42, 'yes' → true, 7 → '7'); a value that does not convert sends the change to the dead-letter topic. Null stays null.")
      .meta({ examples: [{ age: 'integer' }] }),
    extract: z
      .record(z.string().min(1), z.string().min(1))
      .optional()
      .describe("JSON field extraction: column → path into a json/jsonb column, PostgreSQL style: `payload->'a'->0->>'sku'` (->> gives text, -> JSON text). A missing path gives null.")
      .meta({ examples: [{ sku: "payload->>'sku'" }] }),
    map: z
      .record(
        z.string().min(1),
        z
          .object({
            values: z.record(z.string(), constantSpec).describe('Value (as text: 1 and "1" are the same) → new value.'),
            otherwise: z.enum(['keep', 'null', 'invalid']).default('keep').describe('A value not in the table: keep it, make it null, or send the change to the dead-letter topic (invalid).'),
          })
          .strict(),
      )
      .optional()
      .describe('Value mapping tables: column → { values, otherwise }.')
      .meta({ examples: [{ status: { values: { '1': 'active', '2': 'closed' }, otherwise: 'invalid' } }] }),
    timezone: z
      .object({
        columns: z.array(z.string().min(1)).min(1).describe('Timestamp columns to convert.'),
        from: z.string().default('UTC').describe('Zone of values without an offset (timestamp without time zone); values with one (timestamptz) are instants.'),
        to: z.string().describe('Zone whose wall-clock time the column gets, as a timestamp without time zone (YYYY-MM-DDTHH:MM:SS.ffffff).'),
      })
      .strict()
      .optional()
      .describe('Time zone conversion of timestamp columns (IANA zone names).')
      .meta({ examples: [{ columns: ['ordered_at'], to: 'Europe/Berlin' }] }),
    custom: z
      .object({
        module: z.string().min(1).describe("ES module (a path relative to this config file's directory), loaded once at start in a worker thread.").meta({ examples: ['./transforms.mjs'] }),
        function: z.string().regex(/^[A-Za-z_$][A-Za-z0-9_$]*$/, 'a function name').default('transform').describe('Exported function: (change) → change | change[] | null, or a promise of one. change = { table, op, key, before, after }.'),
        timeoutMs: z.number().int().min(1).max(60_000).default(1000).describe('Longest a call may take; a call that takes longer (a loop, a promise that never settles) is stopped (the worker is replaced) and the change is dead-lettered.'),
      })
      .strict()
      .optional()
      .describe('A custom transform function. A throw, a timeout or a bad result sends the change to the dead-letter topic (invalid) with the error; the pipeline goes on.'),
  })
  .strict()
  .superRefine((s, ctx) => {
    const kinds = TRANSFORM_KINDS.filter((k) => s[k] !== undefined);
    if (kinds.length !== 1) ctx.addIssue({ code: 'custom', message: kinds.length === 0 ? `a step needs one of: ${TRANSFORM_KINDS.join(', ')}` : `a step does one thing; this one has ${kinds.join(' and ')}: write them as separate steps` });
    if (s.onLeave !== undefined && s.where === undefined) ctx.addIssue({ code: 'custom', path: ['onLeave'], message: 'onLeave goes with where' });
  })
  .describe('One transform step: exactly one of where, include, exclude, compute, set, cast, extract, map, timezone, custom.');

/** Content-based routing of a table (tables[].route, src/process/transform/route.ts, ADR 0038). */
export const routeSpec = z
  .object({
    by: z
      .string()
      .min(1)
      .optional()
      .describe("Expression (the language of `where` and validation checks) whose value, as text, picks the table in `to`: 'eu' → to.eu. Null or a value not in `to` matches nothing (see default). Reads target columns after `columns` and the transform steps.")
      .meta({ examples: ['region'] }),
    to: z
      .record(z.string(), qualifiedTable('Target table of rows whose `by` value is this key.'))
      .optional()
      .describe('With `by`: value (as text: 1 and "1" are the same) → target table.')
      .meta({ examples: [{ eu: 'public.orders_eu', us: 'public.orders_us' }] }),
    cases: z
      .array(
        z
          .object({
            when: z.string().min(1).describe('Condition (the language of `where`); the first case whose condition is true wins (null does not match).'),
            table: qualifiedTable('Target table of rows this case matches.'),
          })
          .strict(),
      )
      .min(1)
      .optional()
      .describe('Instead of by/to: conditions tried in order; the first true one picks its table.')
      .meta({ examples: [[{ when: "total >= 1000", table: 'public.orders_big' }, { when: "region = 'eu'", table: 'public.orders_eu' }]] }),
    default: qualifiedTable('Target table of rows no route matches. Without it such a row is dead-lettered as invalid (ROUTE_UNMATCHED) and nothing is written.').optional(),
  })
  .strict()
  .superRefine((r, ctx) => {
    if ((r.by === undefined) === (r.cases === undefined)) ctx.addIssue({ code: 'custom', message: r.by === undefined ? 'a route needs `by` (with `to`) or `cases`' : 'a route has `by` or `cases`, not both' });
    if (r.by !== undefined && (r.to === undefined || Object.keys(r.to).length === 0)) ctx.addIssue({ code: 'custom', path: ['to'], message: '`by` needs `to`: value → target table' });
    if (r.to !== undefined && r.by === undefined) ctx.addIssue({ code: 'custom', path: ['to'], message: '`to` goes with `by`' });
  })
  .describe(
    "Content-based routing: picks each row's target table from the row (instead of `target`). Evaluated after the transform steps and before validation. An update that moves a row to another route deletes it from the old route's table (the old route is read from the old row under REPLICA IDENTITY FULL; without it the delete goes to every other route table, a no-op where the row is not); a delete goes to the route of the old row, or to every route table when it cannot be told. Version state and conflicts are per target table. See docs/routing.md.",
  );

export const tableSpec = z
  .object({
    source: qualifiedTable('Source table:', ['public.users', '"Sales Data"."Order Lines"']),
    target: qualifiedTable('Target table (default: the source name; a routed table has none: see `route`):').optional(),
    key: z.array(z.string().min(1)).min(1).optional().describe('Key columns; default: the primary key. Required for a table without one (with REPLICA IDENTITY FULL).'),
    columns: z.record(z.string(), z.string()).optional().describe('Column renames source → target.'),
    conflict: conflictSpec.optional().describe('Per-table override of the pipeline conflict settings.'),
    history: tableHistorySpec.optional().describe('Change history of this table: overrides the pipeline\'s `history` (an empty section turns it on with the defaults). Off unless enabled here or on the pipeline.'),
    encrypt: z
      .array(z.string().min(1))
      .min(1)
      .refine((a) => new Set(a).size === a.length, 'a column is listed twice')
      .optional()
      .describe(
        "Field encryption (AES-256-GCM): source columns whose values are encrypted where they enter syncline (capture, every source, snapshot and backfill rows included), so no change topic, dead letter, replay, log line, metric, report or API answer holds them in clear. They are decrypted only by a target with `decrypt: true`; any other target gets the ciphertext (text: `sl1:<key id>:<base64url>`; autoCreate makes such a column text). Key columns cannot be encrypted. Needs the top-level `encryption` section. See docs/security.md.",
      )
      .meta({ examples: [['email', 'phone', 'salary']] }),
    mask: z
      .array(z.string().min(1))
      .min(1)
      .optional()
      .describe("Masking: columns (source or target names) whose values are shown as '***' wherever syncline shows row values to people: dead letters in `syncline dlq list|show` and GET /api/dlq (conflict versions and diff, violations, values quoted in error messages; the raw Kafka bytes withheld). Encrypted columns are masked too. See docs/security.md.")
      .meta({ examples: [['phone', 'birth_date']] }),
    transform: z
      .array(transformStepSpec)
      .optional()
      .describe(
        'Transformations of this table\'s changes, in order, after the column renames (`columns`; steps name target columns) and before validation: filter rows, keep/drop/compute/cast columns and so on. Checked at load. A change a step cannot transform goes to the dead-letter topic as `invalid` with the reason; the pipeline goes on. See docs/transforms.md.',
      )
      .meta({ examples: [[{ where: "status != 'draft'" }, { exclude: ['notes'] }, { set: { origin: 'shop' } }]] }),
    route: routeSpec.optional(),
    validate: tableValidateSpec
      .optional()
      .describe(
        'Validation rules of inserted and updated rows, checked after the column renames (rules name target columns) and before the target. Compiled at start: a rule that cannot compile is refused with its line. A row that breaks any rule goes to the dead-letter topic as `invalid` with every violation listed (header syncline.violations) and the pipeline moves on; deletes and truncates are not validated.',
      ),
  })
  .strict()
  .describe('One captured table and how it maps to the target.');

/** Field encryption keys (tables[].encrypt): where the keyring comes from and which key writes. */
export const encryptionSpec = z
  .object({
    activeKey: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, '1-32 letters, digits, _ or -').describe('Id of the key that encrypts new values. Every other key of the keyring still decrypts (rotation: add the new key, make it active, keep the old one as long as messages written under it are kept: the change topics\' retention).').meta({ examples: ['k2026b'] }),
    hashKey: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/, '1-32 letters, digits, _ or -').optional().describe("Id of the key from which the row-hash HMAC keys are derived (HKDF per pipeline, table and column); default activeKey. Keep it when rotating activeKey: a new hash key makes every row with an encrypted column look changed once."),
    keysEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).default('SYNCLINE_ENCRYPTION_KEYS').describe('Environment variable holding the keyring: entries <id>=<key> separated by commas or new lines, each key 64 hex digits or base64 of 32 bytes.'),
    keysFile: z.string().min(1).optional().describe('File holding keyring entries (same form as keysEnv, one per line, # comments); read at start, merged with the variable. Keep it readable by syncline only.').meta({ examples: ['/run/secrets/syncline-keys'] }),
  })
  .strict()
  .describe('Field encryption (tables[].encrypt, target decrypt). The keys themselves never sit in the config file: they come from the environment or a file. A missing or wrong key is a fatal error naming its id. See docs/security.md.');

const decryptSpec = z
  .boolean()
  .default(false)
  .describe("Field encryption: write the plaintext of encrypted columns (tables[].encrypt) to this target, decrypted inside the write at the last moment (a record that fails and is dead-lettered keeps its ciphertext). Needs the keyring. false: the target gets the ciphertext text.");

/** A target connector's spec with the options every target has (decrypt). */
export const targetSpec = (spec: z.ZodObject): z.ZodObject => spec.extend({ decrypt: decryptSpec });

export const observabilitySpec = z
  .object({
    enabled: z.boolean().default(true).describe('Serve the endpoints (set false to keep the section but not listen).'),
    host: z.string().min(1).default('127.0.0.1').describe('Address to listen on; 0.0.0.0 for every interface (containers).'),
    port: z.number().int().min(0).max(65535).default(9464).describe('TCP port (0: any free port, for tests). Several processes on one host (a split deployment: capture, process, sink) need one each: `--metrics-port` sets it per process.'),
    checkTimeoutMs: z.number().int().min(100).max(60000).default(3000).describe('Timeout of each dependency check of /ready and of each scrape-time query (consumer lag, slot lag).'),
    tls: z
      .object({
        certFile: z.string().min(1).describe('PEM file of the server certificate (and its chain).').meta({ examples: ['/etc/syncline/tls/server.crt'] }),
        keyFile: z.string().min(1).describe('PEM file of its private key.').meta({ examples: ['/etc/syncline/tls/server.key'] }),
        clientCaFile: z.string().min(1).optional().describe('PEM file of the CA(s) whose client certificates are accepted: set, every client must present one (mutual TLS); a client without one is refused in the TLS handshake.'),
      })
      .strict()
      .optional()
      .describe('Serve HTTPS instead of HTTP (the same endpoints and API). Unreadable files stop the start with an error naming the file.'),
  })
  .strict()
  .describe('HTTP endpoints of a running syncline process: GET /metrics (Prometheus text format, names syncline_*), GET /health (liveness), GET /ready (every dependency checked, with latency and last error). Without this section nothing listens.');

export const API_ROLES = ['viewer', 'operator', 'admin'] as const;
export const OPENABLE_ENDPOINTS = ['health', 'ready', 'metrics'] as const;

export const apiTokenSpec = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.@-]{1,64}$/, 'letters, digits and _ . @ - (at most 64)').describe('Who holds the token: recorded as the actor (token:<name>) of every action taken with it (DLQ, sync runs, schema decisions).').meta({ examples: ['ops'] }),
    hash: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, "the hash line printed by `syncline auth token create` (sha256: and 64 hex digits), never the token itself")
      .describe('SHA-256 of the token, as printed by `syncline auth token create` (the token itself is never stored). Keep it in the environment: ${SYNCLINE_TOKEN_HASH_OPS}.')
      .meta({ secret: true, examples: ['${SYNCLINE_TOKEN_HASH_OPS}'] }),
    role: z.enum(API_ROLES).describe('viewer: status, metrics, lists, masked details; operator: viewer plus resolve/requeue/discard, sync runs, backfills; admin: operator plus reload, schema decisions and every admin action.'),
    pipelines: z.array(z.string().min(1)).min(1).optional().describe('Pipelines the token may act on; missing: all. A scoped token names its pipeline on routes that span pipelines (?pipeline=) and cannot use process-wide actions (reload).').meta({ examples: [['orders']] }),
  })
  .strict();

export const apiSpec = z
  .object({
    auth: z
      .enum(['required', 'none'])
      .optional()
      .describe('required: every endpoint (but those in `open`) needs a bearer token of `tokens` or an OIDC JWT; none: no authentication (a warning at every start, an error beyond the loopback address; the X-Syncline-User header names the actor). Missing: required when tokens or oidc are set, else none, said at start at info on a loopback address and at error beyond it.'),
    tokens: z.array(apiTokenSpec).default([]).describe('API tokens (create one with `syncline auth token create --name N --role R`).'),
    oidc: z
      .object({
        issuer: z.string().min(1).describe('Expected `iss` of the JWTs.').meta({ examples: ['https://login.example.com/realms/ops'] }),
        audience: z.string().min(1).describe('Expected `aud` of the JWTs.').meta({ examples: ['syncline'] }),
        jwksUrl: z.string().url().describe('URL of the issuer\'s JSON Web Key Set (fetched and cached by `jose`; a key id not in the cache refetches it).').meta({ examples: ['https://login.example.com/realms/ops/protocol/openid-connect/certs'] }),
        roleClaim: z.string().min(1).default('syncline_role').describe('Claim holding the role (a string, or a list whose highest known role counts).'),
        pipelinesClaim: z.string().min(1).default('syncline_pipelines').describe('Claim holding the pipelines the holder may act on (a list); missing in a token: all pipelines.'),
        userClaim: z.string().min(1).default('sub').describe('Claim naming the user (recorded as oidc:<value>).'),
        clockToleranceS: z.number().int().min(0).max(300).default(30).describe('Clock skew allowed on exp/nbf, in seconds.'),
        algorithms: z.array(z.string().min(1)).min(1).default(['RS256', 'ES256', 'EdDSA']).describe('Signature algorithms accepted.'),
      })
      .strict()
      .optional()
      .describe('OpenID Connect bearer JWTs, verified against the issuer\'s JWKS (needs the `jose` package).'),
    open: z
      .array(z.enum(OPENABLE_ENDPOINTS))
      .default([...OPENABLE_ENDPOINTS])
      .describe('Endpoints answered without credentials even when auth is required (probes and Prometheus); [] protects them too (viewer).'),
  })
  .strict()
  .describe('Access control of the HTTP API (served by the `observability` server): who may call which route. See docs/security.md for the route × role table.');

export const reportsSpec = z
  .object({
    enabled: z.boolean().default(true).describe('Write the report files (set false to keep the section but write nothing).'),
    dir: z.string().min(1).default('reports').describe('Directory of the report files (relative to the working directory): sync-status.json (current state of every pipeline), history.jsonl (one line of cumulative counters per write) and sync-report.md (a readable report per UTC day).'),
    everyMs: z.number().int().min(100).max(86_400_000).default(60_000).describe('How often a running process writes the report files (and once more when it stops).'),
  })
  .strict()
  .describe('Report files written by a running syncline process and by `syncline report`. Without this section a running process writes none.');

const alertNameRe = /^[A-Za-z_][A-Za-z0-9_]*$/;
const severities = ['critical', 'warning', 'info'] as const;

export const alertChannelSpec = z
  .object({
    type: z.enum(['webhook', 'slack', 'email']).describe('webhook: POST of an Alertmanager-like JSON body {status, alerts: [...]}; slack: a Slack incoming-webhook message ({text, blocks}); email: a mail through SMTP.'),
    url: z.string().optional().describe('webhook, slack: URL the notification is POSTed to. Empty or missing: the channel is disabled (logged at start), so a URL can come from an optional variable: ${SYNCLINE_ALERT_WEBHOOK_URL:-}.').meta({ secret: true }),
    headers: z.record(z.string(), z.string()).optional().describe('webhook, slack: extra HTTP headers (e.g. Authorization).').meta({ secret: true }),
    smtp: z
      .object({
        host: z.string().describe('SMTP server host; empty: the channel is disabled.'),
        port: z.number().int().min(1).max(65535).default(587).describe('SMTP port.'),
        secure: z.boolean().default(false).describe('TLS from the start (port 465); false: plain, upgraded with STARTTLS when the server offers it.'),
        user: z.string().optional().describe('SMTP user (no authentication when missing).'),
        password: z.string().optional().describe('SMTP password; use ${ENV_VAR} interpolation.').meta({ secret: true }),
      })
      .strict()
      .optional()
      .describe('email: the SMTP server.'),
    from: z.string().optional().describe('email: sender address.').meta({ examples: ['syncline@example.com'] }),
    to: z.array(z.string().min(1)).optional().describe('email: recipients; none: the channel is disabled.'),
    severities: z.array(z.enum(severities)).min(1).default([...severities]).describe('Severities routed to this channel.'),
    retry: retryOverrideSpec.optional().describe('Overrides of defaults.retry for sending to this channel (429 and 5xx answers and network errors are retried, honouring Retry-After).'),
  })
  .strict()
  .describe('One notification channel.');

/** Where the change history is stored and how often it is pruned. */
export const historyStoreSpec = z
  .object({
    url: z
      .string()
      .min(1)
      .optional()
      .describe('PostgreSQL URL of the metadata database holding the change history; default: audit.url. When it names the same server and database as a PostgreSQL target, history rows are written in the target write\'s own transaction.')
      .meta({ secret: true, examples: ['postgres://syncline:${SYNCLINE_META_PASSWORD}@127.0.0.1:5432/syncline_meta'] }),
    schema: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,40}$/, 'lower-case letters, digits and _ (at most 41 characters), not starting with a digit')
      .default('syncline_history')
      .describe('Schema of the history tables (created when missing): changes (partitioned by day of apply time), coverage, trimmed.'),
    pruneEveryMs: z.number().int().min(1000).max(86_400_000).default(3_600_000).describe('How often a running sink prunes the history (drops day partitions past retention, trims keys beyond maxPerKey).'),
  })
  .strict()
  .describe('Change history store (ADR 0031): every change a sink applies, with before/after images, position, times and how it was decided; `syncline history show|asof`. Which tables keep history is said per pipeline or table (`history:`).');

/** The audit trail (src/security/audit/): where it is stored, how it is signed and kept. */
export const auditSpec = z
  .object({
    enabled: z.boolean().default(true).describe('Record the audit trail (set false to keep the section but record nothing).'),
    url: z
      .string()
      .min(1)
      .describe("PostgreSQL URL of the metadata database holding the audit trail (the table is created when missing). Use ${ENV_VAR} interpolation for the password.")
      .meta({ secret: true, examples: ['postgres://syncline:${SYNCLINE_AUDIT_PASSWORD}@127.0.0.1:5432/syncline_meta'] }),
    table: z
      .string()
      .regex(/^[a-z_][a-z0-9_]{0,40}$/, 'lower-case letters, digits and _ (at most 41 characters), not starting with a digit')
      .default('syncline_audit')
      .describe('Table of the entries (in the search_path schema); its checkpoints go to <table>_checkpoints.'),
    retentionDays: z.number().int().min(1).max(36500).default(365).describe('Entries older than this are pruned (only up to a signed checkpoint, so the rest stays verifiable).'),
    signingKey: z
      .object({
        file: z.string().min(1).optional().describe('File of the Ed25519 private key (PKCS#8 PEM), relative to the working directory; `syncline audit keygen` writes one.').meta({ examples: ['secrets/audit-ed25519.pem'] }),
        env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional().describe('Environment variable holding the private key (PKCS#8 PEM, or its base64 DER).').meta({ examples: ['SYNCLINE_AUDIT_SIGNING_KEY'] }),
      })
      .strict()
      .refine((k) => (k.file === undefined) !== (k.env === undefined), { message: 'give exactly one of file and env' })
      .optional()
      .describe('Ed25519 key that signs the checkpoints. Without it no checkpoint is written (logged at start) and `audit verify` cannot detect a rewrite of the whole chain.'),
    publicKey: z
      .object({
        file: z.string().min(1).optional().describe('File of the Ed25519 public key (SPKI PEM).').meta({ examples: ['secrets/audit-ed25519.pub.pem'] }),
        env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name').optional().describe('Environment variable holding the public key (SPKI PEM, or its base64 DER).'),
      })
      .strict()
      .refine((k) => (k.file === undefined) !== (k.env === undefined), { message: 'give exactly one of file and env' })
      .optional()
      .describe('Public key `audit verify` checks the checkpoint signatures with; default: derived from signingKey. Give it where verification runs without the private key.'),
    checkpointEvery: z.number().int().min(1).max(1_000_000).default(1000).describe('A signed checkpoint after this many entries appended by a process (and every checkpointEveryMs, and when the process stops).'),
    checkpointEveryMs: z.number().int().min(1000).max(86_400_000).default(3_600_000).describe('A signed checkpoint at least this often while new entries come. `audit verify` reports entries older than twice this that no checkpoint covers (deleted checkpoints).'),
    spoolDir: z.string().min(1).default('audit-spool').describe('Directory of the local spool (relative to the working directory): each entry is written and fsynced there before the action it records is acknowledged, and removed once the audit database has it. After a crash, or a stop while the database was down, the next syncline process of this trail on the host appends what is left there, in order, before its own entries. Put it on persistent storage (a volume in a container).').meta({ examples: ['/var/lib/syncline/audit-spool'] }),
    bufferMax: z.number().int().min(100).max(10_000_000).default(100_000).describe('Entries waiting for the audit database above which an error is logged (once per outage). Nothing is dropped: they wait in the spool file (and in memory) until the database takes them.'),
  })
  .strict()
  .describe('Audit trail: every operator and system action (start/stop, config loads and reloads, schema registrations and decisions, dead-letter actions, sync runs, backfills, replays, denied requests) appended to a hash-chained, append-only PostgreSQL table with Ed25519-signed checkpoints; `syncline audit list|export|verify`. Without this section nothing is recorded.');

export const alertRuleSpec = z
  .object({
    name: z.string().regex(alertNameRe, 'letters, digits and _ (a Prometheus alert name)').describe('Alert name (also the Prometheus alert name).').meta({ examples: ['SynclineConsumerLagHigh'] }),
    expr: z
      .string()
      .min(1)
      .describe('Condition, a PromQL subset evaluated over this process\'s metrics and exported unchanged to prometheus/alerts.yml: a metric selector with label matchers, rate(m[5m]), increase(m[5m]), sum/max/min/avg/count with by (labels), + - * / between them or with numbers, and one comparison with a plain number. Each series for which it holds is one alert.')
      .meta({ examples: ['sum by (pipeline) (syncline_consumer_lag_messages) > 10000'] }),
    for: z.string().regex(/^(?:\d+(?:ms|s|m|h|d|w|y))+$/, 'a duration like 30s, 2m, 1h30m').optional().describe('How long the condition must hold before the alert fires (pending until then); missing: at the first evaluation.').meta({ examples: ['2m'] }),
    severity: z.enum(severities).describe('Severity: routes the alert to the channels that take it.'),
    summary: z.string().min(1).describe("One-line description; {{ $value }} and {{ $labels.NAME }} are replaced (same syntax as Prometheus annotations), and {{ $lastError }} by the last error of the alert's pipeline (label pipeline: its newest stage failure, else its newest dead letter, as CODE: reason). The text is masked by the masking policy before it is sent (docs/security.md).").meta({ examples: ['consumer lag of {{ $labels.pipeline }} is {{ $value }}'] }),
    labels: z.record(z.string().regex(alertNameRe, 'a label name'), z.string()).optional().describe('Extra labels of the alert (severity is always set).'),
  })
  .strict()
  .superRefine((r, ctx) => {
    const err = alertExprError(r.expr);
    if (err) ctx.addIssue({ code: 'custom', path: ['expr'], message: err });
  })
  .describe('One alert rule.');

export const alertsSpec = z
  .object({
    evaluateEveryMs: z.number().int().min(100).max(600000).default(15000).describe('How often the rules are evaluated (and the metrics they read sampled).'),
    groupWindowMs: z.number().int().min(0).max(86400000).default(60000).describe('Deduplication and aggregation window per severity: at most one notification per channel and severity per window; alerts of that severity that fire or resolve meanwhile are sent together at the end of the window; an alert that fires is announced once (no repeats while it stays firing) and a resolved notice follows when its condition clears.'),
    channels: z.record(z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and -'), alertChannelSpec).default({}).describe('Notification channels by name.'),
    rules: z.array(alertRuleSpec).default([]).describe('Alert rules; `syncline alerts export` writes them as Prometheus alerting rules.'),
  })
  .strict()
  .superRefine((a, ctx) => {
    const seen = new Set<string>();
    a.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name '${r.name}'` });
      seen.add(r.name);
    });
  })
  .describe('Alerting: rules over this process\'s own metrics, evaluated in the process, notified to webhook, Slack and email channels routed by severity. Without this section nothing is evaluated.');

function unionOf(specs: z.ZodObject[], what: string): z.ZodType {
  if (specs.length === 0) throw new Error(`no ${what} connector registered (import connectors/index.ts first)`);
  if (specs.length === 1) return specs[0]!;
  return z.discriminatedUnion('type', specs as [z.ZodObject, z.ZodObject, ...z.ZodObject[]]);
}

/** Built lazily because connectors register themselves at import time. */
/** Scheduled verification of a pipeline (src/verify/). */
export const verifySpec = z
  .object({
    cron: z.string().min(1).describe("Cron pattern (six fields with seconds, or five) in the pipeline's `timezone`: when the pipeline is verified (the same scheduler as mode scheduled). A fire while a verification of the pipeline still runs is skipped.").meta({ examples: ['0 0 3 * * *'] }),
    repair: z.boolean().default(false).describe('Re-sync the differences found through the pipeline (as `syncline verify --repair`); false: only report and count them.'),
    rangeRows: z.number().int().min(10).max(10_000_000).default(10_000).describe('Rows per checksummed key range (a range that differs is bisected).'),
  })
  .strict()
  .describe('Scheduled verification (src/verify/, ADR 0036).');

/** Sync modes (src/sync/): when a pipeline's changes are captured and applied. */
const syncModeFields = {
  mode: z
    .enum(['realtime', 'scheduled', 'manual'])
    .default('realtime')
    .describe(
      "When the pipeline syncs. realtime: capture and apply run continuously (with `windows`: the sink applies only inside them; outside, changes wait in Kafka while capture keeps acknowledging the source). scheduled: a bounded run at every `schedule` fire: capture up to the source's position at the run's start, apply up to the change topics' ends, then stop; nothing of the pipeline runs between runs (a PostgreSQL slot retains WAL meanwhile). manual: bounded runs only when asked (`syncline sync run`, POST /api/pipelines/:name/runs). scheduled and manual need a source that can tell its current position (postgres, mariadb).",
    ),
  schedule: z
    .string()
    .optional()
    .describe("mode scheduled: cron pattern, six fields with seconds (or five), in `timezone`. A fire while the previous run still goes is skipped and counted (syncline_sync_runs_skipped_total); fires missed while the process was down give one run at start, not one per fire. DST: a fire time in the spring gap fires once at the end of the gap, one in the autumn repeat fires once, at its first occurrence.")
    .meta({ examples: ['0 30 2 * * *', '*/10 * * * * *'] }),
  timezone: z
    .string()
    .default('UTC')
    .describe('IANA time zone of `schedule` and `windows`.')
    .meta({ examples: ['Europe/Berlin'] }),
  windows: z
    .array(z.string())
    .min(1)
    .optional()
    .describe("modes realtime and scheduled: when the pipeline may apply, as '[DAYS ]HH:MM-HH:MM' wall-clock times in `timezone` (DAYS: Mon..Sun, lists and ranges; an end at or before the start crosses midnight). realtime: outside every window the sink is paused (kafkajs consumer pause: it stays in its group, the backlog shows as consumer lag) and resumes when one opens. scheduled: a fire outside every window is skipped (counted). DST: wall-clock time, so a window in the skipped spring hour does not occur and one in the repeated autumn hour is open during both passes.")
    .meta({ examples: [['Mon-Fri 01:00-05:00', 'Sat,Sun 00:00-24:00']] }),
  maxRunDurationMs: z
    .number()
    .int()
    .min(1000)
    .optional()
    .describe('modes scheduled and manual: a run still going after this long is stopped with outcome timed-out (what it applied stays applied; the next run goes on from there).'),
};

/** Cross-field rules of the sync mode fields; `bounded`: the source implements position(). */
function syncModeIssues(p: { mode: string; schedule?: string; timezone: string; windows?: string[]; maxRunDurationMs?: number; source: unknown }, ctx: z.RefinementCtx, bounded: boolean): void {
  const tzProblem = timeZoneProblem(p.timezone);
  if (tzProblem) ctx.addIssue({ code: 'custom', path: ['timezone'], message: tzProblem });
  if (p.mode === 'scheduled' && p.schedule === undefined) ctx.addIssue({ code: 'custom', path: ['schedule'], message: 'mode scheduled needs a schedule (a cron pattern, e.g. "0 30 2 * * *")' });
  if (p.mode !== 'scheduled' && p.schedule !== undefined) ctx.addIssue({ code: 'custom', path: ['schedule'], message: `a schedule is for mode scheduled (this pipeline's mode is ${p.mode})` });
  if (p.schedule !== undefined && !tzProblem) {
    const problem = cronProblem(p.schedule, p.timezone);
    if (problem) ctx.addIssue({ code: 'custom', path: ['schedule'], message: problem });
  }
  if (p.windows && p.mode === 'manual') ctx.addIssue({ code: 'custom', path: ['windows'], message: 'windows are for modes realtime and scheduled (a manual run starts when asked)' });
  p.windows?.forEach((w, i) => {
    try {
      parseWindow(w);
    } catch (err) {
      if (!(err instanceof WindowSyntaxError)) throw err;
      ctx.addIssue({ code: 'custom', path: ['windows', i], message: err.message });
    }
  });
  if (p.maxRunDurationMs !== undefined && p.mode === 'realtime') ctx.addIssue({ code: 'custom', path: ['maxRunDurationMs'], message: 'maxRunDurationMs is for modes scheduled and manual (a realtime pipeline has no runs)' });
  if (p.mode !== 'realtime' && !bounded) {
    ctx.addIssue({ code: 'custom', path: ['mode'], message: `mode ${p.mode} needs a source that can tell its current position (Source.position()); source type '${(p.source as { type: string }).type}' cannot: use mode realtime` });
  }
}

export function configSpec() {
  const source = unionOf(registeredSources().map((r) => r.spec), 'source');
  const target = unionOf(registeredSinks().map((r) => targetSpec(r.spec)), 'sink');
  const pipeline = z
    .object({
      enabled: z.boolean().default(true).describe('Run this pipeline.'),
      follows: nameSpec
        .optional()
        .describe(
          "Fan-out (ADR 0039): this pipeline has no capture of its own; it reads the change topics that the named pipeline's capture writes, and writes them to its own target with its own tables' mappings, transforms, routes and validation, its own conflict strategy, retry policy, consumer groups, dead-letter topic and metrics, so a slow or failing target never holds the others back. Leave `source` out: the followed pipeline's source (and changeTopicPrefix) is this pipeline's too (verify compares it with this target). Each table must be one the followed pipeline captures, with the same key and encrypted columns. Both pipelines run in mode realtime; a two-way pipeline (peer) can be followed only by two-way pipelines (multi-way sync: the pipelines leaving one database of a mesh, ADR 0040), and a one-way one only by one-way ones. A follower added later starts at the oldest change its topics still hold (kafka.retentionDays): `syncline backfill --pipeline <followed>` writes the tables again.",
        )
        .meta({ examples: ['orders-sync'] }),
      source,
      target,
      tables: z.array(tableSpec).min(1).describe('Tables captured and how they map to the target.'),
      conflict: conflictSpec.optional().describe('Defaults to defaults.conflict.'),
      history: historyRetentionSpec.optional().describe('Change history of every table of this pipeline (`history: {}` turns it on: 90 days, 10,000 entries per key); tables may override. Off when missing. Needs a history store: the top-level `history.url` or `audit.url`.'),
      retry: retryOverrideSpec.optional().describe('Overrides of defaults.retry for this pipeline (a target connector can override again).'),
      batch: batchSpec.optional().describe('Defaults to defaults.batch.'),
      validation: pipelineValidationSpec.optional().describe('Custom rule functions and always-masked columns for the validation rules of this pipeline\'s tables.'),
      changeTopicPrefix: z
        .string()
        .regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ - and . only')
        .optional()
        .describe(
          "Prefix of this pipeline's change topics (<changeTopicPrefix>.cdc.<schema>.<table>) instead of topicPrefix, like Debezium's topic.prefix: one name per source database. Pipelines capturing tables of the same name from different databases (both sides of a two-way pair, say) must not share a change topic, and are refused at start when they would; pipelines reading the same database may share them (to write a table to several targets with one capture, see `follows`).",
        )
        .meta({ examples: ['shop-b'] }),
      peer: z
        .string()
        .optional()
        .describe(
          "Two-way sync: the pipeline that syncs the other way (its source is this pipeline's target and its target this pipeline's source; it must name this pipeline as its peer). Each tags its writes with an origin the other's capture recognises and skips, so nothing is echoed back: PostgreSQL a replication origin (syncline:<topicPrefix>:<pipeline>:<n>; needs superuser or EXECUTE on pg_replication_origin_session_setup/pg_replication_origin_create), MariaDB a session server_id registered in a syncline_origins table (needs SUPER or BINLOG REPLAY; connectors/mariadb/README.md). When a conflict keeps the target row, it is re-published so the peer carries it back: both sides end identical. Multi-way sync (three or more databases, ADR 0040): a pipeline each way between every two databases (each pair peers of each other; the pipelines leaving one database may follow one of them, sharing its capture); each capture leaves out every syncline write into its database, so a change travels one hop, from where it was made to each of the others.",
        )
        .meta({ examples: ['users-b-to-a'] }),
      verify: verifySpec.optional().describe('Scheduled verification of this pipeline (`syncline verify` on a cron schedule, in the process that runs its capture): source and target compared, differences counted in syncline_verify_mismatches{pipeline,table}, the last result at GET /api/pipelines/:name/verify.'),
      ...syncModeFields,
    })
    .strict()
    .superRefine((p, ctx) => {
      if (p.verify) {
        const problem = cronProblem(p.verify.cron, p.timezone);
        if (problem) ctx.addIssue({ code: 'custom', path: ['verify', 'cron'], message: problem });
      }
    })
    .superRefine((p, ctx) => syncModeIssues(p, ctx, registeredSources().find((r) => r.type === (p.source as { type: string }).type)?.positions === true))
    .describe('One pipeline: changes of the listed tables, captured from the source, are written to the target.');
  return z
    .object({
      version: z.literal(1).describe('Config format version.'),
      topicPrefix: z.string().regex(/^[A-Za-z0-9_-]+$/).default('syncline').describe('Prefix of every topic: <prefix>.cdc.<schema>.<table> (unless a pipeline sets changeTopicPrefix), <prefix>.dlq.<pipeline>.'),
      kafka: z
        .object({
          brokers: z.array(z.string()).min(1).default(['127.0.0.1:9092']).describe('Bootstrap brokers host:port.'),
          clientId: z.string().default('syncline').describe('Client id sent to Kafka.'),
          partitions: z.number().int().min(1).max(1000).default(3).describe('Partitions of each change topic created by syncline.'),
          replicationFactor: z.number().int().min(1).default(1).describe('Replication factor of topics created by syncline.'),
          minInsyncReplicas: z
            .number()
            .int()
            .min(1)
            .optional()
            .describe("min.insync.replicas of topics created by syncline: how many replicas must have a message before the broker acknowledges it (syncline produces with acks=all). With replicationFactor 3, set 2: one broker may be lost without losing an acknowledged change or stopping the writes. Unset: the broker's default. At most replicationFactor."),
          retentionDays: z.number().int().min(1).default(90).describe('Retention of change topics (they are the change log for replay).'),
          sessionTimeoutMs: z
            .number()
            .int()
            .min(6000)
            .max(300_000)
            .default(30_000)
            .describe("How long the consumer group of a pipeline's process and sink stages waits for a silent member before handing its partitions to the others (Kafka's session.timeout.ms). After a crash (kill -9) the partitions of the dead process wait this long; shorter means faster take-over but less tolerance for a stalled process. At least 6,000 (the broker's group.min.session.timeout.ms); heartbeats go every 3 s."),
          producer: z
            .enum(['kafkajs', 'librdkafka'])
            .default('kafkajs')
            .describe(
              "Client that writes change topics and dead letters (idempotent, acks=all, per-partition order either way). kafkajs: pure JavaScript, installed with syncline. librdkafka: the C client through the optional package @confluentinc/kafka-javascript (`npm install @confluentinc/kafka-javascript`; it needs a prebuilt binary or a C toolchain), faster when the producer is the limit; consumers and the transactional apply-topic writer stay on kafkajs.",
            ),
          ssl: z
            .object({
              caFile: z.string().min(1).optional().describe('PEM file of the CA certificate(s) that signed the brokers\' certificates (a private CA), instead of the system CAs.').meta({ examples: ['/etc/syncline/tls/kafka-ca.pem'] }),
              verify: z.boolean().default(true).describe('false: TLS without verifying the brokers\' certificates (encrypted, not authenticated; a warning says so). For tests, not production.'),
            })
            .strict()
            .optional()
            .describe('Speak TLS to the brokers (security.protocol SSL, or SASL_SSL with `sasl`). Certificates are verified against the system CAs or caFile, and their names against the broker host. A certificate that does not verify stops the process with an error naming the broker and caFile (never retried).'),
          sasl: z
            .object({
              mechanism: z.enum(['scram-sha-512', 'scram-sha-256', 'plain']).default('scram-sha-512').describe('SASL mechanism; plain sends the password as is, so only with `ssl`.'),
              username: z.string().min(1).describe('SASL user.'),
              password: z.string().min(1).describe('SASL password; from the environment: ${SYNCLINE_KAFKA_PASSWORD}.').meta({ secret: true }),
            })
            .strict()
            .optional()
            .describe('SASL authentication to the brokers. A refused user or password stops the process with an error naming the broker and user (never retried).'),
        })
        .strict()
        .prefault({})
        .describe('Kafka cluster.'),
      schemaRegistry: z
        .object({
          url: z.string().url().default('http://127.0.0.1:8081/apis/ccompat/v7').describe('Base URL of a Confluent-compatible schema registry API; https://… for TLS.'),
          caFile: z.string().min(1).optional().describe('https: PEM file of the CA certificate(s) that signed the registry\'s certificate (a private CA), instead of the system CAs.'),
          verify: z.boolean().default(true).describe('https: false skips the verification of the registry\'s certificate (encrypted, not authenticated; a warning says so). For tests, not production.'),
          username: z.string().min(1).optional().describe('HTTP basic authentication user (with password).'),
          password: z.string().min(1).optional().describe('HTTP basic authentication password; from the environment: ${SYNCLINE_REGISTRY_PASSWORD}.').meta({ secret: true }),
        })
        .strict()
        .prefault({})
        .describe('Schema registry (Confluent API: Confluent, Apicurio ccompat, Redpanda, Karapace).'),
      redis: z
        .object({
          url: z.string().default('redis://127.0.0.1:6379').describe('Redis URL holding per-key version state; rediss://… for TLS (the certificate verified against the system CAs or caFile, its name against the host). A user and password in the URL work too; `username`/`password` keep the password out of it.'),
          caFile: z.string().min(1).optional().describe('rediss: PEM file of the CA certificate(s) that signed the Redis server\'s certificate (a private CA), instead of the system CAs.'),
          verify: z.boolean().default(true).describe('rediss: false skips the verification of the server certificate (encrypted, not authenticated; a warning says so). For tests, not production.'),
          username: z.string().min(1).optional().describe('Redis ACL user (AUTH username password); default: the URL\'s, else `default`.'),
          password: z.string().min(1).optional().describe('Password of the ACL user; from the environment: ${SYNCLINE_REDIS_PASSWORD}.').meta({ secret: true }),
          commandTimeoutMs: z
            .number()
            .int()
            .min(100)
            .max(600_000)
            .default(15_000)
            .describe('How long one Redis command may wait for its reply, time spent queued while the client reconnects included. Past it the command fails as a retriable REDIS_TIMEOUT error and its batch is retried (syncline_retries_total, the logs name Redis and this setting): a server or cluster node that accepted the connection but stopped answering, or a failover that leaves a command without a reply, never stalls a pipeline or its shutdown without a word.'),
          keyPrefix: z
            .string()
            .regex(/^[^{}]*$/, 'no { or }')
            .optional()
            .describe('Prefix of every Redis key; defaults to topicPrefix (version state belongs to one deployment). Keys are <keyPrefix>:{<pipeline>}:…, the braces being the Redis Cluster hash tag, so the prefix holds no { or }.'),
          cluster: z
            .object({
              nodes: z
                .array(z.string().regex(/^(\[[^\]\s]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, e.g. 10.0.0.5:7000'))
                .min(1)
                .describe('Seed nodes of the cluster, host:port (one is enough, list several so a start survives one being down); the client discovers the others and follows failovers (MOVED/ASK, CLUSTERDOWN, TRYAGAIN). Example: [\'10.0.0.5:7000\', \'10.0.0.6:7000\', \'10.0.0.7:7000\'].'),
            })
            .strict()
            .optional()
            .describe('Run the version state on a Redis Cluster (docs/adr/0035-redis-cluster.md). redis.url then gives only the scheme (rediss: TLS on every node), user and password; its host and port are not used. Every key of a pipeline is in one slot (hash tag {<pipeline>}), so pipelines spread over the masters. Local cluster: scripts/redis-cluster.sh up.'),
          sentinel: z
            .object({
              nodes: z
                .array(z.string().regex(/^(\[[^\]\s]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port, e.g. 10.0.0.5:26379'))
                .min(1)
                .describe('Sentinels, host:port (list several: the client asks the next one when one is down). They say which server is the master of `name` now; after a failover the client reconnects to the new one.'),
              name: z.string().min(1).default('mymaster').describe('The master name the sentinels monitor (`sentinel monitor <name> …`).'),
              password: z.string().min(1).optional().describe('Password of the sentinels themselves (requirepass in sentinel.conf), if they have one; the data servers take redis.url\'s user and password (or redis.username/password).').meta({ secret: true }),
            })
            .strict()
            .optional()
            .describe('Run the version state on a Redis master found through Redis Sentinel (a master with replicas, failed over by the sentinels). redis.url then gives only the scheme, user and password; its host and port are not used. Not with `cluster`. Local set-up: scripts/redis-sentinel.sh up.'),
        })
        .strict()
        .superRefine((r, ctx) => {
          if (r.cluster && r.sentinel) ctx.addIssue({ code: 'custom', path: ['sentinel'], message: 'redis.cluster and redis.sentinel exclude each other: a Redis Cluster fails over by itself, Sentinel watches a master with replicas' });
        })
        .prefault({})
        .describe('Redis.'),
      startTimeoutMs: z
        .number()
        .int()
        .min(1000)
        .max(86_400_000)
        .default(120_000)
        .describe(
          "Start deadline: how long a starting process, and a stage starting again after a retriable error, waits for what it needs (Kafka, the schema registry, Redis, the PostgreSQL sources and targets). A dependency that is not ready yet (connection refused, Kafka metadata not propagated, a group coordinator not available, a registry 5xx, Redis LOADING, PostgreSQL starting up) is waited for, not fatal: tried again with defaults.retry's delays (its retries count does not apply), logged once per dependency at warn (dependency.waiting) and once at info when it answers (dependency.ready). When the deadline passes the process exits 1 with the dependency's last error. SYNCLINE_START_TIMEOUT_MS overrides it.",
        ),
      observability: observabilitySpec.optional(),
      api: apiSpec.optional(),
      encryption: encryptionSpec.optional(),
      masking: z
        .object({
          patterns: z
            .array(
              z.string().refine((p) => {
                try {
                  new RegExp(p, 'i');
                  return true;
                } catch {
                  return false;
                }
              }, 'a valid regular expression'),
            )
            .optional()
            .describe('Column-name patterns (regular expressions, case-insensitive) masked in every table, besides the tables\' `mask` lists.')
            .meta({ examples: [['(^|_)email$', 'phone']] }),
          defaults: z.boolean().default(true).describe("Also mask the built-in patterns: passw(or)?d, secret, token, ssn, card_?(number|no), iban."),
        })
        .strict()
        .optional()
        .describe('Masking policy for row values shown to people (tables[].mask, these patterns, encrypted columns). Revealing a dead letter unmasked is a separate, admin-only function (docs/security.md).'),
      alerts: alertsSpec.optional(),
      reports: reportsSpec.optional(),
      audit: auditSpec.optional(),
      history: historyStoreSpec.optional(),
      defaults: z
        .object({
          conflict: conflictSpec.prefault({}),
          retry: retrySpec.prefault({}),
          batch: batchSpec.prefault({}),
        })
        .strict()
        .prefault({})
        .describe('Pipeline defaults.'),
      pipelines: z.record(nameSpec, pipeline).describe(`Pipelines by name (${NAME_RULE}: the rule slot and publication names follow too). The name is part of topic names (<prefix>.dlq.<name>, <prefix>.apply.<name>), consumer groups and Redis keys.`),
    })
    .strict()
    .superRefine((c, ctx) => {
      if (c.kafka.minInsyncReplicas !== undefined && c.kafka.minInsyncReplicas > c.kafka.replicationFactor) {
        ctx.addIssue({ code: 'custom', path: ['kafka', 'minInsyncReplicas'], message: `${c.kafka.minInsyncReplicas} is more than kafka.replicationFactor (${c.kafka.replicationFactor}): no write could ever be acknowledged` });
      }
      // A change topic carries one source database's table: pipelines reading other databases must
      // not write the same topic (two-way pairs capture tables of the same names on both sides).
      const claimed = new Map<string, { pipeline: string; source: string }>();
      const encryptedBy = new Map<string, { pipeline: string; enc: string }>();
      // Kafka refuses a topic whose name equals another's once '.' and '_' are made one (a.b_c, a_b.c).
      const colliding = new Map<string, { topic: string; table: string }>();
      for (const [name, p] of Object.entries(c.pipelines)) {
        const source = sourceIdentity(p.source);
        p.tables.forEach((t, i) => {
          const at = ['pipelines', name, 'tables', i, 'source'];
          let parsed;
          try {
            parsed = parseTableName(t.source);
          } catch {
            return; // reported by the table's own check
          }
          const { schema, table } = parsed;
          const topic = cdcTopicName(changeTopicPrefix(c, p), schema, table);
          if (topic.length > MAX_TOPIC_LENGTH) {
            ctx.addIssue({ code: 'custom', path: at, message: `its change topic name ${topic} would be ${topic.length} characters long (Kafka allows ${MAX_TOPIC_LENGTH}): shorten the topic prefix or the names` });
          }
          // Field encryption happens in capture: pipelines sharing a change topic share its ciphertexts and schema.
          const enc = JSON.stringify([...((t as { encrypt?: string[] }).encrypt ?? [])].sort());
          const sealed = encryptedBy.get(topic);
          if (!sealed) encryptedBy.set(topic, { pipeline: name, enc });
          else if (sealed.enc !== enc) {
            ctx.addIssue({ code: 'custom', path: [...at.slice(0, -1), 'encrypt'], message: `change topic ${topic} is shared with pipeline '${sealed.pipeline}', which encrypts ${sealed.enc === '[]' ? 'no columns' : sealed.enc} of ${t.source} (here ${enc === '[]' ? 'none' : enc}): pipelines sharing a change topic must encrypt the same columns (or set changeTopicPrefix on one of them)` });
          }
          // A follower's topics are the followed pipeline's (ADR 0039): it writes none.
          const other = claimed.get(topic);
          if (p.follows) return;
          if (!other) claimed.set(topic, { pipeline: name, source });
          else if (other.source !== source) {
            ctx.addIssue({
              code: 'custom', path: at,
              message: `change topic ${topic} is already written by pipeline '${other.pipeline}' from another database (${other.source}; here ${source}): set changeTopicPrefix on one of them`,
            });
          }
          const twin = colliding.get(kafkaCollisionKey(topic));
          if (!twin) colliding.set(kafkaCollisionKey(topic), { topic, table: t.source });
          else if (twin.topic !== topic) {
            ctx.addIssue({
              code: 'custom', path: at,
              message: `change topic ${topic} of table ${t.source} differs from ${twin.topic} (table ${twin.table}) only in '.' versus '_', which Kafka refuses as a collision: set changeTopicPrefix on one of the pipelines, or rename one of the tables`,
            });
          }
        });
      }
      for (const [name, p] of Object.entries(c.pipelines)) conflictIssues(name, p, c.defaults.conflict, ctx);
      c.api?.tokens.forEach((t, i) => {
        t.pipelines?.forEach((p, j) => {
          if (!c.pipelines[p]) ctx.addIssue({ code: 'custom', path: ['api', 'tokens', i, 'pipelines', j], message: `no pipeline '${p}' (have: ${Object.keys(c.pipelines).join(', ')})` });
        });
        const twin = c.api!.tokens.findIndex((x) => x.name === t.name);
        if (twin !== i) ctx.addIssue({ code: 'custom', path: ['api', 'tokens', i, 'name'], message: `token name '${t.name}' is already used by api.tokens[${twin}]` });
      });
      if (c.api?.auth === 'required' && c.api.tokens.length === 0 && !c.api.oidc) {
        ctx.addIssue({ code: 'custom', path: ['api', 'auth'], message: 'auth: required, but no api.tokens and no api.oidc: nobody could call the API (create a token with `syncline auth token create`, or set auth: none)' });
      }
      for (const [name, p] of Object.entries(c.pipelines)) {
        const on = (p.history?.enabled ?? false) || p.tables.some((t) => t.history !== undefined && t.history.enabled !== false);
        if (on && !c.history?.url && !c.audit?.url) {
          ctx.addIssue({ code: 'custom', path: ['pipelines', name, p.history ? 'history' : 'tables'], message: `pipeline ${name} keeps a change history, but there is no history store: set history.url (or audit.url) to a PostgreSQL metadata database` });
        }
      }
      for (const [name, p] of Object.entries(c.pipelines)) encryptIssues(name, p, c.encryption !== undefined, ctx);
      for (const [name, p] of Object.entries(c.pipelines)) {
        const peerName = (p as { peer?: string }).peer;
        if (peerName === undefined) continue;
        const at = ['pipelines', name, 'peer'];
        const peer = c.pipelines[peerName] as { peer?: string } | undefined;
        if (peerName === name) ctx.addIssue({ code: 'custom', path: at, message: 'a pipeline cannot be its own peer' });
        else if (!peer) ctx.addIssue({ code: 'custom', path: at, message: `no pipeline '${peerName}' (have: ${Object.keys(c.pipelines).join(', ')})` });
        else if (peer.peer !== name) ctx.addIssue({ code: 'custom', path: at, message: `pipeline '${peerName}' must name '${name}' as its peer too (peer: ${name})` });
      }
      meshIssues(c, ctx);
    });
}

/**
 * Multi-way sync (ADR 0040): the databases joined by two-way pipelines must form a full mesh, a
 * pipeline each way between every two of them. A capture leaves out every syncline write into its
 * source (twoWayWritersInto), so a change travels one hop only, from the database where it was made
 * to each of the others: a ring (A → B → C → A) would never carry A's changes to C.
 */
function meshIssues(c: { pipelines: Record<string, { source?: unknown; peer?: string }> }, ctx: z.RefinementCtx): void {
  const edges = new Map<string, string>(); // "from\u0000to" -> pipeline
  const parent = new Map<string, string>();
  const find = (x: string): string => {
    let r = x;
    while (parent.get(r) !== r) r = parent.get(r)!;
    return r;
  };
  for (const [name, p] of Object.entries(c.pipelines)) {
    const peer = p.peer === undefined ? undefined : c.pipelines[p.peer];
    if (!peer || peer.peer !== name) continue; // reported above
    const from = sourceIdentity(p.source);
    const to = sourceIdentity(peer.source);
    for (const x of [from, to]) if (!parent.has(x)) parent.set(x, x);
    parent.set(find(from), find(to));
    edges.set(from + '\u0000' + to, name);
  }
  const groups = new Map<string, string[]>();
  for (const x of parent.keys()) groups.set(find(x), [...(groups.get(find(x)) ?? []), x]);
  for (const dbs of groups.values()) {
    if (dbs.length < 3) continue;
    const missing = dbs.flatMap((a) => dbs.filter((b) => b !== a && !edges.has(a + '\u0000' + b)).map((b) => `${a} → ${b}`));
    if (missing.length === 0) continue;
    const named = dbs.flatMap((a) => dbs.map((b) => edges.get(a + '\u0000' + b))).filter((n): n is string => n !== undefined);
    ctx.addIssue({
      code: 'custom',
      path: ['pipelines', named[0]!, 'peer'],
      message: `multi-way sync joins ${dbs.length} databases (${dbs.join(', ')}) through pipelines ${named.join(', ')}, but not every two of them: missing ${missing.join('; ')}. Each change travels one hop, from the database where it was made to each of the others, so every two databases need a pipeline each way (peers of each other); a database written under two spellings (localhost and 127.0.0.1) counts as two`,
    });
  }
}

/**
 * Two-way and multi-way sync: the pipelines whose writes land in this pipeline's source (each
 * two-way pipeline whose peer reads the same database as this one; its own peer among them). Its
 * capture leaves their writes out (no echo, no second hop) and carries their re-published decisions
 * (DECIDED_HEADER). Empty for a pipeline that is not two-way.
 */
export function twoWayWritersInto(config: { pipelines: Record<string, { source?: unknown; peer?: string }> }, name: string): string[] {
  const p = config.pipelines[name];
  if (p?.peer === undefined) return [];
  const here = sourceIdentity(p.source);
  return Object.entries(config.pipelines)
    .filter(([, r]) => r.peer !== undefined && config.pipelines[r.peer] !== undefined && sourceIdentity(config.pipelines[r.peer]!.source) === here)
    .map(([n]) => n);
}

/**
 * A pipeline whose target cannot apply its conflict strategy (SinkRegistration.conflictStrategies,
 * e.g. a message broker that cannot give a row back to compare with): refused at the field that sets
 * the strategy (the table's, the pipeline's, else the pipeline itself, the strategy coming from
 * defaults.conflict).
 */
function conflictIssues(name: string, p: { target: unknown; conflict?: ConflictConfig; tables: { conflict?: ConflictConfig }[] }, defaults: ConflictConfig, ctx: z.RefinementCtx): void {
  const type = (p.target as { type: string }).type;
  const allowed = registeredSinks().find((r) => r.type === type)?.conflictStrategies;
  if (!allowed) return;
  const why = (s: string, from: string) =>
    `target type ${type} cannot apply conflict strategy ${s} (${from}): it cannot read its rows back to compare with; it takes ${allowed.join(', ')} only: set conflict: { strategy: ${allowed[0]} } on pipeline ${name}`;
  const base = p.conflict ?? defaults;
  if (!allowed.includes(base.strategy)) {
    const from = p.conflict ? `pipelines.${name}.conflict.strategy` : 'defaults.conflict.strategy, whose default is latest-timestamp';
    ctx.addIssue({ code: 'custom', path: p.conflict ? ['pipelines', name, 'conflict', 'strategy'] : ['pipelines', name, 'target', 'type'], message: why(base.strategy, from) });
  }
  p.tables.forEach((t, i) => {
    if (t.conflict && !allowed.includes(t.conflict.strategy)) {
      ctx.addIssue({ code: 'custom', path: ['pipelines', name, 'tables', i, 'conflict', 'strategy'], message: why(t.conflict.strategy, `pipelines.${name}.tables[${i}].conflict.strategy`) });
    }
  });
}

/**
 * Field encryption settings that cannot work: encrypt without the encryption section, an encrypted
 * key column. (An encrypted latest-timestamp field is compared as its plaintext, decrypted in memory
 * by the applier; validation rules read encrypted columns' plaintext the same way.)
 */
function encryptIssues(name: string, p: { tables: { key?: string[]; encrypt?: string[] }[] }, hasKeys: boolean, ctx: z.RefinementCtx): void {
  p.tables.forEach((t, i) => {
    if (!t.encrypt) return;
    const at = ['pipelines', name, 'tables', i, 'encrypt'];
    if (!hasKeys) ctx.addIssue({ code: 'custom', path: at, message: 'encrypt needs the top-level encryption section (encryption: { activeKey: <key id> }, keys in SYNCLINE_ENCRYPTION_KEYS or encryption.keysFile)' });
    const keyCol = t.encrypt.find((c) => t.key?.includes(c));
    if (keyCol !== undefined) ctx.addIssue({ code: 'custom', path: at, message: `key column ${keyCol} cannot be encrypted (it is the Kafka key and binds each ciphertext to its row)` });
  });
}

/** Which database a source reads (connectors with a `connection` of host, port and database). */
function sourceIdentity(source: unknown): string {
  const s = source as { type: string; connection?: { host?: string; port?: number; database?: string } };
  return `${s.type}://${s.connection?.host ?? ''}:${s.connection?.port ?? ''}/${s.connection?.database ?? ''}`;
}

/**
 * The pipelines that follow `name` (fan-out, ADR 0039): they read its change topics. Disabled ones
 * included: the change topics are kept, and a follower enabled later reads them from their
 * beginning, so the leader's capture serves it already (whole rows, if its target needs them).
 */
export function followersOf(config: SynclineConfig, name: string): PipelineConfig[] {
  return Object.values(config.pipelines).filter((p) => p.follows === name);
}

/** Prefix of a pipeline's change topics: `<prefix>.cdc.<schema>.<table>`. */
export function changeTopicPrefix(config: { topicPrefix: string }, p: { changeTopicPrefix?: string }): string {
  return p.changeTopicPrefix ?? config.topicPrefix;
}

export type SynclineConfig = z.infer<ReturnType<typeof configSpec>>;
export type PipelineConfig = SynclineConfig['pipelines'][string];
export type TableConfig = z.infer<typeof tableSpec>;

/** Target tables a table's rows are written to: its route tables (tables[].route), else `target` (default: the source name). */
export function targetTablesOf(t: Pick<TableConfig, 'source' | 'target' | 'route'>): string[] {
  if (!t.route) return [t.target ?? t.source];
  const out = [...Object.values(t.route.to ?? {}), ...(t.route.cases ?? []).map((c) => c.table)];
  if (t.route.default !== undefined) out.push(t.route.default);
  return [...new Set(out)];
}
export type ConflictConfig = z.infer<typeof conflictSpec>;
export type RetryConfig = z.infer<typeof retrySpec>;

/** The start deadline in ms: SYNCLINE_START_TIMEOUT_MS when set, else the config's startTimeoutMs. */
export function startTimeoutOf(config: { startTimeoutMs: number }, env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.SYNCLINE_START_TIMEOUT_MS);
  return Number.isFinite(v) && v > 0 ? v : config.startTimeoutMs;
}
export type ObservabilityConfig = z.infer<typeof observabilitySpec>;
export type ApiConfig = z.infer<typeof apiSpec>;
export type ApiRole = (typeof API_ROLES)[number];
export type EncryptionConfig = z.infer<typeof encryptionSpec>;
export type ReportsConfig = z.infer<typeof reportsSpec>;
export type AuditConfig = z.infer<typeof auditSpec>;
export type HistoryStoreConfig = z.infer<typeof historyStoreSpec>;
export type HistoryRetention = z.infer<typeof historyRetentionSpec>;
export type AlertsConfig = z.infer<typeof alertsSpec>;
export type AlertRuleConfig = z.infer<typeof alertRuleSpec>;
export type AlertChannelConfig = z.infer<typeof alertChannelSpec>;
export type TransformStep = z.infer<typeof transformStepSpec>;
export type RouteConfig = z.infer<typeof routeSpec>;
