import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import '../../../connectors/index.js';
import { ConfigError, parseConfig } from '../../core/config/load.js';
import { DecryptingSink, PipelineCrypto } from './pipeline.js';
import { Keyring } from './keyring.js';
import type { Sink, SinkRecord, WriteResult } from '../../sink/sink.js';

const config = (table: string, top = 'encryption: { activeKey: k1 }\n', target = '') => `version: 1
${top}pipelines:
  p:
    source: { type: postgres, connection: { database: a }, slot: s, publication: s }
    target: { type: postgres, connection: { database: b }${target} }
    tables:
      - source: public.users
${table}`;

const problems = (text: string): string => {
  try {
    parseConfig(text, 'enc.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('accepted');
};

test('config: encrypt and decrypt accepted; mistakes refused with file, line and reason', () => {
  const c = parseConfig(config('        key: [id]\n        encrypt: [email, phone]\n', undefined, ', decrypt: true'), 'enc.yaml', {});
  assert.deepEqual(c.pipelines.p!.tables[0]!.encrypt, ['email', 'phone']);
  assert.equal((c.pipelines.p!.target as { decrypt?: boolean }).decrypt, true);
  assert.match(problems(config('        encrypt: [email]\n', '')), /enc\.yaml:\d+:\d+: .*encrypt needs the top-level encryption section/);
  assert.match(problems(config('        key: [id]\n        encrypt: [id]\n')), /key column id cannot be encrypted/);
  // latest-timestamp on an encrypted field: accepted (the applier compares the decrypted values).
  assert.deepEqual(parseConfig(config('        encrypt: [updated_at]\n'), 'enc.yaml', {}).pipelines.p!.tables[0]!.encrypt, ['updated_at']);
  assert.match(problems(config('        encrypt: [a, a]\n')), /listed twice/);
  assert.match(problems(config('', 'encryption: { activeKey: "bad id" }\n')), /activeKey/);
  // A follower (fan-out) shares the change topic: the same columns encrypted, or refused.
  const two = (enc: string) => config('        encrypt: [email]\n').replace('    source: { type: postgres, connection: { database: a }, slot: s, publication: s }\n', '    follows: q\n').replace('pipelines:\n  p:', `pipelines:\n  q:\n    source: { type: postgres, connection: { database: a }, slot: s2, publication: s2 }\n    target: { type: postgres, connection: { database: c } }\n    tables:\n      - source: public.users\n${enc}  p:`);
  assert.doesNotThrow(() => parseConfig(two('        encrypt: [email]\n'), 'enc.yaml', {}));
  assert.match(problems(two('')), /change topic syncline\.cdc\.public\.users is shared with pipeline 'q', which encrypts no columns of public\.users \(here \["email"\]\)/);
});

test('DecryptingSink: a moved ciphertext fails its record only (poison naming table, column, key); the rest is written in clear', async () => {
  const ring = new Keyring(new Map([['k1', crypto.randomBytes(32)]]), 'k1', 'k1');
  const pc = new PipelineCrypto('p', 'pfx', ring, [{ source: 'public.users', encrypt: ['email'] }], { decrypt: true });
  const seal = (id: number, email: string) => pc.sealEvent('public.users', { id }, { op: 'c', before: null, after: { id, email }, source: { db: 'd', schema: 'public', table: 'users', pos: '0/1', commitPos: '0/1', txId: 1, tsMs: 0, snapshot: false, idx: 0 }, tsMs: 0, unchangedToast: [] }).after!;
  const rec = (id: number, values: Record<string, unknown>): SinkRecord => ({ table: 'public.users', op: 'upsert', key: { id }, values: values as SinkRecord['values'], keep: [], position: String(id), hash: null, sourceTsMs: 0, origin: { topic: 't', partition: 0, offset: String(id) } });
  const written: SinkRecord[] = [];
  const inner: Sink = {
    connect: async () => undefined, ping: async () => undefined, close: async () => undefined, readRows: async () => new Map(),
    writeBatch: async (b): Promise<WriteResult> => {
      written.push(...b);
      return { failed: [] };
    },
  };
  const ok = rec(1, seal(1, 'a@x.io'));
  const moved = rec(2, { id: 2, email: seal(1, 'b@x.io').email });
  const res = await new DecryptingSink(inner, pc).writeBatch([ok, moved]);
  assert.deepEqual(written.map((r) => r.values), [{ id: 1, email: 'a@x.io' }]);
  assert.equal(res.failed.length, 1);
  assert.equal(res.failed[0]!.record, moved, 'the original record (ciphertext) is reported: it is dead-lettered as it came');
  assert.equal(res.failed[0]!.error.code, 'DECRYPT_FAILED');
  assert.equal(res.failed[0]!.error.kind, 'poison');
  assert.match(res.failed[0]!.error.message, /table public\.users, column email, key \{"id":2\}/);
  assert.ok(!res.failed[0]!.error.message.includes('b@x.io'));
  assert.ok(String(ok.values!.email).startsWith('sl1:k1:'), 'the record itself keeps its ciphertext');
});

test('openRow / sealValue: a transient plaintext copy (the row itself untouched), and a value sealed again for its row', () => {
  const ring = new Keyring(new Map([['k1', crypto.randomBytes(32)]]), 'k1', 'k1');
  const pc = new PipelineCrypto('p', 'pfx', ring, [{ source: 'public.users', target: 'public.u2', columns: { email: 'mail' }, encrypt: ['email', 'ts'] }], {});
  const after = pc.sealEvent('public.users', { id: 1 }, { op: 'c', before: null, after: { id: 1, email: 'a@x.io', ts: '2026-01-01T00:00:00.000000Z' }, source: { db: 'd', schema: 'public', table: 'users', pos: '0/1', commitPos: '0/1', txId: 1, tsMs: 0, snapshot: false, idx: 0 }, tsMs: 0, unchangedToast: [] }).after!;
  const row = { id: 1, mail: after.email!, ts: after.ts! };
  assert.deepEqual([...pc.encryptedColumns('public.u2')!].sort(), ['mail', 'ts']);
  assert.deepEqual(pc.openRow('public.u2', row, { id: 1 }), { id: 1, mail: 'a@x.io', ts: '2026-01-01T00:00:00.000000Z' });
  assert.deepEqual(pc.openRow('public.u2', row, { id: 1 }, ['ts']), { id: 1, mail: after.email, ts: '2026-01-01T00:00:00.000000Z' });
  assert.ok(String(row.mail).startsWith('sl1:'), 'the row keeps its ciphertexts');
  assert.deepEqual(pc.openRow('public.u2', { id: 1, ts: 'plain' }, { id: 1 }), { id: 1, ts: 'plain' }, 'a decrypting target row is taken as it is');
  assert.throws(() => pc.openRow('public.u2', row, { id: 2 }), (e: Error & { code?: string }) => e.code === 'DECRYPT_FAILED' && !e.message.includes('a@x.io'));
  const sealed = pc.sealValue('public.u2', 'mail', 'b@x.io', { id: 1 });
  assert.match(String(sealed), /^sl1:k1:/);
  assert.equal(pc.openRow('public.u2', { mail: sealed }, { id: 1 }).mail, 'b@x.io');
  const other = new PipelineCrypto('p', 'pfx', new Keyring(new Map([['k9', crypto.randomBytes(32)]]), 'k9', 'k9'), [{ source: 'public.users', target: 'public.u2', columns: { email: 'mail' }, encrypt: ['email', 'ts'] }], {});
  assert.throws(() => other.openRow('public.u2', row, { id: 1 }), (e: Error & { code?: string; kind?: string }) => e.code === 'ENCRYPTION_KEY_MISSING' && e.kind === 'fatal' && /key 'k1'/.test(e.message));
});
