/**
 * npm test: alone (a private TLS stack: Kafka, registry, Redis, MariaDB).
 * TLS everywhere (issue 22), against real servers of a private stack started with
 * SYNCLINE_STACK_TLS=1 (scripts/stack.sh): Kafka with a SASL_SSL listener (SCRAM-SHA-512), Redis
 * TLS-only with an ACL user, PostgreSQL with ssl on and plaintext TCP refused, the registry
 * HTTPS-only; the CA and certificates made by openssl at `stack up`. The shared stack is untouched.
 *
 * - plaintext clients are refused by the TLS-only Kafka listener and the Redis TLS port;
 * - a wrong CA is refused with a fatal error naming the peer (Kafka, Redis, registry);
 * - a wrong SASL password and a wrong Redis password are fatal and name the user;
 * - the HTTP API over HTTPS, with and without required client certificates;
 * - PostgreSQL → Kafka → PostgreSQL and PostgreSQL → Kafka → MariaDB pipelines with every hop on
 *   TLS (Kafka SASL_SSL, Redis TLS + ACL user, registry HTTPS, databases verify-full) converge.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import mysql from 'mysql2/promise';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { privateStack, type PrivateStack, type StackTls } from './private-stack.js';
import { sleep, uid, waitFor } from './helpers.js';
import { KafkaClient } from '../src/core/kafka.js';
import { AvroCodec } from '../src/core/codec.js';
import { classifyRedisError, errorKind, SynclineError } from '../src/core/errors.js';
import { redisSecurity } from '../src/core/tls.js';
import { rootLogger } from '../src/core/log.js';
import { ObservabilityServer } from '../src/observe/http.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';

const log = rootLogger.child({ test: 'tls' });

function kafkaSettings(brokers: string, extra: Record<string, unknown>) {
  return { brokers: [brokers], clientId: 'syncline-tls-test', partitions: 1, replicationFactor: 1, retentionDays: 1, ...extra };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  assert.fail('expected a rejection');
}

/** GET over HTTPS trusting `ca`, optionally with a client certificate: [status, body] or the error. */
function httpsGet(url: string, ca: string, client?: { cert: string; key: string }): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca, ...(client ?? {}), agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve([res.statusCode ?? 0, body]));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** A PostgreSQL client of the private cluster, verify-full against the stack's CA. */
function pgClient(s: PrivateStack, database: string): pg.Client {
  return new pg.Client({ host: '127.0.0.1', port: s.ports.postgres, user: 'postgres', database, ssl: { ca: readFileSync(s.tls!.caFile, 'utf8'), rejectUnauthorized: true } });
}

async function pgq(s: PrivateStack, database: string, text: string): Promise<pg.QueryResult> {
  const c = pgClient(s, database);
  await c.connect();
  try {
    return await c.query(text);
  } finally {
    await c.end();
  }
}

