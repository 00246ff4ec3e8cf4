import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverFindings, sourceFindings, targetFindings, type SourceDemand, type SourceFacts } from './doctor.js';
import type { ServerFacts, SlotFacts, TableFacts } from './introspect.js';

const server = (s: Partial<ServerFacts> = {}): ServerFacts => ({ version: 150000, walLevel: 'logical', maxReplicationSlots: 10, maxWalSenders: 10, walSegmentBytes: 16 << 20, slots: [], walSenders: 0, ...s });
const slot = (s: Partial<SlotFacts> & { name: string }): SlotFacts => ({ plugin: 'pgoutput', type: 'logical', database: 'shop', active: false, activePid: null, walStatus: 'reserved', retainedBytes: 0, ...s });
const table = (t: Partial<TableFacts> & { table: string }): TableFacts => ({
  schema: 'public', kind: 'r', partition: false,
  columns: [{ name: 'id', type: 'bigint', notNull: true, generated: false }, { name: 'sku', type: 'text', notNull: true, generated: false }],
  primaryKey: ['id'], replicaIdentity: 'd', identityIndex: [], uniqueKeys: [],
  privileges: { select: true, insert: true, update: true, delete: true, truncate: true }, owned: true, ...t,
});
const demand: SourceDemand = { pipeline: 'orders', slot: 'syncline_orders', publication: 'syncline_orders', tables: [{ source: 'public.orders' }] };
const facts = (f: Partial<SourceFacts> = {}): SourceFacts => ({
  server: server(), role: { name: 'app', superuser: false, replication: true, database: 'shop', createInDatabase: true }, publication: null, tables: [table({ table: 'orders' })], ...f,
});
const failed = (fs: { ok: boolean; check: string }[]) => fs.filter((f) => !f.ok).map((f) => f.check);

test('server: wal_level, and slots and walsenders counted for every pipeline of the server', () => {
  assert.deepEqual(failed(serverFindings('s', server(), [demand])), []);
  const f = serverFindings('s', server({ walLevel: 'replica', maxReplicationSlots: 2, slots: [slot({ name: 'a' }), slot({ name: 'b', active: true })], maxWalSenders: 1, walSenders: 1 }), [demand]);
  assert.deepEqual(failed(f), ['wal_level', 'max_replication_slots', 'max_wal_senders']);
  assert.deepEqual(f[0]!.fix, ['ALTER SYSTEM SET wal_level = logical;', 'then restart PostgreSQL (a managed service sets it in its parameter group)']);
  assert.equal(f[1]!.fix![0], 'ALTER SYSTEM SET max_replication_slots = 3;');
  assert.match(f[1]!.fix![2]!, /inactive now: a\)/);
  assert.equal(f[2]!.fix![0], 'ALTER SYSTEM SET max_wal_senders = 2;');
  // A pipeline whose slot exists and streams needs neither another slot nor another walsender.
  assert.deepEqual(failed(serverFindings('s', server({ maxReplicationSlots: 1, maxWalSenders: 1, walSenders: 1, slots: [slot({ name: 'syncline_orders', active: true })] }), [demand])), []);
});

test('source: REPLICATION, SELECT, a table that is missing', () => {
  const f = sourceFindings('s', { ...demand, tables: [{ source: 'public.orders' }, { source: 'public.gone' }] }, facts({
    role: { name: 'app', superuser: false, replication: false, database: 'shop', createInDatabase: true },
    tables: [table({ table: 'orders', privileges: { select: false, insert: false, update: false, delete: false, truncate: false } })],
  }), { user: 'app' });
  assert.deepEqual(failed(f), ['REPLICATION right', 'tables', 'SELECT right']);
  assert.equal(f.find((x) => x.check === 'REPLICATION right')!.fix![0], 'ALTER ROLE "app" REPLICATION;');
  assert.equal(f.find((x) => x.check === 'SELECT right')!.fix![0], 'GRANT SELECT ON "public"."orders" TO "app";');
  assert.match(f.find((x) => x.check === 'tables')!.detail, /public\.gone does not exist/);
});

