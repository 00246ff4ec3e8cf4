import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parse } from 'yaml';
import '../../connectors/index.js';
import type { TableFacts } from '../../connectors/postgres/introspect.js';
import { parsePgUrl, pgInitSource, planTable } from '../../connectors/postgres/init.js';
import { interpolate, parseConfig } from '../core/config/load.js';
import { configTableName, parseTableList, pipelineName, renderConfig, yamlValue } from './init-config.js';

const table = (t: Partial<TableFacts> & { table: string }): TableFacts => ({
  schema: 'public',
  kind: 'r',
  partition: false,
  columns: [
    { name: 'id', type: 'bigint', notNull: true, generated: false },
    { name: 'note', type: 'text', notNull: false, generated: false },
  ],
  primaryKey: ['id'],
  replicaIdentity: 'd',
  identityIndex: [],
  uniqueKeys: [],
  privileges: { select: true, insert: true, update: true, delete: true, truncate: true },
  owned: true,
  ...t,
});

test('parsePgUrl: libpq defaults, percent-decoding, sslmode; refuses what it cannot honour', () => {
  assert.deepEqual(parsePgUrl('postgres://app:p%40ss%3Aword@db.example.com:6543/shop?sslmode=require', 'x'), {
    host: 'db.example.com', port: 6543, database: 'shop', user: 'app', password: 'p@ss:word', ssl: true, sslVerify: false,
  });
  assert.deepEqual(parsePgUrl('postgresql://bob@[::1]', 'x'), { host: '::1', port: 5432, database: 'bob', user: 'bob', password: undefined, ssl: false, sslVerify: true });
  assert.equal(parsePgUrl('postgres://bob@db/x?sslmode=verify-full', 'x').sslVerify, true, 'verify-full verifies');
  assert.throws(() => parsePgUrl('mysql://a@b/c', '--source'), /--source: expected a postgres:\/\//);
  assert.throws(() => parsePgUrl('postgres://a@b/c?host=/tmp', '--source'), /parameter 'host' is not supported/);
  assert.throws(() => parsePgUrl('not a url', '--target'), /--target: not a URL/);
});

test('parseTableList: schema defaults to public, names as written, quotes for odd names', () => {
  assert.deepEqual(parseTableList('users, sales.Orders,"my schema"."a.b""c",  "x,y"'), [
    { schema: 'public', table: 'users' },
    { schema: 'sales', table: 'Orders' },
    { schema: 'my schema', table: 'a.b"c' },
    { schema: 'public', table: 'x,y' },
  ]);
  assert.throws(() => parseTableList('a.b.c'), /more than schema\.table/);
  assert.throws(() => parseTableList('a,,b'), /empty name/);
  assert.throws(() => parseTableList('"open'), /unterminated quote/);
});

test('yamlValue: YAML reads back the same string, and ${ is not a reference', () => {
  for (const s of ['users', '127.0.0.1', '5432', 'true', 'null', 'a b', 'x: y', '#c', '${HOME}', '$${x}', 'line\nbreak', 'é', "it's", '-', '[a]']) {
    const v = yamlValue(s);
    const read = parse(`k: ${v}`) as { k: string };
    assert.equal(interpolate(read.k, {}).value, s, `${s} → ${v}`); // as the config loader reads it
  }
  assert.equal(yamlValue('127.0.0.1'), '127.0.0.1');
  assert.equal(yamlValue('5432'), '"5432"');
  assert.equal(yamlValue('${HOME}'), '"$${HOME}"');
});

test('configTableName: the plain form when the pattern takes it, null when no form does', () => {
  assert.equal(configTableName('public', 'users'), 'public.users');
  assert.equal(configTableName('public', 'MixedCase'), 'public.MixedCase');
  // Not expressible by the table pattern (yet): left out, with the reason.
  const odd = configTableName('my schema', 'Order Items');
  assert.ok(odd === null || odd === '"my schema"."Order Items"', String(odd));
});

test('planTable: primary key, unique index with FULL, and the fixes of the others', () => {
  assert.deepEqual(pick(planTable(table({ table: 'users' }))), { included: true, key: ['id'], fix: [] });
  // REPLICA IDENTITY NOTHING with a primary key: published, its updates would fail on the source.
  const nothing = planTable(table({ table: 'n', replicaIdentity: 'n' }));
  assert.deepEqual(pick(nothing), { included: false, key: ['id'], fix: ['ALTER TABLE "public"."n" REPLICA IDENTITY DEFAULT;'] });
  const unique = { primaryKey: [], uniqueKeys: [{ index: 'ev_uq', columns: ['event_id'] }], columns: [{ name: 'event_id', type: 'uuid', notNull: true, generated: false }] };
  assert.deepEqual(pick(planTable(table({ table: 'ev', ...unique }))), { included: false, key: ['event_id'], fix: ['ALTER TABLE "public"."ev" REPLICA IDENTITY FULL;'] });
  assert.deepEqual(pick(planTable(table({ table: 'ev', ...unique, replicaIdentity: 'f' }))), { included: true, key: ['event_id'], fix: [] });
  // Neither: every column (but generated ones) is proposed as the key, after ALTER … FULL.
  const bare = planTable(table({ table: 'logs', primaryKey: [], columns: [{ name: 'line', type: 'text', notNull: false, generated: false }, { name: 'g', type: 'int', notNull: false, generated: true }] }));
  assert.deepEqual(pick(bare), { included: false, key: ['line'], fix: ['ALTER TABLE "public"."logs" REPLICA IDENTITY FULL;'] });
  assert.equal(bare.addable, true);
  assert.equal(planTable(table({ table: 'parted', kind: 'p' })).addable, false);
});

const pick = (p: ReturnType<typeof planTable>) => ({ included: p.included, key: p.key, fix: p.fix });

test('renderConfig: validates, holds no password, names the variables, comments the left-out tables', () => {
  const source = pgInitSource.parse('postgres://app:Sup3r-S3cret@db.example.com/shop', 'x');
  const r = renderConfig({
    source,
    target: pgInitSource.defaultTarget(source),
    targetIsDefault: true,
    pipeline: pipelineName('Shop_DB'),
    createdAt: '2026-01-01T00:00:00Z',
    file: 'sync.yaml',
    plans: [
      table({ table: 'users' }),
      table({ table: 'odd', columns: [{ name: 'id', type: 'bigint', notNull: true, generated: false }, { name: '${odd} col', type: 'text', notNull: false, generated: false }] }),
      table({ table: 'logs', primaryKey: [] }),
      table({ table: 'yes', columns: [{ name: 'on', type: 'boolean', notNull: true, generated: false }], primaryKey: ['on'] }),
    ].map(planTable),
  });
  assert.equal(pipelineName('Shop_DB'), 'shop-db');
  assert.ok(!r.text.includes('Sup3r-S3cret'));
  assert.deepEqual(r.env, ['SYNCLINE_SOURCE_PASSWORD']);
  assert.match(r.text, /password: \$\{SYNCLINE_SOURCE_PASSWORD\}/);
  assert.match(r.text, /#   ALTER TABLE "public"\."logs" REPLICA IDENTITY FULL;/);
  assert.match(r.text, /# - source: public\.logs\n\s+#   key: \[id, note\]/);
  assert.match(r.text, /# public\.users: id bigint NOT NULL, note text\n/);
  // A column name Avro cannot carry: the table is left out, with the rename that makes it capturable.
  assert.match(r.text, /# public\.odd has column "\$\{odd\} col" that is not a valid Avro field name/);
  assert.match(r.text, /#   ALTER TABLE "public"\."odd" RENAME COLUMN "\$\{odd\} col" TO "__odd__col";/);
  assert.match(r.text, /npx syncline doctor --config sync\.yaml/);
  const config = parseConfig(r.text, 'sync.yaml', { SYNCLINE_SOURCE_PASSWORD: 'x' });
  const p = config.pipelines['shop-db']!;
  assert.deepEqual(p.tables.map((t) => [t.source, t.key]), [['public.users', ['id']], ['public.yes', ['on']]]);
  assert.equal((p.source as { slot: string }).slot, 'syncline_shop_db');
  // Without --target: the source's server, database <source>_target, the same password variable.
  assert.deepEqual((p.target as { connection: unknown }).connection, { host: 'db.example.com', port: 5432, database: 'shop_target', user: 'app', password: 'x', ssl: false, sslVerify: true });
  assert.equal(p.conflict?.strategy, 'source-wins');
  assert.throws(() => parseConfig(r.text, 'sync.yaml', {}), /environment variable SYNCLINE_SOURCE_PASSWORD is not set/);
});
