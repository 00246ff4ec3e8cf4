/**
 * MariaDB as a TLS source: binlog CDC from a MariaDB that takes TLS connections only
 * (require_secure_transport, the private TLS stack's MariaDB of the run dir, scripts/stack.sh with
 * SYNCLINE_STACK_TLS=1; the shared stack is untouched), verified against the stack's CA: the
 * snapshot and the streamed changes reach the PostgreSQL target, and the binlog dump runs on a TLS
 * connection. A source whose sslCaFile is another CA is refused at once with a fatal error naming
 * the server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { privateStack } from './private-stack.js';
import { createDb, deleteTopics, dropDb, PG, sql, uid, waitFor } from './helpers.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { errorKind } from '../src/core/errors.js';

test('binlog capture from a TLS-only MariaDB, verified against its CA; a wrong CA is refused naming the server', { timeout: 180_000 }, async (t) => {
  const s = await privateStack({ tls: true });
  t.after(() => s.down());
  await s.up('mariadb');
  const tls = s.tls!;
  const port = s.ports.mariadb!;
  const id = uid();
  const db = `syncline_t_${id}_my`;
  const targetDb = `syncline_t_${id}_dst`;
  const prefix = `t${id}`;
  const m = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', ssl: { ca: readFileSync(tls.caFile, 'utf8'), rejectUnauthorized: true } });
  await m.query(`create database ${db}`);
  await m.query(`create table ${db}.items (id int primary key, label varchar(40) not null)`);
  await m.query(`insert into ${db}.items values (1, 'one'), (2, 'two')`);
  await createDb(targetDb);
  t.after(async () => {
    await m.end().catch(() => undefined);
    await dropDb(targetDb);
    await deleteTopics(prefix).catch(() => undefined);
  });

  const doc = (caFile: string) => ({
    version: 1,
    topicPrefix: prefix,
    kafka: { brokers: ['127.0.0.1:9092'], partitions: 1 },
    defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 } },
    pipelines: {
      my: {
        source: { type: 'mariadb', connection: { host: '127.0.0.1', port, user: 'root', database: db, ssl: true, sslCaFile: caFile, sslVerify: true }, serverId: 100000 + parseInt(id.slice(0, 6), 16), heartbeatMs: 500, lingerMs: 5 },
        target: { type: 'postgres', connection: { ...PG, database: targetDb }, autoCreate: true },
        conflict: { strategy: 'source-wins' },
        tables: [{ source: `${db}.items`, target: 'public.items' }],
      },
    },
  });
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-mytls-')), 'config.yaml');
  const load = (caFile: string) => {
    const text = JSON.stringify(doc(caFile), null, 2);
    writeFileSync(file, text);
    return parseConfig(text, file, {});
  };

  // A wrong CA: the first connection (the server checks) fails the start, fatal, naming the server.
  const wrong = new Runtime(load(tls.otherCaFile), new Set(['capture']));
  let err: Error | undefined;
  try {
    const { done } = await wrong.start();
    await done;
  } catch (e) {
    err = e as Error;
  } finally {
    await wrong.stop();
  }
  t.diagnostic(`wrong CA: ${err?.message}`);
  assert.ok(err, 'a source with the wrong CA does not start');
  assert.equal(errorKind(err), 'fatal');
  assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.match(err.message, /TLS|certificate/i);

  const rt = new Runtime(load(tls.caFile), new Set(['capture', 'process', 'sink']));
  try {
    const { done } = await rt.start();
    done.catch(() => undefined);
    const target = async () => (await sql(targetDb, `select id, label from public.items order by id`).catch(() => ({ rows: [] }))).rows as { id: number; label: string }[];
    await waitFor('the snapshot', async () => (await target()).length === 2 || undefined, 60_000, 200);
    // Changes after the snapshot come from the binlog.
    await m.query(`insert into ${db}.items values (3, 'three')`);
    await m.query(`update ${db}.items set label = 'uno' where id = 1`);
    await m.query(`delete from ${db}.items where id = 2`);
    await waitFor('the streamed changes', async () => {
      const r = await target();
      return JSON.stringify(r) === JSON.stringify([{ id: 1, label: 'uno' }, { id: 3, label: 'three' }]) || undefined;
    }, 60_000, 200);
    // The binlog dump of our reader is on an encrypted connection (the server refuses any other).
    const [dumps] = (await m.query(`select id, user from information_schema.processlist where command like 'Binlog Dump%'`)) as unknown as [{ id: number; user: string }[]];
    t.diagnostic(`binlog dump threads: ${JSON.stringify(dumps)}`);
    assert.equal(dumps.length, 1, 'one binlog reader');
    const [secure] = (await m.query(`select @@require_secure_transport as v`)) as unknown as [{ v: number }[]];
    assert.equal(Number(secure[0]!.v), 1, 'the server takes TLS connections only, so the binlog reader is on TLS');
  } finally {
    await rt.stop();
  }
});
