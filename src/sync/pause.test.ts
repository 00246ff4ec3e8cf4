import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { ConsumerStage } from '../process/processor.js';
import { WindowGate } from './gate.js';
import { PipelinePauses } from './pause.js';

/** A consumer stage's pause surface (what the gate and the pauses call). */
function stage() {
  const s = { isPaused: false, calls: [] as string[], pause() { s.isPaused = true; s.calls.push('pause'); }, resume() { s.isPaused = false; s.calls.push('resume'); } };
  return s;
}

test('an operator pause holds the stage until resumed; twice is a no-op said as unchanged', () => {
  const p = new PipelinePauses();
  const s = stage();
  const a = p.pause('orders', 'token:olivia', s);
  assert.equal(a.paused, true);
  assert.equal(a.by, 'token:olivia');
  assert.ok(a.at);
  assert.equal(s.isPaused, true);
  assert.equal(p.pause('orders', 'token:bob', s).unchanged, true, 'already paused');
  assert.equal(p.state('orders').by, 'token:olivia', 'the first pause is kept');
  assert.equal(p.isPaused('other'), false);
  const r = p.resume('orders', 'token:olivia', s);
  assert.deepEqual(r, { pipeline: 'orders', paused: false });
  assert.equal(s.isPaused, false);
  assert.equal(p.resume('orders', 'token:olivia', s).unchanged, true);
  assert.deepEqual(s.calls, ['pause', 'resume']);
  // Resumed while a sync window is closed: the stage stays paused (the window opens it).
  p.pause('orders', 'x', s);
  p.resume('orders', 'x', s, true);
  assert.equal(s.isPaused, true);
});

test('a sync window opening does not resume a pipeline an operator paused', () => {
  const p = new PipelinePauses();
  const s = stage();
  let now = new Date('2026-12-07T10:30:00Z'); // a Monday, inside 10:00-11:00
  const gate = new WindowGate({ pipeline: 'orders', held: () => p.isPaused('orders'), windows: ['Mon-Fri 10:00-11:00'], timezone: 'UTC', stage: () => s as unknown as ConsumerStage, registry: new Registry(), log: pino({ level: 'silent' }), now: () => now });
  gate.check();
  assert.equal(s.isPaused, false, 'window open: applying');
  p.pause('orders', 'x', s);
  gate.check();
  assert.equal(s.isPaused, true, 'the open window does not undo the pause');
  now = new Date('2026-12-07T11:30:00Z');
  gate.check();
  now = new Date('2026-12-07T10:15:00Z');
  gate.check();
  assert.equal(s.isPaused, true, 'still paused after the window reopened');
  p.resume('orders', 'x', s, !gate.isOpen);
  gate.check();
  assert.equal(s.isPaused, false);
});
