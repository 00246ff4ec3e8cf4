import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DependencyWaits } from './core/dependencies.js';
import { fatal, retriable } from './core/errors.js';
import { superviseStage, untilReady, type StageTask, type WaitContext } from './supervise.js';
import { Writable } from 'node:stream';
import pino from 'pino';

function collectingLogger() {
  const lines: { level: number; msg: string }[] = [];
  const stream = new Writable({ write(chunk, _enc, cb) { for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l)); cb(); } });
  return { log: pino({ level: 'debug' }, stream), lines };
}

const ADDRS = { kafka: ['127.0.0.1:9092'], registry: 'http://127.0.0.1:8081/apis/ccompat/v7', redis: 'redis://127.0.0.1:6379' };
const kafkaDown = () => retriable('NET_ECONNREFUSED', 'Kafka at 127.0.0.1:9092 (kafka.brokers): cannot connect: connect ECONNREFUSED');

/** Waits of 1 ms; the deadline `ms` from now. */
function context(ms: number) {
  const { log, lines } = collectingLogger();
  const pauses: number[] = [];
  let stopping = false;
  const ctx: WaitContext = {
    waits: new DependencyWaits(log), addresses: ADDRS, startTimeoutMs: ms, deadline: Date.now() + ms,
    retry: { retries: 0, initialDelayMs: 1, maxDelayMs: 4, multiplier: 2, jitter: 0 },
    stopping: () => stopping,
    pause: async (d) => {
      pauses.push(d);
      await new Promise((r) => setTimeout(r, 1));
    },
  };
  return { ctx, lines, pauses, stop: () => (stopping = true) };
}

test('untilReady: a dependency not ready yet is retried with the policy delays, said once at warn and once at info', async () => {
  const { ctx, lines, pauses } = context(60_000);
  let calls = 0;
  const v = await untilReady(ctx, 'pipeline p target', async () => {
    if (++calls < 4) throw kafkaDown();
    return 'ok';
  });
  assert.equal(v, 'ok');
  assert.equal(calls, 4);
  assert.deepEqual(pauses, [1, 2, 4], "the policy's delays (retries count does not apply)");
  assert.equal(lines.filter((l) => l.level === 40).length, 1);
  assert.equal(lines.filter((l) => l.level === 30 && /dependency\.ready: Kafka/.test(l.msg)).length, 1);
});

test('untilReady: fatal errors and bugs are thrown at once', async () => {
  const { ctx, pauses } = context(60_000);
  await assert.rejects(untilReady(ctx, 'x', async () => { throw fatal('PG_28P01', 'password authentication failed'); }), /password authentication failed/);
  await assert.rejects(untilReady(ctx, 'x', async () => { throw new TypeError('boom'); }), /boom/);
  assert.deepEqual(pauses, []);
});

test('untilReady: at the deadline the last error is thrown, its code kept; a step that never answers is a START_TIMEOUT', async () => {
  const { ctx } = context(150);
  await assert.rejects(untilReady(ctx, 'Kafka', async () => { throw kafkaDown(); }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'NET_ECONNREFUSED');
    assert.match(err.message, /^Kafka at 127\.0\.0\.1:9092 \(kafka\.brokers\): cannot connect: connect ECONNREFUSED \(still failing at the start deadline/);
    return true;
  });
  const hang = context(100);
  await assert.rejects(untilReady(hang.ctx, 'Redis at 127.0.0.1:6379 (redis.url)', () => new Promise(() => undefined)), { code: 'START_TIMEOUT', message: 'start did not complete within 0.1s (startTimeoutMs): Redis at 127.0.0.1:6379 (redis.url) did not answer' });
});

/** Tasks that fail with the given errors while starting, then run until stopped. */
function tasks(failures: unknown[], opts: { failWhileRunning?: unknown } = {}) {
  const made: { stopped: boolean; task: StageTask }[] = [];
  let failRunning = opts.failWhileRunning;
  const make = (running: () => void): StageTask => {
    const state = { stopped: false } as { stopped: boolean; task: StageTask };
    made.push(state);
    let end!: (err?: unknown) => void;
    return state.task = {
      run: () => new Promise<void>((resolve, reject) => {
        end = (err) => (err ? reject(err) : resolve());
        const f = failures.shift();
        if (f) return void setImmediate(() => reject(f));
        if (f === null) return; // hangs while starting
        running();
        if (failRunning) {
          const e = failRunning;
          failRunning = undefined;
          setImmediate(() => reject(e));
        }
      }),
      stop: async () => {
        state.stopped = true;
        end?.();
      },
    };
  };
  return { made, make };
}

test('superviseStage: a stage failing while it starts is started again (a new task each time) until it runs', async () => {
  const { ctx, lines } = context(60_000);
  const t = tasks([kafkaDown(), kafkaDown()]);
  const events: string[] = [];
  const p = superviseStage(ctx, 'pipeline p process', t.make, { starting: () => events.push('starting'), waiting: () => events.push('waiting') });
  // Until the third task runs (a fixed 50 ms was too short on a loaded machine).
  for (let i = 0; i < 500 && !(t.made.length === 3 && events.length === 5); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(t.made.length, 3);
  assert.deepEqual(t.made.map((m) => m.stopped), [true, true, false], 'each failed task was stopped before the next');
  assert.deepEqual(events, ['starting', 'waiting', 'starting', 'waiting', 'starting']);
  assert.equal(lines.filter((l) => l.level === 40).length, 1, 'said once');
  assert.equal(lines.filter((l) => l.level === 30).length, 1, 'and once when it is there');
  await t.made[2]!.task.stop(); // the running task stops cleanly: so does the supervisor
  await p;
});

test('superviseStage: a stage that ran and fails with a retriable error starts again, with a new deadline', async () => {
  const { ctx } = context(100);
  const t = tasks([], { failWhileRunning: kafkaDown() });
  const p = superviseStage(ctx, 'pipeline p capture', t.make, { starting: () => undefined, waiting: () => undefined });
  let settled = false;
  p.then(() => (settled = true), () => (settled = true));
  await new Promise((r) => setTimeout(r, 250)); // past the first start's deadline
  assert.equal(t.made.length, 2, 'started again after the failure while running');
  assert.equal(settled, false, 'the restarted stage runs on past the first deadline');
  await t.made[1]!.task.stop();
  await p;
});

test('superviseStage: the start deadline ends a stage that cannot start, with the last error; fatal errors end it at once', async () => {
  const { ctx } = context(120);
  const t = tasks([kafkaDown(), null]); // fails once, then hangs while starting
  await assert.rejects(superviseStage(ctx, 'pipeline p process', t.make, { starting: () => undefined, waiting: () => undefined }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'NET_ECONNREFUSED');
    assert.match(err.message, /still failing at the start deadline/);
    return true;
  });
  assert.equal(t.made.at(-1)!.stopped, true, 'the hanging start was stopped');
  const f = context(60_000);
  const tf = tasks([fatal('SLOT_IN_USE', 'replication slot s is held by another process')]);
  await assert.rejects(superviseStage(f.ctx, 'x', tf.make, { starting: () => undefined, waiting: () => undefined }), /held by another process/);
  assert.equal(tf.made.length, 1);
});

test('superviseStage: stopping the runtime ends the waits', async () => {
  const { ctx, stop } = context(60_000);
  const t = tasks([kafkaDown(), kafkaDown(), kafkaDown(), kafkaDown(), kafkaDown(), kafkaDown()]);
  const p = superviseStage(ctx, 'x', t.make, { starting: () => undefined, waiting: () => stop() });
  await p; // resolves: stopped while waiting
  assert.equal(t.made.length, 1);
});
