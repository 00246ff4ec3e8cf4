import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CustomTransformRunner } from './custom.js';

const moduleWith = (source: string): string => {
  const file = join(mkdtempSync(join(tmpdir(), 'syncline-custom-')), 't.mjs');
  writeFileSync(file, source);
  return file;
};

test('an answer that arrived in time is taken although the event loop was busy past the deadline', async (t) => {
  const r = new CustomTransformRunner(moduleWith('export function transform(c) { return { ...c, seen: true }; }'), 'transform', 100, 'step 1 (custom)');
  t.after(() => r.close());
  await r.ready();
  const p = r.call({ op: 'upsert', id: 1 });
  await Promise.resolve();
  await Promise.resolve();
  // The processor's thread busy (a big batch, a loaded machine) in a callback of the loop's check
  // phase: the deadline passes meanwhile, and the loop comes to its timers before its I/O.
  await new Promise<void>((resolve) => setImmediate(() => {
    const until = Date.now() + 400;
    while (Date.now() < until);
    resolve();
  }));
  assert.deepEqual(await p, { op: 'upsert', id: 1, seen: true });
  assert.equal(r.starts, 1, 'the worker was not replaced');
});

test('a call that outlasts its timeout is stopped, dead-letter material (poison), and the next call gets a fresh worker', async (t) => {
  const r = new CustomTransformRunner(moduleWith('export function transform(c) { if (c.loop) for (;;); return c; }'), 'transform', 200, 'step 1 (custom)');
  t.after(() => r.close());
  await assert.rejects(r.call({ loop: true }), (e: Error & { kind?: string; code?: string }) => e.code === 'TRANSFORM_TIMEOUT' && /took longer than 200 ms/.test(e.message));
  assert.deepEqual(await r.call({ loop: false, id: 2 }), { loop: false, id: 2 });
  assert.equal(r.starts, 2);
});

test('two calls made at once, the first looping: each settles (the first times out, the second is answered by a fresh worker)', async (t) => {
  // Before: both were sent before either was marked running; the first's timer found the second
  // marked and did nothing, so the first never settled (a batch waited forever; seen in npm test).
  const r = new CustomTransformRunner(moduleWith('export function transform(c) { if (c.loop) for (;;); return c; }'), 'transform', 300, 'step 1 (custom)');
  t.after(() => r.close());
  const first = r.call({ loop: true, id: 3 });
  const second = r.call({ loop: false, id: 4 });
  const settled = await Promise.race([
    Promise.allSettled([first, second]),
    new Promise<'hung'>((res) => setTimeout(() => res('hung'), 5000).unref()),
  ]);
  assert.notEqual(settled, 'hung', 'both calls settle');
  const [a, b] = settled as PromiseSettledResult<unknown>[];
  assert.equal(a!.status, 'rejected');
  assert.equal((a as PromiseRejectedResult).reason.code, 'TRANSFORM_TIMEOUT');
  assert.deepEqual(b, { status: 'fulfilled', value: { loop: false, id: 4 } });
});

test('a module that exits while loading fails the call with the load error; close settles what is running', async (t) => {
  const r = new CustomTransformRunner(moduleWith('process.exit(3); export function transform(c) { return c; }'), 'transform', 300, 'step 1 (custom)');
  const alive = setInterval(() => undefined, 1000); // workers are unref'd: the processor's own work keeps its loop alive
  t.after(() => clearInterval(alive));
  t.after(() => r.close());
  await assert.rejects(r.call({ id: 1 }), (e: Error & { code?: string }) => e.code === 'TRANSFORM_LOAD' && /exited \(code 3\) while loading/.test(e.message));
  const h = new CustomTransformRunner(moduleWith('export function transform() { return new Promise(() => {}); }'), 'transform', 60_000, 'step 1 (custom)');
  const hanging = assert.rejects(h.call({ id: 2 }), (e: Error & { code?: string }) => e.code === 'TRANSFORM_CLOSED');
  await h.ready();
  await new Promise((res) => setTimeout(res, 50));
  await h.close();
  await hanging;
});
