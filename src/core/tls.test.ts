import { test } from 'node:test';
import assert from 'node:assert/strict';
import { redisSecurity, readPem } from './tls.js';
import { tlsFailure } from './errors.js';
import { classifyKafkaError } from './kafka.js';
import { classifyRedisError, errorKind } from './errors.js';
import '../../connectors/index.js';
import { parseConfig } from './config/load.js';

test('tlsFailure finds a certificate or handshake error in what a client library wraps, and nothing else', () => {
  const socket = Object.assign(new Error('self-signed certificate in certificate chain'), { code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  assert.match(tlsFailure(socket)!, /^TLS certificate verification failed \(SELF_SIGNED_CERT_IN_CHAIN/);
  assert.match(tlsFailure(new TypeError('fetch failed', { cause: socket }))!, /SELF_SIGNED_CERT_IN_CHAIN/);
  assert.match(tlsFailure(Object.assign(new Error('x'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' }))!, /^TLS handshake failed/);
  // kafkajs after its retries: the message only, inside NumberOfRetriesExceeded.
  assert.ok(tlsFailure({ name: 'KafkaJSNumberOfRetriesExceeded', cause: new Error('Connection error: unable to verify the first certificate') }));
  assert.equal(tlsFailure(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:9'), { code: 'ECONNREFUSED' })), undefined);
  assert.equal(tlsFailure(new Error('Closed connection')), undefined);
});

test('Kafka and Redis classify a TLS failure and a refused SASL login as fatal, naming the peer and setting', () => {
  const cert = Object.assign(new Error('Connection error: self-signed certificate in certificate chain'), { name: 'KafkaJSConnectionError', retriable: true, code: 'SELF_SIGNED_CERT_IN_CHAIN' });
  const k = classifyKafkaError(cert, 'cannot connect', ['b:9094'], { ssl: { caFile: '/ca.pem', verify: true } });
  assert.equal(k.kind, 'fatal');
  assert.equal(k.code, 'KAFKA_TLS');
  assert.match(k.message, /^Kafka at b:9094 \(kafka\.brokers\): cannot connect: TLS certificate verification failed .*kafka\.ssl\.caFile \/ca\.pem/);
  const sasl = Object.assign(new Error('SASL SCRAM SHA512 authentication failed: invalid credentials'), { name: 'KafkaJSSASLAuthenticationError' });
  const s = classifyKafkaError(sasl, 'cannot connect', ['b:9094'], { sasl: { mechanism: 'scram-sha-512', username: 'bob', password: 'x' } });
  assert.equal(s.code, 'KAFKA_SASL_AUTHENTICATION');
  assert.match(s.message, /SASL authentication failed for user bob \(kafka\.sasl, mechanism scram-sha-512\)/);
  assert.equal(errorKind(classifyKafkaError(Object.assign(new Error('Connection error: connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), 'c', ['b:1'])), 'retriable');
  const r = classifyRedisError(Object.assign(new Error('Hostname/IP does not match certificate\'s altnames'), { code: 'ERR_TLS_CERT_ALTNAME_INVALID' }), 'Redis at h:6380 (redis.url)');
  assert.equal(r.code, 'REDIS_TLS');
  assert.equal(r.kind, 'fatal');
});

test('redis settings: rediss:// turns TLS on; a caFile with redis:// is refused; unreadable files are named', () => {
  assert.deepEqual(redisSecurity({ url: 'redis://h:6379', username: 'u', password: 'p' }), { username: 'u', password: 'p' });
  assert.deepEqual(redisSecurity({ url: 'rediss://h:6380' }), { tls: { rejectUnauthorized: true } });
  assert.throws(() => redisSecurity({ url: 'redis://h:6379', caFile: '/ca.pem' }), /redis\.caFile \/ redis\.verify are set but redis\.url is not rediss:/);
  assert.throws(() => redisSecurity({ url: 'rediss://h:6380', caFile: '/nonexistent/ca.pem' }), /cannot read redis\.caFile \/nonexistent\/ca\.pem/);
  assert.throws(() => readPem('/nonexistent/k.pem', 'observability.tls.keyFile'), /observability\.tls\.keyFile \/nonexistent\/k\.pem/);
});

test('config: kafka.sasl and the TLS sections parse, with passwords from the environment', () => {
  const c = parseConfig(
    'version: 1\nkafka:\n  ssl: { caFile: /ca.pem }\n  sasl: { username: u, password: "${PW}" }\nredis: { url: "rediss://h:6380", password: "${PW}" }\nschemaRegistry: { url: "https://r/apis/ccompat/v7", username: u, password: "${PW}" }\nobservability: { tls: { certFile: /c.pem, keyFile: /k.pem } }\npipelines: {}\n',
    'c.yaml',
    { PW: 's3cret' },
  );
  assert.deepEqual(c.kafka.ssl, { caFile: '/ca.pem', verify: true });
  assert.deepEqual(c.kafka.sasl, { mechanism: 'scram-sha-512', username: 'u', password: 's3cret' });
  assert.equal(c.redis.password, 's3cret');
  assert.equal(c.schemaRegistry.verify, true);
  assert.equal(c.observability?.tls?.certFile, '/c.pem');
});