test('TLS everywhere: TLS-only listeners refuse plaintext, a wrong CA or password is fatal and named, and a pipeline runs with every hop on TLS', { timeout: 240_000 }, async (t) => {
  const s = await privateStack({ tls: true });
  t.after(() => s.down());
  const started = Date.now();
  await s.up('postgres', 'redis', 'kafka', 'registry', 'mariadb');
  t.diagnostic(`private TLS stack up in ${Math.round((Date.now() - started) / 1000)} s`);
  const tls: StackTls = s.tls!;
  const sasl = { mechanism: 'scram-sha-512' as const, username: tls.kafkaUser(), password: tls.kafkaPassword() };
  const ca = readFileSync(tls.caFile, 'utf8');

  await t.test('Kafka: a plaintext client gets nothing from the SASL_SSL listener', async () => {
    const kafka = new Kafka({ brokers: [tls.brokers], logLevel: logLevel.NOTHING, connectionTimeout: 3000, requestTimeout: 3000, retry: { retries: 0 } });
    const admin = kafka.admin();
    const err = await rejection(admin.connect());
    t.diagnostic(`plaintext to the SASL_SSL listener: ${err.message}`);
    await admin.disconnect().catch(() => undefined);
  });

  await t.test('Kafka: SASL_SSL with the right CA and password works; a wrong CA and a wrong password are fatal and named', async () => {
    const good = new KafkaClient(kafkaSettings(tls.brokers, { ssl: { caFile: tls.caFile, verify: true }, sasl }), log);
    const admin = await good.getAdmin();
    const topic = `tls-test-${uid()}`;
    await good.ensureTopics([topic]);
    assert.ok((await admin.listTopics()).includes(topic), 'a topic created over SASL_SSL');
    await good.close();

    const t0 = Date.now();
    const [wrongCa, wrongPassword] = await Promise.all([
      rejection(new KafkaClient(kafkaSettings(tls.brokers, { ssl: { caFile: tls.otherCaFile, verify: true }, sasl }), log).getAdmin()),
      rejection(new KafkaClient(kafkaSettings(tls.brokers, { ssl: { caFile: tls.caFile, verify: true }, sasl: { ...sasl, password: 'not-the-password' } }), log).getAdmin()),
    ]);
    t.diagnostic(`wrong CA: ${wrongCa.message}`);
    assert.ok(Date.now() - t0 < 5000, `a wrong CA and a wrong password are fatal at once, not after kafkajs' retries (${Date.now() - t0} ms)`);
    t.diagnostic(`wrong password: ${wrongPassword.message}`);
    assert.equal(errorKind(wrongCa), 'fatal');
    assert.equal((wrongCa as SynclineError).code, 'KAFKA_TLS');
    assert.match(wrongCa.message, new RegExp(`Kafka at ${tls.brokers}.*TLS certificate verification failed.*kafka\\.ssl\\.caFile ${tls.otherCaFile.replace(/[.]/g, '\\.')}`));
    assert.equal(errorKind(wrongPassword), 'fatal');
    assert.equal((wrongPassword as SynclineError).code, 'KAFKA_SASL_AUTHENTICATION');
    assert.match(wrongPassword.message, new RegExp(`Kafka at ${tls.brokers}.*SASL authentication failed for user ${sasl.username}`));
  });

  await t.test('Redis: plaintext refused on the TLS port; a wrong CA and a wrong password are fatal and named', async () => {
    const attempt = async (url: string, r: Record<string, unknown>) => {
      const client = new Redis(url, { ...redisSecurity({ url, ...r }), lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 });
      let last: Error | undefined;
      client.on('error', (e: Error) => (last = e));
      try {
        await client.connect();
        return await client.ping();
      } catch (err) {
        throw last ?? err;
      } finally {
        client.disconnect();
      }
    };
    const user = { username: tls.redisUser(), password: tls.redisPassword() };
    assert.equal(await attempt(s.redisUrl, { caFile: tls.caFile, ...user }), 'PONG', 'rediss:// with the CA and the ACL user');
    const plain = await rejection(attempt(`redis://127.0.0.1:${s.ports.redis}`, user));
    t.diagnostic(`plaintext to the Redis TLS port: ${plain.message}`);
    const wrongCa = classifyRedisError(await rejection(attempt(s.redisUrl, { caFile: tls.otherCaFile, ...user })), `Redis at 127.0.0.1:${s.ports.redis} (redis.url)`);
    t.diagnostic(`wrong CA: ${wrongCa.message}`);
    assert.equal(wrongCa.kind, 'fatal');
    assert.equal(wrongCa.code, 'REDIS_TLS');
    assert.match(wrongCa.message, new RegExp(`Redis at 127\\.0\\.0\\.1:${s.ports.redis} \\(redis\\.url\\): TLS certificate verification failed`));
    const wrongPw = classifyRedisError(await rejection(attempt(s.redisUrl, { caFile: tls.caFile, username: user.username, password: 'nope' })), 'Redis');
    assert.equal(wrongPw.kind, 'fatal');
    assert.equal(wrongPw.code, 'REDIS_WRONGPASS');
  });

  await t.test('registry: HTTPS with the CA registers a schema; a wrong CA is fatal and named', async () => {
    const good = new AvroCodec({ url: s.registryUrl, caFile: tls.caFile, verify: true });
    const id = await good.register(`tls-test-${uid()}-value`, { type: 'record', name: 'T', fields: [{ name: 'a', type: 'int' }] });
    assert.ok(id > 0);
    const bad = new AvroCodec({ url: s.registryUrl, caFile: tls.otherCaFile, verify: true });
    const err = await rejection(bad.compatible(`tls-test-${uid()}-value`, { type: 'string' }));
    t.diagnostic(`registry, wrong CA: ${err.message}`);
    assert.equal(errorKind(err), 'fatal');
    assert.match(err.message, /schema registry at https:\/\/127\.0\.0\.1:\d+\/apis\/ccompat\/v7.*TLS certificate verification failed/);
  });

  await t.test('registry basic auth: credentials sent by the registry client and by syncline\'s own calls; a wrong password is fatal', async () => {
    // Apicurio 2.6 has basic auth only through Keycloak: an HTTPS proxy that checks basic auth (as a
    // reverse proxy in front of a registry would) forwards to the real registry.
    const expected = `Basic ${Buffer.from('registry-user:registry-pw').toString('base64')}`;
    const upstream = new URL(s.registryUrl);
    const seen: string[] = [];
    const proxy = https.createServer({ cert: readFileSync(tls.serverCert), key: readFileSync(tls.serverKey) }, (req, res) => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization === expected ? 'auth-ok' : 'auth-bad'}`);
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="registry"', 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error_code: 401, message: 'Unauthorized' }));
        return;
      }
      const fwd = https.request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host }, ca }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.on('error', (err) => res.destroy(err));
      req.pipe(fwd);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
    const url = `https://127.0.0.1:${(proxy.address() as { port: number }).port}/apis/ccompat/v7`;
    try {
      const subject = `tls-auth-${uid()}-value`;
      const good = new AvroCodec({ url, caFile: tls.caFile, verify: true, username: 'registry-user', password: 'registry-pw' });
      const id = await good.register(subject, { type: 'record', name: 'A', fields: [{ name: 'a', type: 'int' }] });
      assert.ok(id > 0);
      assert.deepEqual(await good.compatible(subject, { type: 'record', name: 'A', fields: [{ name: 'a', type: 'int' }, { name: 'b', type: ['null', 'int'], default: null }] }), { compatible: true });
      assert.ok(seen.length >= 3 && seen.every((l) => l.endsWith('auth-ok')), `every request carried the credentials: ${seen.join('; ')}`);
      const bad = new AvroCodec({ url, caFile: tls.caFile, verify: true, username: 'registry-user', password: 'wrong' });
      const err = await rejection(bad.register(`tls-auth-${uid()}-value`, { type: 'record', name: 'B', fields: [{ name: 'b', type: 'int' }] }));
      t.diagnostic(`registry, wrong password: ${err.message}`);
      assert.equal(errorKind(err), 'fatal');
      assert.equal((err as SynclineError).code, 'REGISTRY_AUTH');
    } finally {
      await new Promise<void>((r) => proxy.close(() => r()));
    }
  });

  await t.test('HTTP API over HTTPS, with and without required client certificates', async () => {
    const sources = {
      metrics: async () => 'syncline_up 1\n', metricsContentType: 'text/plain; version=0.0.4',
      health: () => ({ status: 'ok' }) as never, ready: async () => ({ ready: true, checks: [] }) as never,
    };
    const plain = new ObservabilityServer(sources, log);
    const port = await plain.start(0, '127.0.0.1', { certFile: tls.serverCert, keyFile: tls.serverKey });
    try {
      const [status, body] = await httpsGet(`https://127.0.0.1:${port}/metrics`, ca);
      assert.equal(status, 200);
      assert.match(body, /syncline_up 1/);
      await rejection(httpsGet(`https://127.0.0.1:${port}/metrics`, readFileSync(tls.otherCaFile, 'utf8')));
    } finally {
      await plain.close();
    }
    const mutual = new ObservabilityServer(sources, log);
    const mport = await mutual.start(0, '127.0.0.1', { certFile: tls.serverCert, keyFile: tls.serverKey, clientCaFile: tls.caFile });
    try {
      const refused = await rejection(httpsGet(`https://127.0.0.1:${mport}/health`, ca));
      t.diagnostic(`no client certificate: ${refused.message}`);
      const [status] = await httpsGet(`https://127.0.0.1:${mport}/health`, ca, { cert: readFileSync(tls.clientCert, 'utf8'), key: readFileSync(tls.clientKey, 'utf8') });
      assert.equal(status, 200);
    } finally {
      await mutual.close();
    }
  });

  await t.test('PostgreSQL → Kafka → PostgreSQL and → MariaDB pipelines with every hop on TLS converge', async () => {
    const id = uid();
    const prefix = `tls${id}`;
    const src = `syncline_tls_${id}_src`;
    const dst = `syncline_tls_${id}_dst`;
    await pgq(s, 'postgres', `create database ${src}`);
    await pgq(s, 'postgres', `create database ${dst}`);
    const ddl = 'create table public.accounts (id int primary key, owner text not null, balance numeric(12,2) not null, updated_at timestamptz not null default now())';
    await pgq(s, src, ddl);
    await pgq(s, dst, ddl);
    await pgq(s, src, `insert into public.accounts select g, 'owner ' || g, g * 1.5, now() from generate_series(1, 200) g`);
    // MariaDB of the run dir, TLS only (require_secure_transport): plaintext refused, verify-full accepted.
    const mdb = `syncline_tls_${id}`;
    const maria = (ssl: boolean) => mysql.createConnection({ host: '127.0.0.1', port: s.ports.mariadb!, user: 'root', ...(ssl ? { ssl: { ca: ca, rejectUnauthorized: true } } : {}) });
    const plainMaria = await rejection(maria(false).then((c) => c.query('select 1').finally(() => c.end())));
    t.diagnostic(`plaintext to the TLS-only MariaDB: ${plainMaria.message}`);
    const m = await maria(true);
    await m.query(`create database ${mdb}`);
    const conn = (database: string) => ({ host: '127.0.0.1', port: s.ports.postgres, user: 'postgres', database, ssl: true, sslCaFile: tls.caFile, sslVerify: true });
    const doc = {
      version: 1,
      topicPrefix: prefix,
      kafka: { brokers: [tls.brokers], partitions: 1, ssl: { caFile: tls.caFile }, sasl: { mechanism: 'scram-sha-512', username: '${KAFKA_USER}', password: '${KAFKA_PASSWORD}' } },
      schemaRegistry: { url: s.registryUrl, caFile: tls.caFile },
      redis: { url: s.redisUrl, caFile: tls.caFile, username: '${REDIS_USER}', password: '${REDIS_PASSWORD}' },
      defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
      pipelines: {
        accounts: {
          source: { type: 'postgres', connection: conn(src), slot: `${prefix}_accounts`, publication: `${prefix}_accounts`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
          target: { type: 'postgres', connection: conn(dst) },
          tables: [{ source: 'public.accounts' }],
        },
        'accounts-maria': {
          source: { type: 'postgres', connection: conn(src), slot: `${prefix}_maria`, publication: `${prefix}_maria`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
          target: { type: 'mariadb', connection: { host: '127.0.0.1', port: s.ports.mariadb!, user: 'root', database: mdb, ssl: true, sslCaFile: tls.caFile, sslVerify: true }, poolSize: 2 },
          changeTopicPrefix: `${prefix}.m`,
          tables: [{ source: 'public.accounts', target: `${mdb}.accounts` }],
        },
      },
    };
    const file = join(mkdtempSync(join(tmpdir(), 'syncline-tls-')), 'config.yaml');
    const text = JSON.stringify(doc, null, 2);
    writeFileSync(file, text);
    // The passwords come from the environment, as in production.
    const penv = { KAFKA_USER: sasl.username, KAFKA_PASSWORD: sasl.password, REDIS_USER: tls.redisUser(), REDIS_PASSWORD: tls.redisPassword() };
    const config = parseConfig(text, file, penv);
    const rt = new Runtime(config, new Set(['capture', 'process', 'sink']));
    try {
      const t0 = Date.now();
      const { done } = await rt.start();
      done.catch(() => undefined);
      await pgq(s, src, `update public.accounts set balance = balance + 1, updated_at = now() where id <= 50`);
      await pgq(s, src, `delete from public.accounts where id > 190`);
      await pgq(s, src, `insert into public.accounts values (1000, 'late', 7, now())`);
      const sum = (db: string) => pgq(s, db, `select count(*)::int as n, coalesce(md5(string_agg(md5(a::text), '' order by id)), '') as h from public.accounts a`).then((r) => r.rows[0] as { n: number; h: string });
      // A stage that stops (a fatal error) fails the test at once, with its error.
      await Promise.race([
        waitFor('the targets to converge over TLS', async () => {
          const [a, b] = await Promise.all([sum(src), sum(dst)]);
          if (a.n !== b.n || a.h !== b.h) return false;
          const want = (await pgq(s, src, `select count(*)::int as n, sum(balance)::text as total from public.accounts`)).rows[0] as { n: number; total: string };
          const [rows] = (await m.query(`select count(*) as n, cast(sum(balance) as char) as total from ${mdb}.accounts`).catch(() => [[{ n: -1, total: '' }]])) as unknown as [{ n: number; total: string }[]];
          return Number(rows[0]!.n) === want.n && Number(rows[0]!.total) === Number(want.total);
        }, 120_000, 500),
        done.then(() => assert.fail('the runtime stopped before the target converged')),
      ]);
      t.diagnostic(`converged ${(await sum(dst)).n} rows in ${Math.round((Date.now() - t0) / 1000)} s (start included)`);
      // Every connection syncline holds to PostgreSQL is TLS (plaintext TCP is refused by pg_hba anyway).
      const plain = await pgq(s, 'postgres', `select count(*)::int as n from pg_stat_activity a join pg_stat_ssl l using (pid) where a.client_addr is not null and not l.ssl`);
      assert.equal(plain.rows[0].n, 0, 'no plaintext PostgreSQL connection');
      await rt.stop();

      // The whole process with a wrong Redis CA: the start ends at once with a fatal error naming Redis, no wait until the deadline.
      const wrongText = JSON.stringify({ ...doc, redis: { ...doc.redis, caFile: tls.otherCaFile } }, null, 2);
      const wrong = new Runtime(parseConfig(wrongText, file, penv), new Set(['sink']));
      const t1 = Date.now();
      const err = await rejection(wrong.start().then((r) => r.done));
      await wrong.stop().catch(() => undefined);
      t.diagnostic(`runtime with a wrong Redis CA stopped after ${Date.now() - t1} ms: ${err.message}`);
      assert.equal(errorKind(err), 'fatal');
      assert.match(err.message, /Redis at 127\.0\.0\.1:\d+ \(redis\.url\).*TLS certificate verification failed/);
      assert.ok(Date.now() - t1 < 20_000, 'fatal at once, not after the start deadline');
    } finally {
      await rt.stop();
      await sleep(200);
      for (const db of [src, dst]) await pgq(s, 'postgres', `drop database if exists ${db} with (force)`).catch(() => undefined);
      await m.end().catch(() => undefined);
    }
  });
});
