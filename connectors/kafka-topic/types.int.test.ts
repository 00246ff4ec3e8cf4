/**
 * Every type of the contract (test/contract/fixtures.ts, the PostgreSQL source fixture's cases: edge
 * values, NULLs, emoji, bytes, arrays, microsecond timestamps) through the kafka-topic source into the
 * PostgreSQL sink, in two shapes: plain JSON rows (envelope row) and Debezium JSON change events
 * without an embedded schema (envelope debezium, op c; integers as JSON numbers, as Debezium's
 * JsonConverter writes them: int8's extremes are beyond a double's exact integers). PostgreSQL is the truth (the contract's
 * literals inserted there); each row is exported as a producer writes JSON (numbers, dates and times
 * as text, booleans and arrays as JSON, bytea as base64, jsonb as its text: test/contract/file-fixtures.ts),
 * written to a topic, and each target table read back equal to the declared values.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import '../index.js';
import { parseConfig } from '../../src/core/config/load.js';
import { Runtime } from '../../src/runtime.js';
import { deleteTopics, sql, uid, waitFor } from '../../test/helpers.js';
import { postgresSink, postgresSource } from '../../test/contract/postgres-fixtures.js';
import { valueExpr } from '../../test/contract/file-fixtures.js';
import { rowDiff, typeRows } from '../../test/contract/sink-contract.js';

const BROKERS = ['127.0.0.1:9092'];

test('kafka-topic source: every contract type round-trips into PostgreSQL, as JSON rows and as Debezium JSON events', { timeout: 120_000 }, async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const types = postgresSource.types;
  const columns: [string, string][] = [['id', 'bigint'], ...types.map((c): [string, string] => [c.column, c.sourceType])];
  const src = await postgresSource.createSource(id);
  const dst = await postgresSink.createTarget(id);
  const kafka = new Kafka({ brokers: BROKERS, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  const runtimes: Runtime[] = [];
  t.after(async () => {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    await producer.disconnect().catch(() => undefined);
    await src.drop(prefix).catch(() => undefined);
    await dst.drop().catch(() => undefined);
    await deleteTopics(prefix).catch(() => undefined);
  });
  await src.createTable({ name: 'cp_types', columns, key: ['id'] });
  const rows = typeRows(types, 1);
  await src.insertLiterals('cp_types', rows.literals);
  assert.deepEqual(rowDiff(rows.expected, await src.readAll('cp_types', ['id'])), [], 'the source reads back as declared');
  const r = await sql(src.database, `select id::text as id, json_build_object(${columns.map(([n, ty]) => `'${n}', ${valueExpr(n, ty)}`).join(', ')})::text as j from cp_types order by id`);
  const records = r.rows as { id: string; j: string }[];
  // Debezium's JsonConverter writes int16/32/64 as JSON numbers (int8's extremes are beyond a double's exact integers).
  const dbzExpr = (n: string, ty: string) => (ty === 'bigint' || ty === 'integer' || ty === 'smallint' ? `"${n}"` : valueExpr(n, ty));
  const d = await sql(src.database, `select json_build_object(${columns.map(([n, ty]) => `'${n}', ${dbzExpr(n, ty)}`).join(', ')})::text as j from cp_types order by id`);
  const dbzRows = d.rows as { j: string }[];
  assert.match(dbzRows[1]!.j, /"c_big" : 9223372036854775807\b/);

  const topic = { row: `${prefix}.foreign.rows`, debezium: `${prefix}.foreign.dbz` };
  await producer.connect();
  await producer.send({ topic: topic.row, messages: records.map((x) => ({ key: JSON.stringify({ id: x.id }), value: x.j })) });
  await producer.send({
    topic: topic.debezium,
    messages: records.map((x, i) => ({
      key: JSON.stringify({ id: x.id }),
      value: `{"before":null,"after":${dbzRows[i]!.j},"source":{"connector":"postgresql","db":"shop","schema":"public","table":"cp_types","lsn":${1000 + i}},"op":"c","ts_ms":1795608000123}`,
    })),
  });

  const pipeline = (envelope: string, tp: string, table: string) => ({
    source: { type: 'kafka-topic', brokers: BROKERS, group: `${prefix}.${envelope}`, format: 'json', envelope, sessionTimeoutMs: 6000, lingerMs: 5, topics: [{ topic: tp, table: `public.${table}`, key: ['id'], columns: Object.fromEntries(columns) }] },
    target: dst.config(),
    conflict: { strategy: 'source-wins' },
    tables: [{ source: `public.${table}`, target: dst.qualified(table) }],
  });
  const doc = {
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: BROKERS, partitions: 1 },
    observability: { port: 0 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: { rows: pipeline('row', topic.row, 'cp_rows'), dbz: pipeline('debezium', topic.debezium, 'cp_dbz') },
  };
  const dir = mkdtempSync(join(tmpdir(), 'syncline-kt-types-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc));
  const rt = new Runtime(parseConfig(JSON.stringify(doc), file, {}), new Set(['capture', 'process', 'sink']));
  runtimes.push(rt);
  (await rt.start()).done.catch(() => undefined);
  for (const table of ['cp_rows', 'cp_dbz']) {
    let last: string[] = [];
    await waitFor(`${table}: the target reads back as declared`, async () => {
      last = rowDiff(rows.expected, await dst.readAll(table, ['id']));
      return last.length === 0;
    }, 60_000, 300).catch((err: Error) => assert.fail(`${err.message}\n${last.slice(0, 30).join('\n')}`));
  }
});