test('publication: created when the role may, the SQL when it may not; what it publishes and covers', () => {
  const check = 'publication syncline_orders';
  const of = (f: Partial<SourceFacts>) => sourceFindings('s', demand, facts(f), { user: 'app' }).find((x) => x.check === check)!;
  assert.equal(of({}).ok, true);
  const notOwner = of({ tables: [table({ table: 'orders', owned: false })] });
  assert.deepEqual(notOwner.fix, ['CREATE PUBLICATION "syncline_orders" FOR TABLE "public"."orders";   -- as the tables\' owner or a superuser']);
  const pub = { name: 'syncline_orders', allTables: false, publishes: { insert: true, update: true, delete: true, truncate: true }, owned: false, tables: [] };
  assert.deepEqual(of({ publication: pub }).fix, ['ALTER PUBLICATION "syncline_orders" ADD TABLE "public"."orders";   -- as their owner or a superuser']);
  assert.equal(of({ publication: { ...pub, owned: true } }).ok, true); // syncline adds it at start
  assert.equal(of({ publication: { ...pub, tables: [{ schema: 'public', table: 'orders' }] } }).ok, true);
  const noDeletes = of({ publication: { ...pub, publishes: { ...pub.publishes, delete: false } } });
  assert.deepEqual(noDeletes.fix, ["ALTER PUBLICATION \"syncline_orders\" SET (publish = 'insert, update, delete, truncate');"]);
});

test('replica identity against the key the table is read with', () => {
  const of = (t: Partial<TableFacts>, key?: string[]) => sourceFindings('s', { ...demand, tables: [{ source: 'public.orders', key }] }, facts({ tables: [table({ table: 'orders', ...t })] }), { user: 'app' }).find((x) => x.check.startsWith('replica identity'))!;
  assert.equal(of({}).ok, true);
  assert.deepEqual(of({}, ['sku']).fix, ['ALTER TABLE "public"."orders" REPLICA IDENTITY FULL;']);
  assert.equal(of({ replicaIdentity: 'f' }, ['sku']).ok, true);
  assert.deepEqual(of({ replicaIdentity: 'n' }).fix, ['ALTER TABLE "public"."orders" REPLICA IDENTITY DEFAULT;']);
  assert.deepEqual(of({ replicaIdentity: 'i', identityIndex: ['sku'] }).fix, ['ALTER TABLE "public"."orders" REPLICA IDENTITY DEFAULT;']);
  const none = of({ primaryKey: [], uniqueKeys: [{ index: 'orders_sku_key', columns: ['sku'] }] });
  assert.deepEqual(none.fix, ['ALTER TABLE "public"."orders" REPLICA IDENTITY FULL;', 'and in the config, pipelines.orders.tables[0]: key: [sku]']);
  assert.match(of({}, ['nope']).detail, /key column 'nope' of public\.orders does not exist/);
});

test('slot: missing is fine; foreign, lost or inactive holding a segment of WAL is not', () => {
  const of = (s?: SlotFacts) => sourceFindings('s', demand, facts({ server: server({ slots: s ? [s] : [] }) }), { user: 'app' }).find((x) => x.check === 'slot syncline_orders')!;
  assert.equal(of().ok, true);
  assert.equal(of(slot({ name: 'syncline_orders', active: true, activePid: 7, retainedBytes: 1 << 30 })).ok, true);
  assert.equal(of(slot({ name: 'syncline_orders', retainedBytes: (16 << 20) - 1 })).ok, true);
  const held = of(slot({ name: 'syncline_orders', retainedBytes: 50 << 20 }));
  assert.equal(held.ok, false);
  assert.match(held.detail, /inactive, holding 50\.0 MiB \(52428800 bytes\) of WAL/);
  assert.deepEqual(held.fix, ['start the pipeline (npx syncline start --pipeline orders) so it catches up', "or, if the pipeline is retired: SELECT pg_drop_replication_slot('syncline_orders');"]);
  // A scheduled pipeline reads its slot only during runs: holding WAL between them is expected.
  const between = sourceFindings('s', { ...demand, mode: 'scheduled' }, facts({ server: server({ slots: [slot({ name: 'syncline_orders', retainedBytes: 50 << 20 })] }) }), { user: 'app' }).find((x) => x.check === 'slot syncline_orders')!;
  assert.equal(between.ok, true);
  assert.match(between.detail, /inactive between scheduled runs, holding 50\.0 MiB/);
  assert.match(of(slot({ name: 'syncline_orders', plugin: 'test_decoding' })).detail, /plugin test_decoding/);
  assert.match(of(slot({ name: 'syncline_orders', database: 'other' })).detail, /in database other/);
  assert.match(of(slot({ name: 'syncline_orders', walStatus: 'lost' })).detail, /lost/);
});

