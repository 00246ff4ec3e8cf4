/**
 * The audit trail on the real PostgreSQL: append and verify, tampering (an edited, a deleted, a
 * reordered row, a rewritten chain, a forged checkpoint) named by verify, the append-only trigger,
 * pruning from a checkpoint, two concurrent appenders, and recording while the database is down.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createDb, dropDb, PG, uid, waitFor } from '../../../test/helpers.js';
import { TcpProxy } from '../../../test/tcp-proxy.js';
import { rootLogger } from '../../core/log.js';
import { auditSpec } from '../../core/config/schema.js';
import { entryHash, GENESIS, signCheckpoint, verifyChain, type AuditEntry } from './chain.js';
import { AuditStore, type PendingEntry } from './store.js';
import { Auditor } from './recorder.js';

const db = `syncline_t_${uid()}_meta`;
const url = `postgres://${PG.user}@${PG.host}:${PG.port}/${db}`;
const keys = generateKeyPairSync('ed25519');
const log = rootLogger.child({ stage: 'audit-test' });
let admin: pg.Client;

const pending = (action: string, i: number, at = new Date()): PendingEntry => ({ id: randomUUID(), at: at.toISOString(), actor: `user${i % 3}`, role: 'operator', action, object: `dlq:p/${i}`, details: { n: i, table: 'public.t' } });

async function chain(table: string): Promise<{ store: AuditStore; verify: () => Promise<ReturnType<typeof verifyChain>> }> {
  const store = new AuditStore(url, table);
  return { store, verify: async () => verifyChain(await store.list(), await store.checkpoints(), { publicKey: keys.publicKey }) };
}

/** What an attacker with superuser rights can do: triggers off for this session. */
async function tamper(text: string, params: unknown[] = []): Promise<void> {
  await admin.query('begin');
  await admin.query('set local session_replication_role = replica');
  await admin.query(text, params);
  await admin.query('commit');
}

before(async () => {
  await createDb(db);
  admin = new pg.Client({ ...PG, database: db });
  await admin.connect();
});
after(async () => {
  await admin.end();
  await dropDb(db);
});

