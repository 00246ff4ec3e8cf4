/**
 * TLS means the same on every PostgreSQL connection syncline opens (connectors/postgres/connection.ts):
 * a private PostgreSQL with TLS on and a certificate of our own CA, then capture's connection, the
 * probe and the sink, each (a) verified against sslCaFile: connected, encrypted; (b) with the system
 * CAs only: refused, fatal PG_TLS naming what to set; (c) sslVerify false: connected, encrypted.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chownSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { rootLogger } from '../../src/core/log.js';
import { errorCode, errorKind, errorMessage } from '../../src/core/errors.js';
import { privateStack, type PrivateStack } from '../../test/private-stack.js';
import { PgProbe } from './probe.js';
import { PostgresSource } from './source/postgres-source.js';
import { PostgresSink } from './sink.js';
import { pgSinkSpec, pgSourceSpec, type PgConnection } from './spec.js';

let stack: PrivateStack;
let ca: string;
const log = rootLogger.child({ test: 'tls' });

before(async () => {
  stack = await privateStack();
  await stack.up('postgres');
  // A CA, and a server certificate it signs for 127.0.0.1.
  ca = join(stack.dir, 'ca.pem');
  const key = join(stack.dir, 'server.key');
  const sh = (cmd: string) => execFileSync('bash', ['-c', cmd], { cwd: stack.dir, stdio: 'pipe' });
  sh('openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=syncline test CA" -keyout ca.key -out ca.pem');
  sh('openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.key -out server.csr');
  sh('printf "subjectAltName=IP:127.0.0.1" > san.ext && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem');
  if (process.getuid?.() === 0) {
    const pw = execFileSync('id', ['-u', 'postgres']).toString().trim();
    const gid = execFileSync('id', ['-g', 'postgres']).toString().trim();
    chownSync(key, Number(pw), Number(gid));
    chownSync(join(stack.dir, 'server.pem'), Number(pw), Number(gid));
  }
  chmodSync(key, 0o600);
  const psql = (sql: string) => execFileSync('psql', ['-X', '-h', '127.0.0.1', '-p', String(stack.ports.postgres), '-U', 'postgres', '-d', 'postgres', '-Atc', sql]).toString().trim();
  psql(`alter system set ssl_cert_file = '${join(stack.dir, 'server.pem')}'`);
  psql(`alter system set ssl_key_file = '${key}'`);
  psql(`alter system set ssl = on`);
  psql('select pg_reload_conf()');
  for (let i = 0; i < 50 && psql('show ssl') !== 'on'; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(psql('show ssl'), 'on');
});

after(async () => {
  await stack?.down();
});

const conn = (tls: Partial<PgConnection>): PgConnection =>
  pgSourceSpec.shape.connection.parse({ host: '127.0.0.1', port: stack.ports.postgres, database: 'postgres', user: 'postgres', ...tls });

/** Whether this probe's own session is encrypted (pg_stat_ssl), which proves TLS was negotiated. */
async function encrypted(c: PgConnection): Promise<boolean> {
  const probe = new PgProbe(c, 5000);
  try {
    const rows = await probe.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()');
    return rows[0]?.ssl === true;
  } finally {
    await probe.close();
  }
}

/** Capture's connection (PostgresSource.connect), the sink (connect = ping) and the probe, on one setting. */
async function everySide(c: PgConnection): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const source = new PostgresSource(pgSourceSpec.parse({ type: 'postgres', connection: c, slot: 'tls_test', publication: 'tls_test' }), 'tls', log);
  let sink: PostgresSink | undefined;
  const probe = new PgProbe(c, 5000);
  const attempt = async (name: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
      out[name] = 'ok';
    } catch (err) {
      out[name] = `${errorKind(err)} ${errorCode(err)}: ${errorMessage(err)}`;
    }
  };
  await attempt('capture', () => source.connect());
  // The sink builds its pool (and so its TLS options) when it is made: a config error is thrown there.
  await attempt('sink', async () => {
    sink = new PostgresSink(pgSinkSpec.parse({ type: 'postgres', connection: c }), { pipeline: 'tls', log });
    await sink.connect();
  });
  await attempt('probe', () => probe.query('select 1'));
  await Promise.allSettled([source.stop(), sink?.close(), probe.close()]);
  return out;
}

test('TLS verified against sslCaFile: capture, sink and probe connect, encrypted', async () => {
  const c = conn({ ssl: true, sslCaFile: ca });
  assert.deepEqual(await everySide(c), { capture: 'ok', sink: 'ok', probe: 'ok' });
  assert.equal(await encrypted(c), true);
  assert.equal(await encrypted(conn({ ssl: false })), false, 'without ssl the session is plain (the check can tell)');
});

test('TLS with a certificate the system CAs do not trust: every side refuses, fatal PG_TLS saying what to set', async () => {
  const r = await everySide(conn({ ssl: true }));
  for (const side of ['capture', 'sink']) {
    assert.match(r[side]!, /^fatal PG_TLS: .*127\.0\.0\.1.*sslCaFile/, `${side}: ${r[side]}`);
  }
  assert.match(r.probe!, /certificate/i, r.probe);
});

test('sslVerify false: encrypted without verification on every side', async () => {
  const c = conn({ ssl: true, sslVerify: false });
  assert.deepEqual(await everySide(c), { capture: 'ok', sink: 'ok', probe: 'ok' });
  assert.equal(await encrypted(c), true);
});

test('an sslCaFile that cannot be read is a fatal config error naming the file', async () => {
  const r = await everySide(conn({ ssl: true, sslCaFile: '/nonexistent/ca.pem' }));
  assert.match(r.capture!, /^fatal CONFIG_TLS: .*\/nonexistent\/ca\.pem/);
  assert.match(r.sink!, /^fatal CONFIG_TLS: .*\/nonexistent\/ca\.pem/);
});
