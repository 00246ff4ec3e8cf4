import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthState, healthStatusCode } from './health.js';
import { retriable } from '../core/errors.js';

test('a stage waiting for a dependency is not running and not failed: listed under waiting, the process alive', () => {
  const h = new HealthState();
  h.pipeline('orders-sync', ['capture', 'process', 'sink']);
  h.taskStarted('orders-sync', 'capture');
  h.taskWaiting('orders-sync', 'process', retriable('NET_ECONNREFUSED', 'Kafka at 127.0.0.1:9092 (kafka.brokers): cannot connect: connect ECONNREFUSED'));
  h.phase = 'running';
  const r = h.report();
  assert.equal(r.status, 'ok');
  assert.equal(healthStatusCode(r), 200);
  assert.equal(r.pipelines[0]!.running, false);
  assert.equal(r.pipelines[0]!.failed, undefined);
  assert.deepEqual(r.pipelines[0]!.waiting, [{ stage: 'process', class: 'retriable', code: 'NET_ECONNREFUSED', error: 'Kafka at 127.0.0.1:9092 (kafka.brokers): cannot connect: connect ECONNREFUSED' }]);
  assert.deepEqual(h.taskStates(), [{ pipeline: 'orders-sync', stage: 'capture', up: true }, { pipeline: 'orders-sync', stage: 'process', up: false }]);
  h.taskStarted('orders-sync', 'process');
  assert.equal(h.report().pipelines[0]!.waiting, undefined);
  assert.equal(h.report().pipelines[0]!.running, true);
});

test('a standby capture is running and healthy, listed under standby with the lock holder, until it leads', () => {
  const h = new HealthState();
  h.pipeline('orders-sync', ['capture']);
  h.taskStarted('orders-sync', 'capture');
  h.taskStandby('orders-sync', 'capture', { pid: 4242, applicationName: 'syncline capture orders-sync (host-a pid 17)' });
  h.phase = 'running';
  const r = h.report();
  assert.equal(r.status, 'ok');
  assert.equal(healthStatusCode(r), 200);
  assert.equal(r.pipelines[0]!.running, true);
  assert.deepEqual(r.pipelines[0]!.standby, [{ stage: 'capture', holder: { pid: 4242, applicationName: 'syncline capture orders-sync (host-a pid 17)' } }]);
  h.taskStandby('orders-sync', 'capture', null); // took the lock over
  assert.equal(h.report().pipelines[0]!.standby, undefined);
  h.taskStandby('orders-sync', 'capture', undefined);
  h.taskStarted('orders-sync', 'capture'); // a new task (restarted stage) starts without the mark
  assert.equal(h.report().pipelines[0]!.standby, undefined);
});
