/**
 * Validation rules on the real stack: valid rows (snapshot and stream) reach the target; invalid
 * ones never do and are dead-lettered as `invalid` with every violated rule listed (sensitive values
 * masked), counted per rule; an update that breaks a rule leaves the target's valid row as it was;
 * deletes are not validated; the pipeline moves on; coerced values reach the target converted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { checksum, readTopic, runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/validators.mjs', import.meta.url));

const SOURCE_DDL = `create table customers (
  id bigint primary key, e_mail text, phone text, status text not null default 'active', balance numeric(12,2),
  age text, sku text, ssn text, ordered_at timestamptz, shipped_at timestamptz)`;
// The target names e_mail `email` (a rename: rules use target names) and stores age as an integer.
const TARGET_DDL = `create table customers (
  id bigint primary key, email text, phone text, status text, balance numeric(12,2),
  age int, sku text, ssn text, ordered_at timestamptz, shipped_at timestamptz)`;

const VALIDATE = {
  fields: {
    email: { required: true, format: 'email', sensitive: true },
    phone: { format: 'phone' },
    status: { enum: ['active', 'vip'] },
    balance: { type: 'number', min: 0 },
    age: { type: 'integer', coerce: true, min: 0, max: 150 },
    sku: { custom: 'isSku' },
    ssn: { pattern: '^\\d{9}$' },
  },
  rules: [{ name: 'shipped_after_ordered', check: 'shipped_at >= ordered_at', message: 'shipped before it was ordered' }],
};

function valuesOf(id: number, o: Record<string, string | null> = {}): unknown[] {
  const row: Record<string, string | null> = {
    e_mail: `user${id}@example.com`, phone: '+14155550123', status: 'active', balance: '10.50', age: '42', sku: `SKU-${id}`,
    ssn: '123456789', ordered_at: '2024-01-01T10:00:00Z', shipped_at: '2024-01-02T10:00:00Z', ...o,
  };
  return [id, row.e_mail, row.phone, row.status, row.balance, row.age, row.sku, row.ssn, row.ordered_at, row.shipped_at];
}
const INSERT = `insert into customers (id, e_mail, phone, status, balance, age, sku, ssn, ordered_at, shipped_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`;

test('invalid records go to the DLQ with every violation (masked), valid ones arrive, counters match', async (t) => {
  const env = await testEnv([
    {
      name: 'customers-sync',
      tables: [{ source: 'public.customers', columns: { e_mail: 'email' }, validate: VALIDATE }],
      validation: { module: FIXTURE, mask: ['ssn'] },
      conflict: { strategy: 'source-wins' }, // customers has no updated_at for latest-timestamp to compare
    },
  ]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, SOURCE_DDL);
  await sql(env.targetDb, TARGET_DDL);
  const add = (id: number, o: Record<string, string | null> = {}) => sql(env.sourceDb, INSERT, valuesOf(id, o));

  // Snapshot: 20 valid rows and one invalid.
  for (let id = 1; id <= 20; id++) await add(id);
  await add(21, { e_mail: 'snapshot-row-without-at' });

  const { rt } = await startRuntime(env);
  await waitFor('snapshot applied', async () => (await checksum(env.targetDb, 'customers', 'id')).count === 20);

  // Streaming: valid rows, then three invalid inserts, an update that breaks a rule, a delete, more valid rows.
  for (let id = 22; id <= 40; id++) await add(id);
  await add(101, {
    e_mail: 'secret-mail-at-nowhere', phone: '4155550123', status: 'gone', balance: '-1.00', age: 'old', sku: 'sku1',
    ssn: 'SSN-SECRET-1', ordered_at: '2024-02-01T00:00:00Z', shipped_at: '2024-01-01T00:00:00Z',
  });
  await add(102, { e_mail: null, age: '200' });
  await add(103, { shipped_at: '2023-12-31T23:59:59Z' });
  await sql(env.sourceDb, `update customers set status = 'gone', balance = 99 where id = 22`);
  await sql(env.sourceDb, `delete from customers where id = 23`);
  for (let id = 41; id <= 50; id++) await add(id);

  const expected = [...Array.from({ length: 20 }, (_, i) => i + 1), 22, ...Array.from({ length: 27 }, (_, i) => i + 24)];
  await waitFor('every valid row applied, the deleted one gone', async () => {
    const r = await sql(env.targetDb, `select array_agg(id order by id)::int[] ids from customers`);
    return JSON.stringify(r.rows[0].ids) === JSON.stringify(expected);
  });
  const dlqTopic = topics.dlq(env.prefix, 'customers-sync');
  const letters = await waitFor('five dead letters', async () => {
    const m = await readTopic(dlqTopic).catch(() => []);
    return m.length >= 5 ? m : false;
  });
  assert.equal(letters.length, 5);

  // Nothing invalid reached the target; the broken update left the valid row as it was.
  const target = await sql(env.targetDb, `select id, email, status, balance::text, age from customers where id in (21, 22, 101, 102, 103) order by id`);
  assert.deepEqual(target.rows, [{ id: '22', email: 'user22@example.com', status: 'active', balance: '10.50', age: 42 }]);
  // Coerced: the text '42' arrived as the integer 42 (the target column is int).
  assert.equal((await sql(env.targetDb, `select count(*)::int n from customers where age = 42`)).rows[0].n, expected.length);

  // In commit order (the letters come from three partitions): positions sort like commits.
  const inOrder = letters.sort((a, b) => (a.headers['syncline.position']! < b.headers['syncline.position']! ? -1 : 1));
  for (const l of inOrder) {
    assert.equal(l.headers['syncline.dlq.kind'], 'invalid');
    assert.equal(l.headers['syncline.error.code'], 'VALIDATION_FAILED');
    assert.equal(l.headers['syncline.table'], 'public.customers');
    assert.equal(l.headers['syncline.original.topic'], topics.cdc(env.prefix, 'public', 'customers'));
    assert.ok(l.value && l.value.length > 0, 'the original message bytes are kept');
    const all = JSON.stringify(l.headers);
    assert.ok(!all.includes('secret-mail-at-nowhere') && !all.includes('SSN-SECRET-1') && !all.includes('snapshot-row-without-at'), 'sensitive values never appear in headers');
  }
  type V = { field: string; rule: string; message: string; value?: unknown };
  const violations = inOrder.map((l) => JSON.parse(l.headers['syncline.violations']!) as V[]);
  const brief = (vs: V[]) => vs.map((v) => `${v.field}.${v.rule}`);
  // Letters come in source order: 21 (snapshot), 101, 102, 103, the update of 22.
  assert.deepEqual(brief(violations[0]!), ['email.format']);
  assert.deepEqual(violations[1], [
    { field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' },
    { field: 'phone', rule: 'format', message: 'must be an E.164 phone number (+ and 2 to 15 digits, e.g. +14155550123)', value: '4155550123' },
    { field: 'status', rule: 'enum', message: 'must be one of: active, vip', value: 'gone' },
    { field: 'balance', rule: 'min', message: 'must be >= 0', value: '-1.00' },
    { field: 'age', rule: 'type', message: 'must be an integer, got text that does not convert', value: 'old' },
    { field: 'sku', rule: 'custom', message: "failed custom check 'isSku'", value: 'sku1' },
    { field: 'ssn', rule: 'pattern', message: 'must match /^\\d{9}$/', value: '***' },
    {
      field: 'shipped_at,ordered_at', rule: 'shipped_after_ordered', message: 'shipped before it was ordered',
      value: { shipped_at: '2024-01-01T00:00:00.000000Z', ordered_at: '2024-02-01T00:00:00.000000Z' },
    },
  ]);
  assert.deepEqual(violations[2], [
    { field: 'email', rule: 'required', message: 'is required' },
    { field: 'age', rule: 'max', message: 'must be <= 150', value: 200 },
  ]);
  assert.deepEqual(brief(violations[3]!), ['shipped_at,ordered_at.shipped_after_ordered']);
  assert.deepEqual(brief(violations[4]!), ['status.enum']);
  assert.match(inOrder[1]!.headers['syncline.error.message']!, /^public\.customers key \[[^\]]+\]: 8 rules violated: email format: must be a valid email address; phone format: /);

  // Counters per rule match the dead letters.
  const stats = rt.pipelines[0]!.validation!.stats;
  assert.deepEqual(Object.fromEntries([...stats.failures].sort()), {
    'public.customers.age.max': 1,
    'public.customers.age.type': 1,
    'public.customers.balance.min': 1,
    'public.customers.email.format': 2,
    'public.customers.email.required': 1,
    'public.customers.phone.format': 1,
    'public.customers.shipped_at,ordered_at.shipped_after_ordered': 2,
    'public.customers.sku.custom': 1,
    'public.customers.ssn.pattern': 1,
    'public.customers.status.enum': 2,
  });
  assert.equal(stats.invalid, 5);
  assert.equal(rt.pipelines[0]!.processor!.invalid.count, 5);
  assert.ok(stats.coerced >= expected.length + 1, `coerced ${stats.coerced}`); // every applied insert + row 22's first version
  assert.equal(rt.pipelines[0]!.applier!.stats.deadLettered, 0, 'nothing invalid reached the sink');

  // The CLI shows a dead letter, and the result of an action on it, through the masking policy
  // (the masked column's value is in the letter's bytes, never in what people see).
  const withSsn = inOrder.find((l) => l.value!.includes('SSN-SECRET-1'));
  assert.ok(withSsn, 'a letter holds the masked value');
  const id = withSsn.headers['syncline.dlq.id']!;
  for (const args of [['show', id, '--json'], ['discard', id, '--by', 'tester', '--json']]) {
    const r = await runCli(['dlq', ...args, '-c', env.configFile]);
    assert.equal(r.code, 0, r.err);
    assert.ok(r.out.includes(id), r.out);
    assert.ok(!r.out.includes('SSN-SECRET-1'), `dlq ${args[0]} shows the masked value: ${r.out}`);
    // The raw bytes hold the value: withheld (only an admin's audited reveal shows them).
    const shown = JSON.parse(r.out) as { raw?: { value: unknown }; rawWithheld?: boolean; entry?: { raw: { value: unknown }; rawWithheld?: boolean } };
    const entry = shown.entry ?? shown;
    assert.deepEqual([entry.raw?.value, entry.rawWithheld], [null, true], `dlq ${args[0]}: raw value withheld`);
  }
});

test('a rule that cannot compile (custom function missing from the module) stops the start with its line', async (t) => {
  const env = await testEnv([
    { name: 'customers-sync', tables: [{ source: 'public.customers', validate: { fields: { sku: { custom: 'isSkuu' } } } }], validation: { module: FIXTURE } },
  ]);
  t.after(() => env.cleanup());
  // testEnv writes the config as JSON (which is YAML): find where the custom function is named.
  const lines = readFileSync(env.configFile, 'utf8').split('\n');
  const line = lines.findIndex((l) => l.includes('"isSkuu"')) + 1;
  const col = lines[line - 1]!.indexOf('"isSkuu"') + 1;
  await assert.rejects(startRuntime(env), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'CONFIG_INVALID');
    const first = err.message.split('\n')[1]!;
    assert.equal(first.slice(0, first.indexOf(': unknown')), `${env.configFile}:${line}:${col}: pipelines.customers-sync.tables[0].validate.fields.sku.custom`);
    assert.match(first, /unknown custom function 'isSkuu': module .* exports .*isSku.* \(did you mean 'isSku'\?\)$/);
    return true;
  });
});
