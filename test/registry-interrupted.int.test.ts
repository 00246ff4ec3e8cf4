/**
 * A first registration interrupted between its two registry calls (the schema registered, the
 * subject's compatibility not yet set: a kill -9 in between, found by the fault-injection run) must
 * not wedge the pipeline: the next registration finishes it and succeeds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { AvroCodec } from '../src/core/codec.js';

const URL = 'http://127.0.0.1:8081/apis/ccompat/v7';

test('a subject left at the registry default level by an interrupted registration is finished, not refused', async () => {
  const subject = `t${randomBytes(4).toString('hex')}.cdc.public.items-value`;
  const schema = { type: 'record', name: 'Item', namespace: 'test', fields: [{ name: 'id', type: 'int' }] };
  // The first of the client's two calls only (register), as a process killed right after it leaves it.
  const res = await fetch(`${URL}/subjects/${encodeURIComponent(subject)}/versions`, {
    method: 'POST', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ schema: JSON.stringify(schema) }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const { id } = (await res.json()) as { id: number };
  const codec = new AvroCodec(URL);
  assert.equal(await codec.register(subject, schema), id, 'the same schema id, no SCHEMA_INCOMPATIBLE');
  const cfg = (await (await fetch(`${URL}/config/${encodeURIComponent(subject)}`)).json()) as { compatibilityLevel: string };
  assert.equal(cfg.compatibilityLevel, 'BACKWARD');
});
