import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AvroCodec } from './codec.js';
import { SynclineError } from './errors.js';

const REGISTRY = 'http://127.0.0.1:8081/apis/ccompat/v7';
/** A decoded record as plain data (longs decode to bigints). */
const plain = (r: unknown) => ({ ...(r as object) });
const asDecoded = (v: { n: number; s: string | null }) => ({ n: BigInt(v.n), s: v.s });

test('encodeSync: messages share slabs without overwriting each other, a value larger than a slab included', async () => {
  const codec = new AvroCodec(REGISTRY);
  const subject = `codec-slab-${process.pid}-${Date.now()}-value`;
  const id = await codec.register(subject, { type: 'record', name: 'V', namespace: 'syncline.test', fields: [{ name: 'n', type: 'long' }, { name: 's', type: ['null', 'string'] }] });
  // Sizes that end slabs at every kind of boundary: tiny, about a kilobyte, just under and over a slab, and several slabs.
  const sizes = [0, 1, 1000, 65_000, 65_530, 3, 70_000, 200_000, 17, 1024, 64 * 1024, 5];
  const values = [...sizes, ...Array.from({ length: 500 }, (_, i) => (i * 7919) % 3000)].map((len, n) => ({ n, s: n % 11 === 10 ? null : 'é✓x'.repeat(len).slice(0, len) }));
  const encoded = values.map((v) => codec.encodeSync(id, v));
  for (let i = 0; i < values.length; i++) {
    const buf = encoded[i]!;
    assert.equal(buf[0], 0, `magic byte of message ${i}`);
    assert.equal(buf.readInt32BE(1), id, `schema id of message ${i}`);
    assert.deepEqual(plain(await codec.decode(buf)), asDecoded(values[i]!), `message ${i} decodes to its value after every later message was encoded`);
  }
  // A value the schema refuses is poison and leaves the slab as it was: the next message and the earlier ones still decode.
  assert.throws(() => codec.encodeSync(id, { n: 'not a long', s: null }), (e: unknown) => e instanceof SynclineError && e.kind === 'poison' && e.code === 'AVRO_ENCODE');
  const after = codec.encodeSync(id, { n: 1, s: 'after' });
  assert.deepEqual(plain(await codec.decode(after)), { n: 1n, s: 'after' });
  assert.deepEqual(plain(await codec.decode(encoded[encoded.length - 1]!)), asDecoded(values[values.length - 1]!));
});
