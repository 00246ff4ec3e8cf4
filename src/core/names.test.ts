import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalTableName, cdcTopicName, formatTableName, kafkaCollisionKey, NAME_RE, parseTableName, pgSlotName, tableMatches, topicPart, topicPartDecode } from './names.js';

test('table names: bare parts are taken as written, quoted parts hold anything', () => {
  assert.deepEqual(parseTableName('public.users'), { schema: 'public', table: 'users' });
  assert.deepEqual(parseTableName('public.Users'), { schema: 'public', table: 'Users' }); // no case folding
  assert.deepEqual(parseTableName('s$1._t'), { schema: 's$1', table: '_t' });
  assert.deepEqual(parseTableName('"Quoted"" . Schema"."Table"'), { schema: 'Quoted" . Schema', table: 'Table' });
  assert.deepEqual(parseTableName('"a.b".c'), { schema: 'a.b', table: 'c' });
  assert.deepEqual(parseTableName('a."b.c"'), { schema: 'a', table: 'b.c' });
  assert.deepEqual(parseTableName('"Ünïcødé schéma"."täble 1"'), { schema: 'Ünïcødé schéma', table: 'täble 1' });
  assert.deepEqual(parseTableName('"x:[1]"."{y}"'), { schema: 'x:[1]', table: '{y}' });
});

test('table names: every malformed name is refused with the reason', () => {
  const bad: [string, RegExp][] = [
    ['users', /has no schema/],
    ['public.', /missing table/],
    ['.users', /missing schema/],
    ['a.b.c', /more than two parts/],
    ['public.my table', /must be quoted: it holds " "/],
    ['public.1abc', /must be quoted: it starts with a digit/],
    ['public.my-table', /must be quoted/],
    ['"open.users', /unterminated quoted name/],
    ['"".users', /empty quoted name/],
    ['"a"b.c', /unexpected "b" at position 4/],
    ['public."' + 'x'.repeat(64) + '"', /longer than 63 bytes/],
    ['public."' + 'é'.repeat(32) + '"', /longer than 63 bytes/],
    ['', /missing schema/],
  ];
  for (const [text, why] of bad) assert.throws(() => parseTableName(text), why, text);
});

test('canonical form: bare where possible, quoted otherwise; it parses back to the same parts', () => {
  assert.equal(canonicalTableName('"public"."users"'), 'public.users');
  assert.equal(canonicalTableName('"Quoted"" . Schema"."Table"'), '"Quoted"" . Schema".Table');
  assert.equal(canonicalTableName('public."1st"'), 'public."1st"');
  const names = [
    { schema: 'public', table: 'users' },
    { schema: 'a.b', table: 'c' },
    { schema: 'a', table: 'b.c' },
    { schema: 'Quoted" . Schema', table: 'Täble "x"' },
    { schema: 'x:y', table: ':' },
  ];
  const seen = new Set<string>();
  for (const n of names) {
    const s = formatTableName(n);
    assert.deepEqual(parseTableName(s), n);
    assert.ok(!seen.has(s));
    seen.add(s);
  }
});

test('--table matching: schema.table in any spelling, or the table alone', () => {
  const t = '"My Schema".Orders';
  assert.ok(tableMatches(t, '"My Schema".Orders'));
  assert.ok(tableMatches(t, '"My Schema"."Orders"'));
  assert.ok(tableMatches(t, 'Orders'));
  assert.ok(tableMatches(t, '"Orders"'));
  assert.ok(!tableMatches(t, 'orders'));
  assert.ok(!tableMatches(t, 'public.Orders'));
  assert.ok(tableMatches('public."a.b"', 'a.b') === false); // a.b is schema a, table b
  assert.ok(tableMatches('public."a.b"', '"a.b"'));
});

test('topic parts: plain names unchanged, everything else escaped injectively', () => {
  assert.equal(topicPart('order_items'), 'order_items');
  assert.equal(topicPart('Quoted" . Schema'), 'Quoted-22-20-2e-20Schema');
  assert.equal(topicPart('a-b'), 'a-2db');
  assert.equal(topicPart('é'), '-c3-a9');
  assert.equal(topicPart('s$'), 's-24');
  assert.equal(cdcTopicName('p', 'Quoted" . Schema', 'Table'), 'p.cdc.Quoted-22-20-2e-20Schema.Table');
  assert.equal(cdcTopicName('demo', 'public', 'users'), 'demo.cdc.public.users');
  const samples = ['a', 'a.b', 'a-2eb', 'a_2eb', 'a b', 'a-b', '-', '--', 'é', 'e\u0301', '日本', '"', '""', 'x.y.z', 'A', '_'];
  const out = new Map<string, string>();
  for (const s of samples) {
    const t = topicPart(s);
    assert.match(t, /^[A-Za-z0-9_-]*$/, s);
    assert.equal(out.get(t), undefined, `${s} collides with ${out.get(t)}`);
    out.set(t, s);
    assert.equal(topicPartDecode(t), s);
  }
  assert.throws(() => topicPartDecode('a-2'), /bad escape/);
  assert.throws(() => topicPartDecode('a.b'), /cannot appear/);
  assert.throws(() => topicPartDecode('-61'), /not in canonical form/); // 'a' is never escaped
});

test('Kafka collision key: names that differ only in . versus _', () => {
  assert.equal(kafkaCollisionKey('p.cdc.a.b_c'), kafkaCollisionKey('p.cdc.a_b.c'));
  assert.notEqual(kafkaCollisionKey(cdcTopicName('p', 'a', 'b.c')), kafkaCollisionKey(cdcTopicName('p', 'a', 'b_c')));
});

test('syncline names: one rule for pipelines, slots and publications; slots map - to _', () => {
  for (const ok of ['orders-sync', 'orders_sync', 'a', '_x', '0-9', 'a'.repeat(63)]) assert.match(ok, NAME_RE);
  for (const bad of ['', '-a', 'Orders', 'a.b', 'a b', 'a'.repeat(64), 'é']) assert.doesNotMatch(bad, NAME_RE);
  assert.equal(pgSlotName('orders-sync_2'), 'orders_sync_2');
});
