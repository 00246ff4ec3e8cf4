/**
 * Field encryption end to end on the real stack (PostgreSQL → Kafka + registry → PostgreSQL), run by
 * the real CLI (`syncline start`) so its log lines and /metrics are the real ones:
 *  - one source table with 3 encrypted columns (text, numeric(12,2), date) feeds two pipelines: one
 *    target with decrypt: true gets the plaintext in its original types, the other the ciphertexts;
 *  - the raw bytes of every change and dead-letter topic of the run, the captured logs (debug level)
 *    and the /metrics text hold none of the plaintext test values; with encryption switched off
 *    (SYNCLINE_TEST_NO_ENCRYPTION=1, a control run) the same scan finds them;
 *  - a ciphertext moved to another row fails to decrypt: poison, dead-lettered naming table, column
 *    and key, never the value;
 *  - hash delta: the same rows sent again (no-op updates) are "unchanged", not written again;
 *  - rotation: after the active key changes (k1 → k2, k1 kept), the processor group replays the
 *    change topics from the earliest offset: the k1 messages still decrypt and apply (unchanged).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import avsc from 'avsc';
import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import { deleteGroups, readTopic, spawnCli, sql, testEnv, waitFor, withClient } from './helpers.js';
import { groups, topics } from '../src/core/kafka.js';

const OFF = process.env.SYNCLINE_TEST_NO_ENCRYPTION === '1';
const EMAILS = ['alice.secret.7q@example.com', 'bob.secret.8r@example.com', 'carol.secret.9s@example.com', 'dave.secret.0t@example.com'];
const SALARY = '98765.43';
const BORN = '1977-03-14';
const REGISTRY = 'http://127.0.0.1:8081/apis/ccompat/v7';

const k1 = crypto.randomBytes(32).toString('hex');
const k2 = crypto.randomBytes(32).toString('base64');

function start(configFile: string, keysEnv: string, keys: string, out: string[]): ChildProcess {
  const p = spawnCli(['start', '--config', configFile], { [keysEnv]: keys, SYNCLINE_LOG_LEVEL: 'debug' });
  const take = (d: Buffer) => out.push(d.toString());
  p.stdout?.on('data', take);
  p.stderr?.on('data', take);
  return p;
}

async function stop(p: ChildProcess): Promise<void> {
  if (p.exitCode !== null) return;
  const done = new Promise((r) => p.once('exit', r));
  p.kill('SIGTERM');
  await Promise.race([done, new Promise((r) => setTimeout(r, 15000))]);
  if (p.exitCode === null) p.kill('SIGKILL');
}

const metricValue = (text: string, name: string, labels: Record<string, string>): number => {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{')) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
};

test('field encryption: plaintext only at the decrypting target; none in topics, logs or metrics; moved ciphertext poison; hash delta; rotation', async (t) => {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const keysEnv = `SYNCLINE_TEST_KEYS_${crypto.randomBytes(4).toString('hex').toUpperCase()}`;
  const encrypt = OFF ? {} : { encrypt: ['email', 'salary', 'born'] };
  const env = await testEnv(
    [
      { name: 'enc-plain', tables: [{ source: 'public.people', target: 'public.people_plain', ...encrypt }], target: { decrypt: true } },
      { name: 'enc-cipher', follows: 'enc-plain', tables: [{ source: 'public.people', target: 'public.people_cipher', ...encrypt }] },
    ],
    { extra: { encryption: { activeKey: 'k1', keysEnv }, observability: { host: '127.0.0.1', port, checkTimeoutMs: 2000 } } },
  );
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, async (c) => {
    await c.query(`create table people (id int primary key, name text, email text, salary numeric(12,2), born date, updated_at timestamptz not null default now())`);
    await c.query(`insert into people (id, name, email, salary, born) values (1, 'n1', $1, ${SALARY}, '${BORN}'), (2, 'n2', $2, 1200.50, '1980-01-02')`, [EMAILS[0], EMAILS[1]]);
  });
  await withClient(env.targetDb, async (c) => {
    await c.query(`create table people_plain (id int primary key, name text, email text, salary numeric(12,2), born date, updated_at timestamptz)`);
    await c.query(`create table people_cipher (id int primary key, name text, email text, salary ${OFF ? 'numeric(12,2)' : 'text'}, born ${OFF ? 'date' : 'text'}, updated_at timestamptz)`);
  });

  const logs: string[] = [];
  let p = start(env.configFile, keysEnv, `k1=${k1}`, logs);
  t.after(() => stop(p));
  const count = async (table: string) => (await sql(env.targetDb, `select count(*)::int n from ${table}`)).rows[0].n as number;
  await waitFor('the snapshot at both targets', async () => (await count('people_plain')) === 2 && (await count('people_cipher')) === 2, 90_000, 500);
  await sql(env.sourceDb, `insert into people (id, name, email, salary, born) values (3, 'n3', $1, 77.01, '2001-12-31'), (4, 'n4', $2, null, null)`, [EMAILS[2], EMAILS[3]]);
  await sql(env.sourceDb, `update people set name = 'n2b', updated_at = now() where id = 2`);
  const sourceRows = async () => (await sql(env.sourceDb, `select id, name, email, salary::text, born::text from people order by id`)).rows;
  await waitFor('the stream at the decrypting target', async () => JSON.stringify((await sql(env.targetDb, `select id, name, email, salary::text, born::text from people_plain order by id`)).rows) === JSON.stringify(await sourceRows()), 60_000, 500);
  await waitFor('the stream at the ciphertext target', async () => (await count('people_cipher')) === 4 && (await sql(env.targetDb, `select 1 from people_cipher where id = 2 and name = 'n2b'`)).rowCount === 1, 60_000, 500);

  // The decrypting target holds the plaintext in its own types (numeric, date): compared as typed values.
  const typed = (await sql(env.targetDb, `select salary = ${SALARY}::numeric ok_s, born = '${BORN}'::date ok_b, email from people_plain where id = 1`)).rows[0];
  assert.deepEqual(typed, { ok_s: true, ok_b: true, email: EMAILS[0] });
  const cipher = (await sql(env.targetDb, `select id, email, salary, born from people_cipher order by id`)).rows as { id: number; email: string; salary: string | null; born: string | null }[];
  if (!OFF) {
    for (const r of cipher) {
      assert.match(r.email, /^sl1:k1:[A-Za-z0-9_-]+$/, `row ${r.id} email is a ciphertext`);
      if (r.salary !== null) assert.match(r.salary, /^sl1:k1:/);
    }
    assert.equal(cipher[3]!.salary, null, 'null stays null');
  }

  // Hash delta: the same rows sent again (no-op updates: a new change, the same content) are unchanged.
  const metrics = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const unchangedBefore = metricValue(await metrics(), 'syncline_changes_skipped_total', { kind: 'unchanged' });
  const appliedBefore = metricValue(await metrics(), 'syncline_changes_applied_total', {});
  await sql(env.sourceDb, `update people set email = email`);
  await waitFor('4 no-op updates × 2 pipelines counted unchanged', async () => metricValue(await metrics(), 'syncline_changes_skipped_total', { kind: 'unchanged' }) - unchangedBefore >= 8, 60_000, 500);
  assert.equal(metricValue(await metrics(), 'syncline_changes_applied_total', {}), appliedBefore, 'nothing written again');

  // A ciphertext moved to another row: id 1's latest change re-sent, newer, carrying id 2's email ciphertext.
  const cdc = topics.cdc(env.prefix, 'public', 'people');
  const dlqs = ['enc-plain', 'enc-cipher'].map((n) => topics.dlq(env.prefix, n));
  if (!OFF) {
    const msgs = await readTopic(cdc);
    const schemaOf = async (buf: Buffer) => avsc.Type.forSchema(JSON.parse(((await (await fetch(`${REGISTRY}/schemas/ids/${buf.readInt32BE(1)}`)).json()) as { schema: string }).schema));
    const decoded = await Promise.all(msgs.filter((m) => m.value && m.key).map(async (m) => ({ m, k: (await schemaOf(m.key!)).fromBuffer(m.key!.subarray(5)) as { id: number }, type: await schemaOf(m.value!) })));
    const last = (id: number) => decoded.filter((d) => d.k.id === id).at(-1)!;
    const one = last(1);
    const v1 = one.type.fromBuffer(one.m.value!.subarray(5)) as { after: Record<string, unknown>; source: Record<string, unknown> };
    const v2 = last(2).type.fromBuffer(last(2).m.value!.subarray(5)) as { after: Record<string, unknown> };
    v1.after.email = v2.after.email;
    // Newer than id 1's last change (same commit, a later index), older than any later transaction.
    v1.source.idx = (v1.source.idx as number) + 1000;
    const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: cdc, messages: [{ key: one.m.key, partition: one.m.partition, value: Buffer.concat([one.m.value!.subarray(0, 5), one.type.toBuffer(v1)]) }] });
    await producer.disconnect();
    for (const dlq of dlqs) {
      const letters = await waitFor(`the moved ciphertext in ${dlq}`, async () => {
        const l = (await readTopic(dlq).catch(() => [])).filter((m) => m.headers['syncline.error.code'] === 'DECRYPT_FAILED');
        return l.length > 0 ? l : null;
      }, 60_000, 1000);
      const h = letters[0]!.headers;
      assert.equal(h['syncline.column'], 'email');
      assert.match(h['syncline.error.message']!, /table public\.people, column email, key \{"id":1\}/);
    }
    assert.equal((await sql(env.targetDb, `select email from people_plain where id = 1`)).rows[0].email, EMAILS[0], 'the target row is left alone');
  }

  // Scan: raw bytes of every change and dead-letter topic, the logs, /metrics.
  const metricsText = await metrics();
  const needles = [...EMAILS, SALARY, BORN];
  const found: string[] = [];
  const scan = (where: string, hay: Buffer | string) => {
    for (const n of needles) if (hay.includes(n)) found.push(`${n} in ${where}`);
  };
  for (const topic of [cdc, ...dlqs]) {
    for (const m of await readTopic(topic).catch(() => [])) {
      if (m.value) scan(topic, m.value);
      if (m.key) scan(topic, m.key);
      for (const v of Object.values(m.headers)) scan(`${topic} headers`, v);
    }
  }
  const logText = logs.join('');
  assert.ok(logText.length > 1000 && logText.includes('"level":30'), `logs were captured (${logText.length} characters)`);
  scan('logs', logText);
  scan('/metrics', metricsText);
  if (OFF) {
    assert.ok(found.some((f) => f.startsWith(EMAILS[0]!)), `control run: the scan finds the plaintext (${found.join('; ')})`);
    return;
  }
  assert.deepEqual(found, [], 'no plaintext anywhere');

  // Rotation: k2 active, k1 kept; the processors replay the change topic from the earliest offset.
  await stop(p);
  await deleteGroups(['enc-plain', 'enc-cipher'].map((n) => groups.processor(env.prefix, n)));
  // Version state gone too (Redis is a cache of truth): each replayed k1 change is decrypted, hashed
  // and compared with the target row (ciphertext or plaintext), not skipped on its position alone.
  const redis = new Redis('redis://127.0.0.1:6379');
  for (const n of ['enc-plain', 'enc-cipher']) {
    const keys = await redis.keys(`${env.prefix}:{${n}}:*`);
    if (keys.length > 0) await redis.del(...keys);
  }
  await redis.quit();
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as { encryption: { activeKey: string } };
  doc.encryption.activeKey = 'k2';
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));
  const logs2: string[] = [];
  p = start(env.configFile, keysEnv, `k1=${k1},k2=${k2}`, logs2);
  await sql(env.sourceDb, `update people set name = 'n1-rotated', email = 'erin.rotated@example.com', updated_at = now() where id = 1`);
  await waitFor('the k2 change at both targets', async () => (await sql(env.targetDb, `select 1 from people_plain where id = 1 and email = 'erin.rotated@example.com'`)).rowCount === 1 && (await sql(env.targetDb, `select 1 from people_cipher where id = 1 and email like 'sl1:k2:%'`)).rowCount === 1, 90_000, 500).catch(async (err) => {
    const diag = {
      src: (await sql(env.sourceDb, `select id, name from people order by id`)).rows,
      plain: (await sql(env.targetDb, `select id, name, email from people_plain order by id`)).rows,
      slots: (await sql('postgres', `select slot_name, active, confirmed_flush_lsn::text, pg_current_wal_lsn()::text cur from pg_replication_slots where slot_name like $1`, [`${env.prefix}%`])).rows,
      topic: (await readTopic(cdc)).map((m) => `${m.partition}@${m.offset} ${m.value?.length}`),
    };
    writeFileSync('/tmp/crypto-logs2.txt', JSON.stringify(diag) + '\n' + logs2.join(''));
    throw new Error(`${(err as Error).message}; warnings: ${logs2.join('').split('\n').filter((l) => /"level":[456]0/.test(l)).join('\n').slice(-3000)}`);
  });
  for (const n of ['enc-plain', 'enc-cipher']) {
    await waitFor(`replayed k1 changes of ${n} found unchanged`, async () => metricValue(await metrics(), 'syncline_changes_skipped_total', { pipeline: n, kind: 'unchanged' }) >= 3, 60_000, 500);
  }
  // Replayed k1 messages were decrypted and hashed: every one is stale or unchanged, none dead-lettered as undecryptable.
  const k1Letters = (await readTopic(dlqs[0]!)).filter((m) => m.headers['syncline.error.code'] !== 'DECRYPT_FAILED');
  assert.deepEqual(k1Letters.map((m) => m.headers['syncline.error.code']), [], 'no other dead letters');
  assert.ok(!logs2.join('').includes('ENCRYPTION_KEY'), 'no key error');
  assert.equal(JSON.stringify((await sql(env.targetDb, `select id, name, email, salary::text, born::text from people_plain order by id`)).rows), JSON.stringify(await sourceRows()));
});
