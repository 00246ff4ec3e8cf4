import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { awaitable, dependencyOf, DependencyWaits, kafkaLogKind, postgresDependency, startDeadlineError } from './dependencies.js';
import { fatal, poison, retriable } from './errors.js';
import { classifyPgError } from '../../connectors/postgres/errors.js';

const ADDRS = { kafka: ['127.0.0.1:9092'], registry: 'http://127.0.0.1:8081/apis/ccompat/v7', redis: 'redis://:secret@127.0.0.1:6380' };

/** A pino logger whose lines are collected as objects. */
function collectingLogger(level = 'debug') {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: pino({ level }, stream), lines };
}

test('dependencyOf names the dependency and its address from the error', () => {
  assert.deepEqual(dependencyOf(retriable('REGISTRY_UNAVAILABLE', 'cannot register schema for x at …: ECONNREFUSED'), ADDRS), { kind: 'registry', key: 'registry', name: `schema registry at ${ADDRS.registry} (schemaRegistry.url)` });
  const redis = dependencyOf(retriable('NET_ECONNREFUSED', 'cannot connect to Redis at 127.0.0.1:6380 (redis.url): connect ECONNREFUSED'), ADDRS);
  assert.equal(redis?.name, 'Redis at 127.0.0.1:6380 (redis.url)', 'no credentials in the name');
  assert.equal(dependencyOf(retriable('REDIS_LOADING', 'LOADING Redis is loading the dataset in memory'), ADDRS)?.kind, 'redis');
  const pgErr = classifyPgError(Object.assign(new Error('the database system is starting up'), { code: '57P03' }), 'pipeline orders-sync capture: cannot connect to PostgreSQL postgres@127.0.0.1:5433/shop');
  assert.equal(pgErr.kind, 'retriable');
  assert.deepEqual(dependencyOf(pgErr, ADDRS), { kind: 'postgres', key: 'postgres 127.0.0.1:5433/shop', name: 'PostgreSQL at 127.0.0.1:5433/shop (pipeline orders-sync source)' });
  const target = dependencyOf(retriable('PG_ECONNREFUSED', 'pipeline orders-sync target: cannot connect to PostgreSQL postgres@db:5432/dst: connect ECONNREFUSED'), ADDRS);
  assert.equal(target?.name, 'PostgreSQL at db:5432/dst (pipeline orders-sync target)');
  assert.notEqual(target?.key, dependencyOf(pgErr, ADDRS)?.key, 'each server is its own dependency');
  assert.equal(dependencyOf(retriable('KAFKA_UNAVAILABLE', 'Kafka at 127.0.0.1:9092 (kafka.brokers): cannot connect: Connection error'), ADDRS)?.name, 'Kafka at 127.0.0.1:9092 (kafka.brokers)');
  assert.equal(dependencyOf(Object.assign(new Error('Broker not connected'), { name: 'KafkaJSConnectionError' }), ADDRS)?.kind, 'kafka');
  assert.equal(dependencyOf(new TypeError('x is undefined'), ADDRS), undefined);
});

