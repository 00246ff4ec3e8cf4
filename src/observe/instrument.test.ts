import { test } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { Metrics } from './metrics.js';
import { TimedSink } from './instrument.js';
import type { GuardedWrite, Sink, SinkRecord, TargetRows, WriteResult } from '../sink/sink.js';
import type { Row } from '../core/envelope.js';

const base = (): Sink => ({
  connect: async () => undefined,
  writeBatch: async (): Promise<WriteResult> => ({ failed: [] }),
  readRows: async () => new Map(),
  ping: async () => undefined,
  close: async () => undefined,
});

test('TimedSink keeps the optional capabilities of the sink it wraps (locked conflict reads, two-way re-publish), and only those', async () => {
  const metrics = new Metrics({ pipelines: () => [], log: pino({ level: 'silent' }), processMetrics: false });
  const plain = new TimedSink(base(), metrics, 'p');
  assert.equal(plain.writeGuarded, undefined, 'no guarded write to offer');
  assert.equal(plain.republish, undefined);

  const calls: string[] = [];
  const guarded: Sink = {
    ...base(),
    writeGuarded: async (g: GuardedWrite) => {
      calls.push('read');
      const out = await g.decide(new Map() as TargetRows);
      calls.push(`write ${out.length}`);
      return { failed: [] };
    },
    republish: async (table: string, keys: Row[], over: string) => void calls.push(`republish ${table} ${keys.length} ${over}`),
  };
  const timed = new TimedSink(guarded, metrics, 'p');
  assert.ok(timed.writeGuarded && timed.republish);
  await timed.writeGuarded({ reads: new Map(), decide: async () => [{} as SinkRecord] });
  await timed.republish('public.t', [{ id: 1 }], 'update');
  assert.deepEqual(calls, ['read', 'write 1', 'republish public.t 1 update']);
  const text = await metrics.registry.metrics();
  assert.match(text, /syncline_sink_round_trip_seconds_count\{pipeline="p",kind="read",outcome="ok"\} 1/);
  assert.match(text, /syncline_sink_round_trip_seconds_count\{pipeline="p",kind="write",outcome="ok"\} 1/);
});