describe('audit trail on PostgreSQL', () => {
  test('entries appended in one chain verify; the trigger refuses UPDATE, DELETE and TRUNCATE', async () => {
    const { store, verify } = await chain('a_ok');
    try {
      for (let i = 0; i < 3; i++) await store.append([pending('dlq.resolve', i), pending('sync.run.start', i)]);
      await store.checkpoint(keys.privateKey, keys.publicKey);
      await store.append([pending('dlq.discard', 9)]);
      const list = await store.list();
      assert.deepEqual(list.map((e) => e.seq), [1, 2, 3, 4, 5, 6, 7]);
      assert.equal(list[0]!.prevHash, GENESIS);
      assert.equal(list[1]!.prevHash, list[0]!.hash);
      assert.equal(list[1]!.hash, entryHash(list[0]!.hash, list[1]!));
      const r = await verify();
      assert.equal(r.ok, true, JSON.stringify(r.problems));
      assert.equal(r.checkpoints, 1);
      await assert.rejects(admin.query(`update a_ok set actor = 'mallory' where seq = 2`), /append-only: UPDATE refused/);
      await assert.rejects(admin.query(`delete from a_ok where seq = 2`), /append-only: DELETE refused/);
      await assert.rejects(admin.query(`truncate a_ok`), /append-only: TRUNCATE refused/);
      await assert.rejects(admin.query(`delete from a_ok_checkpoints`), /append-only: DELETE refused/);
      await assert.rejects(admin.query(`select a_ok_prune(5)`), /no signed checkpoint at seq 5/);
    } finally {
      await store.close();
    }
  });

  test('an edited row, a deleted row and a reordered pair are each named by verify', async () => {
    const { store, verify } = await chain('a_tamper');
    try {
      for (let i = 0; i < 10; i++) await store.append([pending('dlq.requeue', i)]);
      assert.equal((await verify()).ok, true);

      await tamper(`update a_tamper set details = $1 where seq = 4`, [JSON.stringify({ n: 400, table: 'public.t' })]);
      let r = await verify();
      assert.equal(r.ok, false);
      assert.equal(r.problems[0]!.seq, 4);
      assert.equal(r.problems[0]!.kind, 'altered');
      assert.match(r.problems[0]!.message, /entry seq 4 .* was altered/);
      await tamper(`update a_tamper set details = $1 where seq = 4`, [JSON.stringify({ n: 3, table: 'public.t' })]);
      assert.equal((await verify()).ok, true, 'restored');

      await tamper(`delete from a_tamper where seq = 6`);
      r = await verify();
      assert.equal(r.problems[0]!.seq, 6);
      assert.equal(r.problems[0]!.kind, 'missing');
      assert.match(r.problems[0]!.message, /entry seq 6 is missing/);
    } finally {
      await store.close();
    }
    const t2 = await chain('a_swap');
    try {
      for (let i = 0; i < 10; i++) await t2.store.append([pending('backfill.pause', i)]);
      await tamper(`update a_swap set seq = -1 where seq = 7; update a_swap set seq = 7 where seq = 8; update a_swap set seq = 8 where seq = -1`);
      const r = await t2.verify();
      assert.equal(r.ok, false);
      assert.equal(r.problems[0]!.seq, 7);
      assert.equal(r.problems[0]!.kind, 'reordered');
      assert.match(r.problems[0]!.message, /entries 7 and 8 were reordered/);
    } finally {
      await t2.store.close();
    }
  });

  test('a rewrite of the whole chain (hashes recomputed) is caught by the signed checkpoint; a forged checkpoint by its signature', async () => {
    const { store, verify } = await chain('a_rewrite');
    try {
      for (let i = 0; i < 6; i++) await store.append([pending('config.reload', i)]);
      await store.checkpoint(keys.privateKey, keys.publicKey);
      await store.append([pending('process.stop', 7)]);
      // The attacker changes entry 2 and recomputes every hash after it: the chain alone is consistent again.
      const list = await store.list();
      list[1]!.actor = 'someone-else';
      let prev = GENESIS;
      for (const e of list) {
        e.prevHash = prev;
        e.hash = entryHash(prev, e);
        prev = e.hash;
        await tamper(`update a_rewrite set actor = $1, prev_hash = $2, hash = $3 where seq = $4`, [e.actor, e.prevHash, e.hash, e.seq]);
      }
      assert.equal(verifyChain(await store.list(), []).ok, true, 'without checkpoints the rewrite is consistent');
      let r = await verify();
      assert.equal(r.ok, false);
      assert.equal(r.problems[0]!.kind, 'checkpoint-mismatch');
      assert.equal(r.problems[0]!.seq, 6);
      assert.match(r.problems[0]!.message, /rewritten/);
      // A checkpoint re-signed with the attacker's own key does not verify with ours.
      const other = generateKeyPairSync('ed25519');
      const forged = signCheckpoint({ seq: 6, hash: list[5]!.hash, at: new Date().toISOString() }, other.privateKey, other.publicKey);
      await tamper(`update a_rewrite_checkpoints set hash = $1, key_id = $2, signature = $3 where seq = 6`, [forged.hash, forged.keyId, forged.signature]);
      r = await verify();
      assert.equal(r.problems[0]!.kind, 'bad-checkpoint');
      assert.match(r.problems[0]!.message, /checkpoint at seq 6 .*signature does not verify/);
      // Deleting the checkpoints leaves old entries uncovered.
      await tamper(`delete from a_rewrite_checkpoints`);
      r = verifyChain(await store.list(), await store.checkpoints(), { publicKey: keys.publicKey, coverWithinMs: 1000, now: new Date(Date.now() + 60_000) });
      assert.equal(r.problems[0]!.kind, 'uncovered');
    } finally {
      await store.close();
    }
  });

  test('pruning stops at a signed checkpoint and the rest verifies from it', async () => {
    const { store, verify } = await chain('a_prune');
    try {
      const old = new Date(Date.now() - 400 * 86_400_000);
      for (let i = 0; i < 5; i++) await store.append([pending('sync.run.end', i, old)]);
      await store.checkpoint(keys.privateKey, keys.publicKey); // at seq 5
      await store.append([pending('sync.run.end', 5, old), pending('dlq.resolve', 6)]); // seq 6 old, no checkpoint at 6
      await store.checkpoint(keys.privateKey, keys.publicKey); // at seq 7 (recent)
      const r = await store.prune(new Date(Date.now() - 365 * 86_400_000));
      assert.deepEqual({ through: r?.through, deleted: r?.deleted }, { through: 5, deleted: 5 });
      assert.deepEqual((await store.list()).map((e) => e.seq), [6, 7]);
      const v = await verify();
      assert.equal(v.ok, true, JSON.stringify(v.problems));
      assert.equal(v.anchor, 5);
      await store.append([pending('dlq.discard', 8)]);
      assert.equal((await verify()).ok, true);
      // Deleting past the checkpoint is not pruning: named.
      await tamper(`delete from a_prune where seq = 6`);
      const bad = await verify();
      assert.equal(bad.ok, false);
      assert.equal(bad.problems[0]!.kind, 'missing');
      assert.match(bad.problems[0]!.message, /first missing entry is seq 6/);
    } finally {
      await store.close();
    }
  });

  test('two appenders on two pools at once make one unbroken chain', async () => {
    const a = new AuditStore(url, 'a_conc');
    const b = new AuditStore(url, 'a_conc');
    try {
      await a.ensure();
      const burst = (s: AuditStore, who: string) => Promise.all(Array.from({ length: 20 }, (_, i) => s.append([pending(`${who}.x`, i), pending(`${who}.y`, i)])));
      await Promise.all([burst(a, 'a'), burst(b, 'b'), b.checkpoint(keys.privateKey, keys.publicKey)]);
      const list = await a.list();
      assert.equal(list.length, 80);
      assert.deepEqual(list.map((e) => e.seq), Array.from({ length: 80 }, (_, i) => i + 1));
      assert.ok(new Set(list.map((e) => e.action[0])).size === 2);
      const r = verifyChain(list, await a.checkpoints(), { publicKey: keys.publicKey });
      assert.equal(r.ok, true, JSON.stringify(r.problems.slice(0, 3)));
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('while the audit database is down, record() returns at once; the entries are appended once it is back', async () => {
    const proxy = new TcpProxy(PG.port);
    const port = await proxy.start();
    const cfg = auditSpec.parse({ url: `postgres://${PG.user}@127.0.0.1:${port}/${db}`, table: 'a_down' });
    const auditor = new Auditor(cfg, log);
    const registry = new Registry();
    auditor.attachMetrics(registry);
    try {
      auditor.record({ actor: 'alice', action: 'dlq.resolve', object: 'dlq:p/1', details: { choice: 'source', note: 'customer said so', key: '{"id":7}' } });
      await auditor.flush();
      proxy.block();
      const t0 = Date.now();
      auditor.record({ actor: 'bob', action: 'dlq.discard', object: 'dlq:p/2' });
      assert.ok(Date.now() - t0 < 50, 'record() does not wait for the database');
      await waitFor('an append error', async () => auditor.counts.errors.append > 0, 20_000);
      const text = await registry.metrics();
      assert.match(text, /syncline_audit_pending 1/);
      assert.match(text, /syncline_audit_errors_total\{kind="append"\} [1-9]/);
      proxy.unblock();
      await waitFor('the entry appended after the outage', async () => auditor.pendingCount === 0, 30_000);
      const list = await auditor.store.list();
      assert.deepEqual(list.map((e) => [e.seq, e.actor, e.action]), [[1, 'alice', 'dlq.resolve'], [2, 'bob', 'dlq.discard']]);
      // Masked: the note and the key are hashes, the choice stays.
      assert.equal(list[0]!.details.choice, 'source');
      assert.match(String(list[0]!.details.note), /^sha256:[0-9a-f]{16}$/);
      assert.match(String(list[0]!.details.key), /^sha256:[0-9a-f]{16}$/);
      assert.equal(verifyChain(list, []).ok, true);
    } finally {
      await auditor.close();
      await proxy.stop();
    }
  });
});
