/**
 * The messages the RabbitMQ sink publishes, decided here without I/O: body, properties, headers and
 * routing key of one SinkRecord.
 *
 * Body (JSON, content type application/json, UTF-8), e.g. an update of public.items key id=7:
 *   {"format":1,"op":"upsert","table":"public.items","key":{"id":{"$n":"7"}},
 *    "values":{"id":{"$n":"7"},"name":"pen","price":"1.50"},"keep":[],
 *    "position":"00000000016b3748:00000002","sourceTsMs":1795608000123,"types":{"id":"bigint",…}}
 * Values are syncline's canonical values (src/core/types.ts) in tagged JSON (src/core/tagged-json.ts):
 * {"$n":"…"} a bigint, {"$b":"base64"} bytes, {"$f":"NaN"} a non-finite float; everything else is plain
 * JSON (decimals and timestamps are strings). `op` is upsert, delete (values null) or truncate (key {},
 * values null). `keep` lists columns whose value the source did not send (unchanged TOASTed values):
 * they are absent from `values`, and the consumer keeps what it has. `types` (the columns' PostgreSQL
 * types as the source declares them) is there when the change carries them.
 *
 * Properties: persistent (delivery mode 2), messageId (below), timestamp (the source commit time, in
 * seconds), type = op, appId 'syncline'. Headers: syncline-position, syncline-table, syncline-op,
 * syncline-key (the key as the JSON array of its values).
 *
 * messageId is the idempotency id: '<position>/<12 hex digits of sha1(table NUL keyString)>'. The
 * position alone does not name one change: every row of a snapshot has the snapshot's position, and
 * the deletes of an end-of-snapshot sweep share theirs. The same change published twice (a crash
 * between the broker's confirm and the Kafka offset commit, a batch retried after some of its
 * messages were confirmed) has the same messageId, so a consumer that remembers the ids it processed
 * (or the last position per key: positions of one key only grow) drops the copy.
 */
import { createHash } from 'node:crypto';
import type { Options } from 'amqplib';
import type { Row } from '../../src/core/envelope.js';
import { parseTableName } from '../../src/core/names.js';
import { stringifyTagged } from '../../src/core/tagged-json.js';
import { keyString, type SinkRecord } from '../../src/sink/sink.js';

/** The body's `format`: bumped if the body's shape ever changes incompatibly. */
export const MESSAGE_FORMAT = 1;
export const MAX_ROUTING_KEY_BYTES = 255;

export type MessageOp = 'upsert' | 'delete' | 'truncate';

export interface MessageBody {
  format: number;
  op: MessageOp;
  table: string;
  key: Row;
  values: Row | null;
  keep: string[];
  position: string;
  sourceTsMs: number;
  types?: Record<string, string>;
}

export interface OutMessage {
  routingKey: string;
  body: Buffer;
  options: Options.Publish;
  messageId: string;
}

const TOKENS = new Set(['table', 'schema', 'name', 'op', 'key']);

/** What is wrong with a routing key template, or null. */
export function templateProblem(template: string): string | null {
  const re = /\{([^{}]*)\}/g;
  for (let m = re.exec(template); m; m = re.exec(template)) {
    if (!TOKENS.has(m[1]!)) return `unknown placeholder {${m[1]}} in routing key template '${template}' (known: ${[...TOKENS].map((t) => `{${t}}`).join(', ')})`;
  }
  const rest = template.replace(re, '');
  if (/[{}]/.test(rest)) return `unbalanced { or } in routing key template '${template}'`;
  return null;
}

/** A key value as routing keys write it: strings as they are, bigints and numbers in digits, bytes in hex. */
function keyPart(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (Buffer.isBuffer(v)) return v.toString('hex');
  return String(v);
}

/** The routing key of a record: `template` with its placeholders filled in. */
export function routingKey(template: string, rec: Pick<SinkRecord, 'table' | 'op' | 'key'>): string {
  let parts: { schema: string; table: string } | undefined;
  const partsOf = () => (parts ??= parseTableName(rec.table));
  return template.replace(/\{(table|schema|name|op|key)\}/g, (_m, t: string) => {
    switch (t) {
      case 'table':
        return rec.table;
      case 'schema':
        return partsOf().schema;
      case 'name':
        return partsOf().table;
      case 'op':
        return messageOp(rec.op);
      default:
        return Object.values(rec.key ?? {}).map(keyPart).join('.');
    }
  });
}

export function messageOp(op: SinkRecord['op']): MessageOp {
  return op === 'upsert' ? 'upsert' : op === 'truncate' ? 'truncate' : 'delete';
}

/** The idempotency id of a change: its position and a digest of its table and key (see above). */
export function messageId(rec: Pick<SinkRecord, 'table' | 'key' | 'position'>): string {
  const digest = createHash('sha1').update(rec.table + '\u0000' + keyString(rec.key ?? {})).digest('hex').slice(0, 12);
  return `${rec.position}/${digest}`;
}

export function messageBody(rec: SinkRecord): MessageBody {
  const op = messageOp(rec.op);
  return {
    format: MESSAGE_FORMAT,
    op,
    table: rec.table,
    key: op === 'truncate' ? {} : rec.key,
    values: op === 'upsert' ? rec.values : null,
    keep: op === 'upsert' ? rec.keep : [],
    position: rec.position,
    sourceTsMs: rec.sourceTsMs,
    ...(op === 'upsert' && rec.columnTypes ? { types: rec.columnTypes } : {}),
  };
}

/** Everything publish() needs for one record (throws NameError for a table name that does not parse, with {schema}/{name}). */
export function outMessage(rec: SinkRecord, template: string): OutMessage {
  const body = messageBody(rec);
  const id = messageId(rec);
  return {
    routingKey: routingKey(template, rec),
    body: Buffer.from(stringifyTagged(body), 'utf8'),
    messageId: id,
    options: {
      persistent: true,
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      messageId: id,
      timestamp: Math.floor(rec.sourceTsMs / 1000),
      type: body.op,
      appId: 'syncline',
      headers: {
        'syncline-position': rec.position,
        'syncline-table': rec.table,
        'syncline-op': body.op,
        'syncline-key': keyString(body.key),
      },
    },
  };
}
