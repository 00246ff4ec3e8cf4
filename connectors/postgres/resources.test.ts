import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ddlTriggerVerdict, isPipelineOrigin, publicationVerdict, slotVerdict, type SlotRow } from './resources.js';
import type { PgSourceConfig } from './spec.js';

const source = (database: string, slot: string, port = 5432): PgSourceConfig => ({
  type: 'postgres', connection: { host: '127.0.0.1', port, database, user: 'postgres', ssl: false, sslVerify: true },
  slot, publication: slot, snapshot: 'initial', heartbeatMs: 10000, batchSize: 2000, lingerMs: 20, standbyPollMs: 1000,
});
const row = (o: Partial<SlotRow> = {}): SlotRow => ({ database: 'shop', plugin: 'pgoutput', active: false, activePid: null, retained: '16 kB', ...o });

test("a slot is dropped when it is this pipeline's: on its database, inactive, no other pipeline names it on that server", () => {
  assert.deepEqual(slotVerdict(source('shop', 's1'), row(), []), {});
  assert.deepEqual(slotVerdict(source('shop', 's1'), row({ active: true, activePid: '4242' }), []), { inUse: 'active (walsender pid 4242)' });
  assert.deepEqual(slotVerdict(source('shop', 's1'), row({ database: 'crm' }), []), { keep: "a slot of database crm, not of shop: not this pipeline's" });
  assert.deepEqual(slotVerdict(source('shop', 's1'), row({ database: null }), []), { keep: "a slot of database (physical), not of shop: not this pipeline's" });
  assert.deepEqual(slotVerdict(source('shop', 's1'), row(), [{ name: 'twin', config: source('crm', 's1') }]), { keep: 'also the slot of pipeline twin' });
  assert.deepEqual(slotVerdict(source('shop', 's1'), row(), [{ name: 'elsewhere', config: source('shop', 's1', 5433) }]), {}); // another server's slot of the same name
});

test('a publication is dropped only when it holds nothing but this pipeline\'s tables and no other pipeline uses it', () => {
  const ctx = { pipeline: 'a', tables: ['public.users', 'public.orders'], others: [] };
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: false, tables: ['public.orders', 'public.users'] }, ctx), {});
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: false, tables: [] }, ctx), {});
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: false, tables: ['public.users', 'public.audit'] }, ctx), { keep: 'also publishes public.audit, which pipeline a does not capture' });
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: true, tables: ['public.users'] }, ctx), { keep: 'FOR ALL TABLES: not one syncline creates' });
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: false, tables: ['public.users'] }, { ...ctx, others: [{ name: 'b', config: source('shop', 's1') }] }), { keep: 'also the publication of pipeline b' });
  assert.deepEqual(publicationVerdict(source('shop', 's1'), { allTables: false, tables: ['public.users'] }, { ...ctx, others: [{ name: 'b', config: source('crm', 's1') }] }), {}); // same name, other database
});

test("a pipeline's replication origins: <origin>:<n> and the republish ones, not another pipeline's", () => {
  const o = 'syncline:p:a';
  for (const n of ['syncline:p:a:0', 'syncline:p:a:17', 'syncline:p:a/republish:3', 'syncline:p:a/republish-update:0']) assert.ok(isPipelineOrigin(o, n), n);
  for (const n of ['syncline:p:a-b:0', 'syncline:p:a:', 'syncline:p:a:x', 'syncline:p:ab:0', 'syncline:p:a/other:0', 'xsyncline:p:a:0', 'syncline:p:a:0:1']) assert.ok(!isPipelineOrigin(o, n), n);
  assert.ok(!isPipelineOrigin('syncline:p.x:a', 'syncline:pyx:a:0')); // the prefix is matched literally
});

test('the DDL event trigger goes with the last pipeline of its database', () => {
  assert.deepEqual(ddlTriggerVerdict(source('shop', 's1'), [], []), {});
  assert.deepEqual(ddlTriggerVerdict(source('shop', 's1'), [], [{ name: 'b', config: source('shop', 's2') }]), { keep: 'pipeline b also captures database shop' });
  assert.deepEqual(ddlTriggerVerdict(source('shop', 's1'), [], [{ name: 'b', config: source('crm', 's2') }, { name: 'c', config: source('shop', 's3', 5433) }]), {});
  assert.deepEqual(ddlTriggerVerdict(source('shop', 's1'), ['other_slot'], []), { keep: 'database shop has other logical slots (other_slot) whose pipelines may use it' });
});
