/**
 * Every type of the contract (test/contract/fixtures.ts, the PostgreSQL source fixture's cases: edge
 * values, NULLs, emoji, bytes, arrays, microsecond timestamps) through the RabbitMQ source into the
 * PostgreSQL sink, in both formats: syncline (format 1, the tagged JSON the RabbitMQ target
 * publishes, made from the canonical rows read from PostgreSQL) and plain JSON rows (format row).
 * PostgreSQL is the truth (the contract's literals inserted there); for format row each row is
 * exported as a producer writes JSON (numbers, dates and times as text, booleans and arrays as JSON,
 * bytea as base64, jsonb as its text: test/contract/file-fixtures.ts); the messages are published to
 * a queue, and the target read back equal to the declared values.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import amqp from 'amqplib';
import '../../index.js';
import { parseConfig } from '../../../src/core/config/load.js';
import { Runtime } from '../../../src/runtime.js';
import { stringifyTagged } from '../../../src/core/tagged-json.js';
import { quoteIdent } from '../../postgres/pgtypes.js';
import { deleteTopics, sql, uid, waitFor } from '../../../test/helpers.js';
import { postgresSink, postgresSource } from '../../../test/contract/postgres-fixtures.js';
import { valueExpr } from '../../../test/contract/file-fixtures.js';
import { rowDiff, typeRows } from '../../../test/contract/sink-contract.js';

const RABBIT = { host: '127.0.0.1', port: 5672, user: 'guest', password: 'guest' };
const URL = `amqp://${RABBIT.user}:${RABBIT.password}@${RABBIT.host}:${RABBIT.port}`;

async function roundTrip(t: TestContext, format: 'row' | 'syncline'): Promise<void> {
  const id = uid();
  const prefix = `t${id}`;
  const queue = `syncline_t_${id}_types_${format}`;
  const types = postgresSource.types;
  const columns: [string, string][] = [['id', 'bigint'], ...types.map((c): [string, string] => [c.column, c.sourceType])];
  const src = await postgresSource.createSource(id);
  const dst = await postgresSink.createTarget(id);
  let rt: Runtime | undefined;
  t.after(async () => {
    await rt?.stop().catch(() => undefined);
    const c = await amqp.connect(URL);
    await (await c.createChannel()).deleteQueue(queue).catch(() => undefined);
    await c.close().catch(() => undefined);
    await src.drop(prefix).catch(() => undefined);
    await dst.drop().catch(() => undefined);
    await deleteTopics(prefix).catch(() => undefined);
  });
  await src.createTable({ name: 'cp_types', columns, key: ['id'] });
  const rows = typeRows(types, 1);
  await src.insertLiterals('cp_types', rows.literals);
  assert.deepEqual(rowDiff(rows.expected, await src.readAll('cp_types', ['id'])), [], 'the source reads back as declared');
  const truth = await src.readAll('cp_types', ['id']);
  const r = await sql(src.database, `select json_build_object(${columns.map(([n, ty]) => `'${n}', ${valueExpr(n, ty)}`).join(', ')})::text as j from ${quoteIdent('cp_types')} order by id`);

  const conn = await amqp.connect(URL);
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  if (format === 'row') for (const x of r.rows as { j: string }[]) ch.sendToQueue(queue, Buffer.from(x.j), { persistent: true });
  else {
    // What the RabbitMQ target publishes (../message.ts, format 1): tagged JSON of the canonical row.
    truth.forEach((row, i) => {
      const body = { format: 1, op: 'upsert', table: 'public.cp_types', key: { id: row.id }, values: row, keep: [], position: `${(0x16b3748 + i).toString(16).padStart(16, '0')}:00000000`, sourceTsMs: 1795608000123 };
      ch.sendToQueue(queue, Buffer.from(stringifyTagged(body)), { persistent: true });
    });
  }
  await ch.waitForConfirms();
  await conn.close();

  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 1 },
    observability: { port: 0 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: {
      types: {
        source: { type: 'rabbitmq', connection: RABBIT, queue, format, lingerMs: 5, tables: [{ table: 'public.cp_types', key: ['id'], columns: Object.fromEntries(columns) }] },
        target: dst.config(),
        conflict: { strategy: 'source-wins' },
        tables: [{ source: 'public.cp_types', target: dst.qualified('cp_types') }],
      },
    },
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-rmq-types-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc));
  rt = new Runtime(parseConfig(JSON.stringify(doc), file, {}), new Set(['capture', 'process', 'sink']));
  (await rt.start()).done.catch(() => undefined);
  let last: string[] = [];
  await waitFor('the target reads back as declared', async () => {
    last = rowDiff(rows.expected, await dst.readAll('cp_types', ['id']));
    return last.length === 0;
  }, 60_000, 300).catch((err: Error) => assert.fail(`${err.message}\n${last.slice(0, 30).join('\n')}`));
}

test('RabbitMQ source, format row (plain JSON rows): every contract type round-trips into PostgreSQL', { timeout: 120_000 }, (t) => roundTrip(t, 'row'));
test('RabbitMQ source, format syncline (format 1, tagged JSON): every contract type round-trips into PostgreSQL', { timeout: 120_000 }, (t) => roundTrip(t, 'syncline'));
