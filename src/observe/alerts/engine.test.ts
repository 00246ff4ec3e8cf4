import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Gauge, Registry } from 'prom-client';
import { alertsSpec, type RetryConfig } from '../../core/config/schema.js';
import { retriable } from '../../core/errors.js';
import type { Channel, Notification } from './channels.js';
import { AlertEngine, renderSummary } from './engine.js';

const RETRY: RetryConfig = { retries: 2, initialDelayMs: 10, maxDelayMs: 100, multiplier: 2, jitter: 0 };

function capture() {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'debug' }, new Writable({ write(chunk, _e, cb) { lines.push(JSON.parse(String(chunk))); cb(); } }));
  return { log, lines };
}

function fake(name: string, severities: Channel['severities'], fail?: (attempt: number) => Error | undefined) {
  const got: Notification[] = [];
  let attempts = 0;
  const ch: Channel = {
    name, type: 'fake', severities,
    async send(n) {
      attempts++;
      const e = fail?.(attempts);
      if (e) throw e;
      got.push(structuredClone(n));
    },
  };
  return { ch, got, attempts: () => attempts };
}

function setup(rules: unknown[], channels: Channel[], groupWindowMs = 60_000) {
  const registry = new Registry();
  const lag = new Gauge({ name: 'lag', help: 'lag', labelNames: ['pipeline'], registers: [registry] });
  const down = new Gauge({ name: 'down', help: 'down', labelNames: ['pipeline'], registers: [registry] });
  const { log, lines } = capture();
  const config = alertsSpec.parse({ evaluateEveryMs: 1000, groupWindowMs, rules });
  const waits: number[] = [];
  const engine = new AlertEngine({ config, retry: RETRY, registry, log, channels, wait: async (ms) => { waits.push(ms); } });
  return { engine, lag, down, lines, registry, waits };
}

const lagRule = { name: 'LagHigh', expr: 'lag > 100', for: '2s', severity: 'warning', summary: 'lag of {{ $labels.pipeline }} is {{ $value }}' };
const downRule = { name: 'Down', expr: 'down == 1', severity: 'warning', summary: 'down' };

test('pending → firing after `for`, announced once despite many evaluations, then resolved', async () => {
  const w = fake('w', ['warning']);
  const { engine, lag } = setup([lagRule], [w.ch], 5000);
  lag.set({ pipeline: 'a' }, 500);
  await engine.tick(0);
  assert.equal(engine.active()[0]!.state, 'pending');
  await engine.tick(1000);
  await engine.idle();
  assert.equal(w.got.length, 0, 'still pending before `for`');
  for (let t = 2000; t <= 10_000; t += 1000) await engine.tick(t);
  await engine.idle();
  assert.equal(w.got.length, 1, 'one notification despite 9 evaluations while firing');
  assert.equal(w.got[0]!.status, 'firing');
  assert.deepEqual(w.got[0]!.alerts.map((a) => [a.name, a.status, a.summary, a.labels.pipeline, a.labels.severity]), [['LagHigh', 'firing', 'lag of a is 500', 'a', 'warning']]);
  assert.equal(w.got[0]!.alerts[0]!.startsAt, new Date(2000).toISOString());
  lag.set({ pipeline: 'a' }, 0);
  await engine.tick(11_000);
  await engine.idle();
  assert.equal(w.got.length, 2);
  assert.equal(w.got[1]!.status, 'resolved');
  assert.equal(w.got[1]!.alerts[0]!.endsAt, new Date(11_000).toISOString());
  assert.deepEqual(engine.active(), []);
  for (let t = 12_000; t <= 20_000; t += 1000) await engine.tick(t);
  await engine.idle();
  assert.equal(w.got.length, 2, 'nothing more');
});

test('a pending alert that clears before `for` sends nothing', async () => {
  const w = fake('w', ['warning']);
  const { engine, lag } = setup([lagRule], [w.ch]);
  lag.set({ pipeline: 'a' }, 500);
  await engine.tick(0);
  lag.set({ pipeline: 'a' }, 0);
  await engine.tick(1000);
  await engine.tick(5000);
  await engine.idle();
  assert.equal(w.got.length, 0);
});