test('target: missing table (CREATE TABLE from the source), rights, key constraint, columns', () => {
  const role = { name: 'writer', superuser: false, replication: false, database: 'dst', createInDatabase: false };
  const d = { source: 'public.orders', table: 'public.orders', key: ['id'], columns: [{ name: 'id', pgType: 'bigint', notNull: true }, { name: 'note', pgType: 'character varying(20)', notNull: false }] };
  const missing = targetFindings('t', [d], { role, tables: [] }, { autoEvolve: true });
  assert.deepEqual(missing[0]!.fix, ['CREATE TABLE "public"."orders" ("id" bigint NOT NULL, "note" character varying(20), PRIMARY KEY ("id"));']);
  // autoCreate: a pass where the role may create in the schema, else the GRANT (or the CREATE TABLE).
  assert.equal(targetFindings('t', [d], { role, tables: [], creatable: new Set(['public']) }, { autoEvolve: true, autoCreate: true })[0]!.ok, true);
  const refused = targetFindings('t', [d], { role, tables: [], creatable: new Set() }, { autoEvolve: true, autoCreate: true })[0]!;
  assert.equal(refused.ok, false);
  assert.match(refused.fix![0]!, /^GRANT CREATE ON SCHEMA "public" TO "writer";/);
  const t = table({ table: 'orders', columns: [{ name: 'id', type: 'bigint', notNull: true, generated: false }], primaryKey: [], owned: false, privileges: { select: true, insert: true, update: false, delete: false, truncate: true } });
  const bad = targetFindings('t', [d], { role, tables: [t] }, { autoEvolve: true })[0]!;
  assert.equal(bad.ok, false);
  assert.deepEqual(bad.fix, [
    'GRANT UPDATE, DELETE ON "public"."orders" TO "writer";',
    'ALTER TABLE "public"."orders" ADD COLUMN "note" character varying(20);',
    'ALTER TABLE "public"."orders" ADD PRIMARY KEY ("id");',
  ]);
  const good = targetFindings('t', [d], { role, tables: [table({ table: 'orders', owned: true })] }, { autoEvolve: true })[0]!;
  assert.equal(good.ok, true, good.detail); // note is added by autoEvolve: the role owns the table
  const origins = targetFindings('t', [], { role, tables: [], origins: false }, { autoEvolve: true })[0]!;
  assert.match(origins.fix![0]!, /^GRANT EXECUTE ON FUNCTION pg_replication_origin_create\(text\), pg_replication_origin_session_setup\(text\), pg_replication_origin_oid\(text\), pg_replication_origin_xact_setup\(pg_lsn, timestamptz\) TO "writer";$/);
});

test('source: a column name Avro cannot carry fails, with the rename', () => {
  const f = sourceFindings('s', demand, facts({ tables: [table({ table: 'orders', columns: [{ name: 'id', type: 'bigint', notNull: true, generated: false }, { name: 'order no', type: 'text', notNull: false, generated: false }, { name: 'g h', type: 'int', notNull: false, generated: true }] })] }), { user: 'app' });
  const names = f.find((x) => x.check === 'column names')!;
  assert.equal(names.ok, false);
  assert.deepEqual(names.fix, ['ALTER TABLE "public"."orders" RENAME COLUMN "order no" TO "order_no";']); // generated columns are not published
});
