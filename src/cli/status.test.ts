/**
 * `syncline status`'s pipeline lags, read from a Prometheus text exposition (the running process's
 * /metrics), and how the table shows them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatStatus, lagsOf } from './status.js';

const METRICS = `# HELP syncline_replication_slot_lag_bytes WAL bytes …
# TYPE syncline_replication_slot_lag_bytes gauge
syncline_replication_slot_lag_bytes{pipeline="orders"} 5242880
syncline_source_lag_seconds{pipeline="polled"} 12.5
syncline_consumer_lag_messages{pipeline="orders",stage="process",topic="p.cdc.public.orders",partition="0"} 40
syncline_consumer_lag_messages{pipeline="orders",stage="sink",topic="p.orders.apply",partition="1"} 2
syncline_consumer_lag_messages{pipeline="polled",stage="process",topic="q",partition="0"} 0
syncline_consumer_lag_messages_total{pipeline="orders"} 99
`;

test('lags per pipeline: slot bytes, poll seconds, consumer messages summed over stages and partitions', () => {
  const l = lagsOf(METRICS);
  assert.deepEqual(l.get('orders'), { slotBytes: 5242880, kafkaMessages: 42 });
  assert.deepEqual(l.get('polled'), { sourceSeconds: 12.5, kafkaMessages: 0 });
  assert.equal(l.size, 2);
});

test('the pipeline table shows them, "-" where the process serves none', () => {
  const health = {
    status: 'ok', uptimeS: 30,
    pipelines: [
      { name: 'orders', running: true, stages: ['capture', 'process', 'sink'] },
      { name: 'polled', running: true, stages: ['capture'] },
      { name: 'elsewhere', running: true, stages: ['sink'] },
    ],
  } as never;
  const out = formatStatus('syncline at x', { ready: true, checks: {} }, health, lagsOf(METRICS));
  assert.match(out, /orders\s+yes\s+capture, process, sink\s+5\.0 MiB WAL\s+42 msgs/);
  assert.match(out, /polled\s+yes\s+capture\s+12\.5 s\s+0 msgs/);
  assert.match(out, /elsewhere\s+yes\s+sink\s+-\s+-/);
});

test('a capture standing by shows as standby in the RUNNING column', () => {
  const health = { status: 'ok', uptimeS: 3, pipelines: [{ name: 'orders', running: true, stages: ['capture'], standby: [{ stage: 'capture', holder: { pid: 7 } }] }] } as never;
  assert.match(formatStatus('syncline at x', { ready: true, checks: {} }, health, new Map()), /orders\s+standby \(capture\)\s+capture/);
});