test('alerts of one severity firing inside the window are aggregated; the resolved notice waits for the window; flapping is suppressed', async () => {
  const w = fake('w', ['warning']);
  const { engine, lag, down } = setup([{ ...lagRule, for: undefined }, downRule], [w.ch], 10_000);
  lag.set({ pipeline: 'a' }, 500);
  await engine.tick(0); // first notification of the group: at once
  lag.set({ pipeline: 'b' }, 500);
  down.set({ pipeline: 'a' }, 1);
  await engine.tick(1000);
  await engine.tick(2000);
  await engine.idle();
  assert.equal(w.got.length, 1);
  assert.deepEqual(w.got[0]!.alerts.map((a) => a.labels.pipeline), ['a']);
  await engine.tick(10_000); // the window is over: both new alerts in one message
  await engine.idle();
  assert.equal(w.got.length, 2);
  assert.deepEqual(w.got[1]!.alerts.map((a) => `${a.name}/${a.labels.pipeline}/${a.status}`).sort(), ['Down/a/firing', 'LagHigh/b/firing']);
  // LagHigh/a flaps inside the window: resolved, firing again before the next flush → nothing sent.
  lag.set({ pipeline: 'a' }, 0);
  await engine.tick(11_000);
  lag.set({ pipeline: 'a' }, 600);
  await engine.tick(12_000);
  // Down/a clears for good: its resolved notice goes out at the end of the window.
  down.set({ pipeline: 'a' }, 0);
  await engine.tick(13_000);
  await engine.tick(19_000);
  await engine.idle();
  assert.equal(w.got.length, 2, 'nothing inside the window');
  await engine.tick(20_000);
  await engine.idle();
  assert.equal(w.got.length, 3);
  assert.equal(w.got[2]!.status, 'resolved');
  assert.deepEqual(w.got[2]!.alerts.map((a) => `${a.name}/${a.labels.pipeline}/${a.status}`), ['Down/a/resolved']);
  assert.deepEqual(engine.active().map((a) => `${a.name}/${a.labels.pipeline}/${a.state}`).sort(), ['LagHigh/a/firing', 'LagHigh/b/firing']);
});

test('routing by severity: each severity is its own group', async () => {
  const crit = fake('crit', ['critical']);
  const all = fake('all', ['critical', 'warning', 'info']);
  const { engine, lag, down } = setup([{ ...lagRule, for: undefined }, { ...downRule, severity: 'critical' }], [crit.ch, all.ch]);
  lag.set({ pipeline: 'a' }, 500);
  down.set({ pipeline: 'a' }, 1);
  await engine.tick(0);
  await engine.idle();
  assert.deepEqual(crit.got.map((n) => [n.severity, n.alerts.map((a) => a.name)]), [['critical', ['Down']]]);
  assert.deepEqual(all.got.map((n) => [n.severity, n.alerts.map((a) => a.name)]).sort(), [['critical', ['Down']], ['warning', ['LagHigh']]]);
});

test('a failing channel is retried (Retry-After honoured), a permanently failing one is logged and counted, never thrown', async () => {
  const flaky = fake('flaky', ['warning'], (n) => {
    if (n > 2) return undefined;
    const e = retriable('HTTP_503', 'alert channel flaky: HTTP 503');
    e.retryAfterMs = 1000;
    return e;
  });
  const dead = fake('dead', ['warning'], () => retriable('ALERT_NETWORK', 'alert channel dead: ECONNREFUSED'));
  const { engine, lag, lines, registry, waits } = setup([{ ...lagRule, for: undefined }], [flaky.ch, dead.ch]);
  lag.set({ pipeline: 'a' }, 500);
  await engine.tick(0);
  await engine.idle();
  assert.equal(flaky.attempts(), 3);
  assert.equal(flaky.got.length, 1);
  assert.equal(dead.attempts(), RETRY.retries + 1);
  assert.ok(waits.filter((w) => w === 1000).length === 2, `Retry-After used: ${waits}`);
  const failed = lines.filter((l) => l.msg === 'alerts.notify.failed');
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.channel, 'dead');
  assert.equal(failed[0]!.level, 50, 'logged at error');
  assert.match(String(failed[0]!.err), /ECONNREFUSED/);
  const metric = await registry.getSingleMetricAsString('syncline_alert_notifications_total');
  assert.match(metric, /channel="dead",outcome="failed"} 1/);
  assert.match(metric, /channel="flaky",outcome="sent"} 1/);
  await engine.stop();
});

test('summary templates', () => {
  assert.equal(renderSummary('{{ $labels.pipeline }} at {{$value}} ({{ $labels.none }})', { pipeline: 'p' }, 3), 'p at 3 ()');
});

test('one channel in order: a resolved notice waits for its firing notice still being retried', async () => {
  // The firing notice fails twice (retriable) and its retries wait until released; the resolved one is flushed meanwhile.
  const got: Notification[] = [];
  let firingTries = 0;
  const ch: Channel = {
    name: 'w', type: 'fake', severities: ['warning'],
    async send(n) {
      if (n.status === 'firing' && ++firingTries <= 2) throw retriable('DOWN', 'channel down');
      got.push(structuredClone(n));
    },
  };
  const w = { ch, got };
  const registry = new Registry();
  const down = new Gauge({ name: 'down', help: 'down', labelNames: ['pipeline'], registers: [registry] });
  const { log } = capture();
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  // The first retry waits until released; later ones at once.
  let waits = 0;
  const engine = new AlertEngine({ config: alertsSpec.parse({ evaluateEveryMs: 1000, groupWindowMs: 0, rules: [downRule] }), retry: RETRY, registry, log, channels: [w.ch], wait: () => (waits++ === 0 ? held : Promise.resolve()) });
  down.set({ pipeline: 'a' }, 1);
  await engine.tick(0); // fires: the firing notice's first attempt fails, its retry waits
  down.set({ pipeline: 'a' }, 0);
  await engine.tick(1000); // resolves: the resolved notice is queued behind it
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(w.got.length, 0, 'nothing delivered while the firing notice waits');
  release();
  await engine.idle();
  assert.deepEqual(w.got.map((n) => n.status), ['firing', 'resolved']);
});
