/**
 * Validation rules and latest-timestamp on encrypted columns, on the real stack (PostgreSQL → Kafka →
 * PostgreSQL): the processor and the applier decrypt the values they judge in memory only.
 *  - rules on encrypted columns (format email, number range of a numeric) pass good rows and
 *    dead-letter bad ones; the dead letters' raw bytes (value, key, headers) hold no plaintext, the
 *    violations show the encrypted columns masked; a value under a key id the keyring lacks stops the
 *    processor with a fatal error naming the id (not dead-lettered);
 *  - latest-timestamp on an encrypted timestamp column decides by the plaintext times: an older
 *    source change loses to a later target edit, a newer one wins;
 *  - a manual conflict on a table with an encrypted and a masked column: the diff compares the
 *    encrypted column by plaintext, the decrypting target's row is sealed again in the dead letter,
 *    the API (list, show, the resolve's answer) masks both columns, a merged resolve writes the real
 *    values and keeps the encrypted one sealed in the actions topic.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import avsc from 'avsc';
import { Kafka, logLevel } from 'kafkajs';
import { readTopic, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';
import { parseTagged } from '../src/core/tagged-json.js';
import { dlqActionsTopic } from '../src/dlq/store.js';
import { encryptValue } from '../src/security/crypto/field-cipher.js';
import { Keyring } from '../src/security/crypto/keyring.js';

const REGISTRY = 'http://127.0.0.1:8081/apis/ccompat/v7';
const EMAIL = 'ann.m4@example.com';
const SECRET = 'secret-plain-zz9';

function keyring(): string {
  const name = `SYNCLINE_TEST_KEYS_${crypto.randomBytes(4).toString('hex').toUpperCase()}`;
  process.env[name] = `k1=${crypto.randomBytes(32).toString('hex')}`;
  return name;
}

test('validation rules read encrypted columns: good rows pass, bad ones are dead-lettered without their plaintext', async (t) => {
  const keysEnv = keyring();
  const env = await testEnv(
    [{
      name: 'enc-valid',
      tables: [{ source: 'public.accounts', encrypt: ['email', 'salary'], validate: { fields: { email: { required: true, format: 'email' }, salary: { type: 'number', min: 0, max: 100000 } } } }],
      conflict: { strategy: 'source-wins' },
    }],
    { extra: { encryption: { activeKey: 'k1', keysEnv } } },
  );
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table accounts (id int primary key, name text, email text, salary numeric(12,2))`);
  await sql(env.targetDb, `create table accounts (id int primary key, name text, email text, salary text)`);
  await sql(env.sourceDb, `insert into accounts values (1, 'a', 'ann.q7@example.com', 5000.25), (2, 'b', 'bob.q8@example.com', null)`);
  const { rt } = await startRuntime(env);
  const count = async () => (await sql(env.targetDb, `select count(*)::int n from accounts`)).rows[0].n as number;
  await waitFor('the snapshot', async () => (await count()) === 2, 60_000, 300);
  const BAD_EMAIL = 'not-an-email-zq1';
  const BAD_SALARY = '-4321.98';
  await sql(env.sourceDb, `insert into accounts values (3, 'c', 'cy.q9@example.com', 99999.99), (4, 'd', $1, 10), (5, 'e', 'ed.q0@example.com', ${BAD_SALARY})`, [BAD_EMAIL]);
  const dlq = topics.dlq(env.prefix, 'enc-valid');
  const letters = await waitFor('two invalid records dead-lettered', async () => {
    const l = (await readTopic(dlq).catch(() => [])).filter((m) => m.headers['syncline.error.code'] === 'VALIDATION_FAILED');
    return l.length >= 2 ? l : null;
  }, 60_000, 500);
  await waitFor('row 3 applied', async () => (await count()) === 3, 30_000, 300);
  assert.deepEqual((await sql(env.targetDb, `select id from accounts order by id`)).rows.map((r) => r.id), [1, 2, 3]);
  assert.match(String((await sql(env.targetDb, `select email from accounts where id = 3`)).rows[0].email), /^sl1:k1:/, 'the target still gets the ciphertext');
  const byKey = new Map(letters.map((l) => [String((JSON.parse(l.headers['syncline.key']!) as unknown[])[0]), l]));
  const v4 = JSON.parse(byKey.get('4')?.headers['syncline.violations'] ?? '[]') as { field: string; rule: string; value?: unknown }[];
  const v5 = JSON.parse(byKey.get('5')?.headers['syncline.violations'] ?? '[]') as { field: string; rule: string; value?: unknown }[];
  assert.deepEqual(v4.map((v) => [v.field, v.rule, v.value]), [['email', 'format', '***']]);
  assert.deepEqual(v5.map((v) => [v.field, v.rule, v.value]), [['salary', 'min', '***']]);
  assert.match(byKey.get('4')!.headers['syncline.error.message']!, /email format/);
  // No plaintext in any dead letter: raw value, key and every header.
  const needles = [BAD_EMAIL, BAD_SALARY, '4321.98', 'ed.q0@example.com'];
  for (const l of await readTopic(dlq)) {
    for (const hay of [l.value, l.key, ...Object.values(l.headers)]) {
      if (!hay) continue;
      for (const n of needles) assert.ok(!hay.includes(n), `${n} found in dead letter ${l.headers['syncline.error.message']}`);
    }
  }
  assert.equal(rt.pipelines[0]!.validation?.stats.invalid, 2);

  // A value under a key id the keyring lacks (row 3's change sent again, newer, its email sealed under
  // k9): the processor stops with a fatal error naming k9; nothing is dead-lettered for it.
  const cdc = topics.cdc(env.prefix, 'public', 'accounts');
  const schemaOf = async (buf: Buffer) => avsc.Type.forSchema(JSON.parse(((await (await fetch(`${REGISTRY}/schemas/ids/${buf.readInt32BE(1)}`)).json()) as { schema: string }).schema));
  const msgs = (await readTopic(cdc)).filter((m) => m.key && m.value);
  let three: (typeof msgs)[number] | undefined;
  for (const m of msgs) if (((await schemaOf(m.key!)).fromBuffer(m.key!.subarray(5)) as { id: number }).id === 3) three = m;
  const type = await schemaOf(three!.value!);
  const v = type.fromBuffer(three!.value!.subarray(5)) as { after: Record<string, unknown>; source: { idx: number } };
  const k9 = new Keyring(new Map([['k9', crypto.randomBytes(32)]]), 'k9', 'k9');
  v.after.email = encryptValue(k9, { scope: env.prefix, table: 'public.accounts', column: 'email', key: { id: 3 } }, 'cy.k9@example.com');
  v.source.idx += 1000;
  const producer = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING }).producer();
  await producer.connect();
  await producer.send({ topic: cdc, messages: [{ key: three!.key, partition: three!.partition, value: Buffer.concat([three!.value!.subarray(0, 5), type.toBuffer(v)]) }] });
  await producer.disconnect();
  const failure = await waitFor('the processor stopped on the missing key', async () => rt.observe.health.report().pipelines[0]!.failed?.find((f) => f.stage === 'process') ?? null, 30_000, 300);
  assert.equal(failure.code, 'ENCRYPTION_KEY_MISSING');
  assert.equal(failure.class, 'fatal');
  assert.match(failure.error, /key 'k9' is not in the keyring/);
  assert.ok(!(await readTopic(dlq)).some((m) => m.headers['syncline.error.code']?.startsWith('ENCRYPTION_')), 'not dead-lettered');
});

test('latest-timestamp on an encrypted timestamp column: the later plaintext time wins', async (t) => {
  const keysEnv = keyring();
  const env = await testEnv(
    [{
      name: 'enc-lww',
      tables: [
        { source: 'public.docs', encrypt: ['updated_at'] },
        // The manual-conflict case: an encrypted and a masked column (not encrypted).
        { source: 'public.notes', encrypt: ['secret'], mask: ['email'], conflict: { strategy: 'manual' } },
      ],
      conflict: { strategy: 'latest-timestamp', field: 'updated_at' },
      target: { decrypt: true },
    }],
    { extra: { encryption: { activeKey: 'k1', keysEnv }, observability: { port: 0 } } },
  );
  t.after(() => env.cleanup());
  const ddl = `create table docs (id int primary key, v text not null, updated_at timestamptz not null)`;
  await sql(env.sourceDb, ddl);
  await sql(env.targetDb, ddl);
  await sql(env.sourceDb, `insert into docs select g, 'v0', '2026-01-01T00:00:00Z' from generate_series(1, 4) g`);
  const notes = `create table notes (id int primary key, email text, secret text, v text)`;
  await sql(env.sourceDb, notes);
  await sql(env.targetDb, notes);
  await sql(env.sourceDb, `insert into notes values (1, $1, $2, 'v0')`, [EMAIL, SECRET]);
  const { rt } = await startRuntime(env);
  await waitFor('the snapshot', async () => (await sql(env.targetDb, `select count(*)::int n from docs`)).rows[0].n === 4 && (await sql(env.targetDb, `select count(*)::int n from notes`)).rows[0].n === 1, 60_000, 300);
  // Target edits at 2026-03-01; source edits at 2026-02-01 (odd keys: older) or 2026-04-01 (even: newer).
  for (const id of [1, 2, 3, 4]) {
    await sql(env.targetDb, `update docs set v = 'target', updated_at = '2026-03-01T00:00:00Z' where id = $1`, [id]);
    await sql(env.sourceDb, `update docs set v = 'source', updated_at = $2 where id = $1`, [id, id % 2 ? '2026-02-01T00:00:00Z' : '2026-04-01T00:00:00Z']);
  }
  const stats = () => rt.pipelines[0]!.applier!.stats;
  await waitFor('4 conflicts decided', async () => stats().conflicts >= 4, 60_000, 300);
  const rows = (await sql(env.targetDb, `select id, v, updated_at::text t from docs order by id`)).rows;
  assert.deepEqual(rows.map((r) => [r.id, r.v]), [[1, 'target'], [2, 'source'], [3, 'target'], [4, 'source']]);
  assert.equal(stats().deadLettered, 0);

  // A manual conflict on notes: only v was edited on both sides. The diff compares the encrypted
  // column by its plaintext (its ciphertexts differ at every capture): only v differs. The decrypting
  // target's row is sealed again in the dead letter: no plaintext of secret in the topic.
  assert.equal((await sql(env.targetDb, `select secret from notes where id = 1`)).rows[0].secret, SECRET, 'the target has the plaintext');
  await sql(env.targetDb, `update notes set v = 'target' where id = 1`);
  await sql(env.sourceDb, `update notes set v = 'source' where id = 1`);
  await waitFor('the conflict parked', async () => stats().parked >= 1, 60_000, 300);
  const dlq = topics.dlq(env.prefix, 'enc-lww');
  const letter = (await waitFor('the conflict dead letter', async () => (await readTopic(dlq).catch(() => [])).find((m) => m.headers['syncline.dlq.kind'] === 'conflict'), 30_000, 300))!;
  const conflict = parseTagged(letter.headers['syncline.conflict']!) as { target: Record<string, unknown>; diff: { field: string }[] };
  // One comparison, so a failure shows every part: the diff (secret compared by plaintext: only v
  // differs), the target's row sealed, no plaintext of secret in the dead letter's headers or bytes.
  assert.deepEqual(
    { diff: conflict.diff.map((d) => d.field), targetSecretSealed: /^sl1:k1:/.test(String(conflict.target.secret)), plaintextIn: Object.entries(letter.headers).filter(([, v]) => v.includes(SECRET)).map(([k]) => k).concat(letter.value?.includes(SECRET) ? ['value'] : []) },
    { diff: ['v'], targetSecretSealed: true, plaintextIn: [] },
  );

  // Every read path masks the masked column (the header keeps it: resolving needs the rows, see docs/security.md).
  const id = letter.headers['syncline.dlq.id']!;
  const api = `http://127.0.0.1:${rt.httpPort}/api/dlq`;
  const listed = await (await fetch(`${api}?pipeline=enc-lww&kind=conflict`)).text();
  assert.ok(listed.includes(id) && !listed.includes(EMAIL) && !listed.includes(SECRET), `GET /api/dlq masks: ${listed.slice(0, 600)}`);
  const NEW_EMAIL = 'ann.new.m5@example.com';
  const NEW_SECRET = 'secret-new-zz8';
  const res = await fetch(`${api}/${id}/resolve?pipeline=enc-lww`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ choice: 'merged', merged: { v: 'merged', email: NEW_EMAIL, secret: NEW_SECRET } }) });
  const resolved = await res.text();
  assert.equal(res.status, 200, resolved);
  for (const n of [EMAIL, SECRET, NEW_EMAIL, NEW_SECRET]) assert.ok(!resolved.includes(n), `${n} in the answer of resolve: ${resolved}`);
  assert.deepEqual((await sql(env.targetDb, `select email, secret, v from notes where id = 1`)).rows[0], { email: NEW_EMAIL, secret: NEW_SECRET, v: 'merged' });
  // The merged row kept with the action: the encrypted column sealed in the actions topic, the masked one masked when shown.
  const actions = await readTopic(dlqActionsTopic(env.prefix, 'enc-lww'));
  assert.equal(actions.length, 1);
  assert.ok(!actions[0]!.value!.includes(NEW_SECRET), `${NEW_SECRET} in the actions topic: ${actions[0]!.value}`);
  const shown = await (await fetch(`${api}/${id}?pipeline=enc-lww`)).json() as { history: { merged?: Record<string, unknown> }[]; conflict: { source: Record<string, unknown> } };
  assert.deepEqual([shown.history[0]?.merged?.email, shown.history[0]?.merged?.secret, shown.history[0]?.merged?.v], ['***', '***', 'merged']);
  assert.equal(shown.conflict.source.email, '***');
  const body = JSON.stringify(shown);
  for (const n of [EMAIL, SECRET, NEW_EMAIL, NEW_SECRET]) assert.ok(!body.includes(n), `${n} in GET /api/dlq/${id}: ${body}`);
});