test('awaitable: retriable and network errors are waited for; fatal, poison and bugs are not', () => {
  assert.equal(awaitable(retriable('X', 'x')), true);
  assert.equal(awaitable(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' })), true);
  assert.equal(awaitable(fatal('PG_28P01', 'password authentication failed')), false);
  assert.equal(awaitable(poison('AVRO_ENCODE', 'bad value')), false);
  assert.equal(awaitable(new TypeError('cannot read properties of undefined')), false);
});

test('kafkaLogKind: metadata lag is transient, an unreachable Kafka or coordinator is unavailable', () => {
  assert.equal(kafkaLogKind('Response Metadata(key: 3, version: 6)', 'This server does not host this topic-partition'), 'transient');
  assert.equal(kafkaLogKind('Response CreateTopics(key: 19, version: 3)', 'Topic creation errors'), 'transient');
  assert.equal(kafkaLogKind('Response ListOffsets(key: 2, version: 3)', 'This server is not the leader for that topic-partition'), 'transient');
  // After a crash kafkajs logs the restart on its own line (the crash's cause was classed on its own).
  assert.equal(kafkaLogKind('Restarting the consumer in 200ms'), 'transient');
  assert.equal(kafkaLogKind('Response GroupCoordinator(key: 10, version: 2)', 'The group coordinator is not available'), 'unavailable');
  assert.equal(kafkaLogKind('Response JoinGroup(key: 11, version: 5)', "The coordinator is loading and hence can't process requests for this group"), 'unavailable');
  assert.equal(kafkaLogKind('Failed to connect to seed broker, trying another broker from the list: Connection error: connect ECONNREFUSED 127.0.0.1:9092'), 'unavailable');
  assert.equal(kafkaLogKind('Crash: KafkaJSNumberOfRetriesExceeded: Connection error: connect ECONNREFUSED 127.0.0.1:9092'), 'unavailable');
  assert.equal(kafkaLogKind('Crash: KafkaJSNumberOfRetriesExceeded: cannot connect to Redis at 127.0.0.1:6379 (redis.url): connect ECONNREFUSED'), 'other', "another dependency's failure is not Kafka's");
  assert.equal(kafkaLogKind('Response Produce(key: 0, version: 7)', 'The request included message batch larger than the configured segment size on the server'), 'other');
});

test('startDeadlineError keeps the last error (code, message naming the dependency) or says what did not answer', () => {
  const e = startDeadlineError(retriable('NET_ECONNREFUSED', 'cannot connect to Redis at 127.0.0.1:6380 (redis.url): connect ECONNREFUSED'), 15000, 'Redis');
  assert.equal(e.code, 'NET_ECONNREFUSED');
  assert.match(e.message, /^cannot connect to Redis at 127\.0\.0\.1:6380 \(redis\.url\): connect ECONNREFUSED \(still failing at the start deadline, 15s after the start: startTimeoutMs\)$/);
  const silent = startDeadlineError(undefined, 120000, 'Redis at 127.0.0.1:6380 (redis.url)');
  assert.equal(silent.code, 'START_TIMEOUT');
  assert.equal(silent.message, 'start did not complete within 120s (startTimeoutMs): Redis at 127.0.0.1:6380 (redis.url) did not answer');
});

test('DependencyWaits: one warning per dependency and outage, one info when it answers', () => {
  const { log, lines } = collectingLogger();
  let now = 1000;
  const w = new DependencyWaits(log, () => now);
  const kafka = { kind: 'kafka' as const, key: 'kafka', name: 'Kafka at 127.0.0.1:9092 (kafka.brokers)' };
  const redis = { kind: 'redis' as const, key: 'redis', name: 'Redis at 127.0.0.1:6379 (redis.url)' };
  for (let i = 0; i < 5; i++) w.waiting(kafka, new Error('The group coordinator is not available'), 'pipeline a process');
  w.waiting(redis, new Error('connect ECONNREFUSED'), 'Redis');
  assert.deepEqual(w.awaited(), [kafka.name, redis.name]);
  now += 2500;
  w.ready(kafka);
  w.ready(kafka);
  w.ready('nothing');
  const at = (level: number) => lines.filter((l) => l.level === level);
  assert.equal(at(40).length, 2, 'one warning for Kafka, one for Redis');
  assert.match(at(40)[0]!.msg, /^dependency\.waiting: Kafka at 127\.0\.0\.1:9092 \(kafka\.brokers\) is not ready yet; pipeline a process waits for it and retries \(until the start deadline\): The group coordinator is not available$/);
  assert.equal(at(20).length, 4, 'the repeats at debug');
  assert.equal(at(30).length, 1);
  assert.equal(at(30)[0]!.msg, 'dependency.ready: Kafka at 127.0.0.1:9092 (kafka.brokers) is there (waited 2.5 s)');
  assert.deepEqual(w.awaited(), [redis.name]);
  w.waiting(kafka, new Error('Connection error'), 'the Kafka client');
  assert.equal(at(40).length, 3, 'a new outage is said again');
});

test('DependencyWaits during a start: a dependency that answers one stage and fails the next is one outage, its end said when the start is done', () => {
  const { log, lines } = collectingLogger();
  const w = new DependencyWaits(log);
  const kafka = { kind: 'kafka' as const, key: 'kafka', name: 'Kafka at 127.0.0.1:9092 (kafka.brokers)' };
  w.hold();
  w.waiting(kafka, new Error('Connection error: connect ECONNREFUSED'), 'pipeline a capture');
  w.ready(kafka); // topics created
  assert.deepEqual(w.awaited(), [], 'answered');
  w.waiting(kafka, new Error('The group coordinator is not available'), 'the Kafka client'); // the group: not yet
  assert.deepEqual(w.awaited(), [kafka.name]);
  w.ready(kafka); // joined
  assert.equal(lines.filter((l) => l.level === 30).length, 0, 'nothing said before the start is done');
  w.release();
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'one warning');
  assert.equal(lines.filter((l) => l.level === 30).length, 1, 'one end');
  w.waiting(kafka, new Error('Connection error'), 'the Kafka client');
  assert.equal(lines.filter((l) => l.level === 40).length, 2, 'after the start, a new outage is said again');
});

test('a PostgreSQL error that names no server is the stage\'s own (capture: its source), one dependency with the others naming it', () => {
  const source = postgresDependency({ host: '127.0.0.1', port: 15432, database: 'chaos' }, 'chaos-split', 'source');
  const addrs = { ...ADDRS, source };
  const stream = dependencyOf(retriable('PG_CONNECTION', 'pipeline chaos-split: replication stream failed: Connection terminated unexpectedly'), addrs);
  const connect = dependencyOf(retriable('PG_57P03', 'pipeline chaos-split capture: cannot connect to PostgreSQL postgres@127.0.0.1:15432/chaos: the database system is shutting down'), addrs);
  assert.equal(stream?.key, connect?.key);
  assert.equal(stream?.name, 'PostgreSQL at 127.0.0.1:15432/chaos (pipeline chaos-split source)');
  assert.equal(kafkaLogKind('Failed to send messages: The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing'), 'transient');
});

test('a source connector\'s own error codes are its dependency (codePrefix), whatever the message says', () => {
  const maria = { kind: 'other' as const, key: 'mariadb db:3306', name: 'MariaDB at db:3306/shop (pipeline p source)', codePrefix: 'MARIADB_' };
  assert.equal(dependencyOf(retriable('MARIADB_PROTOCOL_CONNECTION_LOST', 'binlog: Connection lost'), { ...ADDRS, source: maria }), maria);
  assert.equal(dependencyOf(retriable('MARIADB_PROTOCOL_CONNECTION_LOST', 'binlog: Connection lost'), ADDRS), undefined);
});
