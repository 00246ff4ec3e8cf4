import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollStateResources } from './resources.js';

test('pipeline drop lists and removes the pipeline\'s poll state directory only', async () => {
  const root = mkdtempSync(join(tmpdir(), 'syncline-poll-res-'));
  mkdirSync(join(root, 'postgres_poll_a', 'public.t'), { recursive: true });
  writeFileSync(join(root, 'postgres_poll_a', 'public.t', '1-0.json'), '[]');
  writeFileSync(join(root, 'postgres_poll_a', 'public.t', '1-1.json'), '[]');
  mkdirSync(join(root, 'postgres_poll_b'));
  const r = pollStateResources(root, 'postgres_poll_a');
  const listed = await r.list();
  assert.deepEqual(listed.map((x) => [x.kind, x.name, x.detail]), [['poll state directory', join(root, 'postgres_poll_a'), '2 chunk files']]);
  await r.drop(listed);
  assert.ok(!existsSync(join(root, 'postgres_poll_a')) && existsSync(join(root, 'postgres_poll_b')));
  assert.deepEqual(await r.list(), [], 'idempotent: nothing left to list');
  await r.drop(listed);
});
