/**
 * Alerting on the real stack: a running Runtime whose target rejects rows (a CHECK) dead-letters
 * them; the rule `sum by (pipeline) (increase(syncline_dead_letters_total[3s])) > 0` fires and is
 * notified exactly once — despite a dozen evaluations — to a local webhook receiver (Alertmanager-
 * like JSON), to a second receiver in Slack incoming-webhook format, and by email to a local SMTP
 * server (smtp-server); once no row was dead-lettered for the window, the resolved notice follows.
 * A receiver answering 503 with Retry-After twice gets the message on the third attempt; a channel
 * pointing at a closed port is retried, logged and counted as failed, and the pipeline keeps
 * applying changes; a channel routed only critical alerts receives nothing. GET /alerts lists the
 * firing alert.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';

interface Receiver {
  url: string;
  bodies: Record<string, any>[];
  attempts: number;
  close(): Promise<void>;
}

/** A local HTTP receiver; `answer(n)` gives the status (and headers) of the n-th request (1-based). */
async function receiver(answer: (n: number) => { status: number; headers?: Record<string, string> } = () => ({ status: 200 })): Promise<Receiver> {
  const r = { bodies: [] as Record<string, any>[], attempts: 0 } as Receiver;
  const server = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      r.attempts++;
      const a = answer(r.attempts);
      if (a.status < 300) r.bodies.push(JSON.parse(data));
      res.writeHead(a.status, a.headers ?? {});
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  r.close = () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections(); });
  return r;
}

async function smtp(): Promise<{ port: number; mails: { to: string[]; text: string }[]; close(): Promise<void> }> {
  const mails: { to: string[]; text: string }[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      let text = '';
      stream.on('data', (c: Buffer) => (text += c.toString()));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((a) => a.address), text });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

async function closedPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

test('an alert fires once per channel (webhook, Slack, email), is deduplicated, resolves; failing channels are retried and never stop the pipeline', async (t) => {
  const P = 'alerting';
  const hook = await receiver();
  const slack = await receiver();
  const critical = await receiver();
  const flaky = await receiver((n) => (n <= 2 ? { status: 503, headers: { 'Retry-After': '1' } } : { status: 200 }));
  const mail = await smtp();
  const dead = await closedPort();
  t.after(async () => {
    await Promise.allSettled([hook.close(), slack.close(), critical.close(), flaky.close(), mail.close()]);
  });

  const env = await testEnv([{ name: P, tables: [{ source: 'public.items' }] }], {
    extra: {
      observability: { enabled: true, host: '127.0.0.1', port: 0 },
      alerts: {
        evaluateEveryMs: 250,
        groupWindowMs: 2000,
        channels: {
          hook: { type: 'webhook', url: hook.url, headers: { Authorization: 'Bearer test' } },
          slack: { type: 'slack', url: slack.url, severities: ['warning'] },
          mail: { type: 'email', smtp: { host: '127.0.0.1', port: mail.port, secure: false }, from: 'syncline@test.local', to: ['oncall@test.local'] },
          flaky: { type: 'webhook', url: flaky.url, retry: { retries: 3, initialDelayMs: 50, maxDelayMs: 2000 } },
          dead: { type: 'webhook', url: `http://127.0.0.1:${dead}/hook`, retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 100 } },
          'critical-only': { type: 'webhook', url: critical.url, severities: ['critical'] },
          disabled: { type: 'webhook', url: '' },
        },
        rules: [{
          name: 'SynclineDeadLetters',
          expr: 'sum by (pipeline) (increase(syncline_dead_letters_total[3s])) > 0',
          for: '500ms',
          severity: 'warning',
          summary: '{{ $labels.pipeline }} dead-lettered {{ $value }} records',
        }],
      },
    },
  });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null, updated_at timestamptz not null default now())`);
  await sql(env.targetDb, `create table items (id int primary key, qty int not null check (qty >= 0), updated_at timestamptz not null)`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  await waitFor('snapshot done', async () => (h.capture?.stats.confirmed ?? '') !== '');
  await sql(env.sourceDb, `insert into items (id, qty) select g, g from generate_series(1, 5) g`);
  await waitFor('5 applied', async () => h.applier!.stats.applied === 5);
  await sleep(1000);
  assert.equal(hook.bodies.length, 0, 'no alert while nothing is dead-lettered');

  // The target rejects two rows: dead-lettered → the rule fires.
  await sql(env.sourceDb, `insert into items (id, qty) values (100, -1), (101, -2)`);
  await waitFor('2 dead-lettered', async () => h.applier!.stats.deadLettered === 2, 30_000);
  await waitFor('the firing notice at the webhook', async () => hook.bodies.length >= 1, 30_000);
  const firing = hook.bodies[0]!;
  assert.equal(firing.status, 'firing');
  assert.equal(firing.alerts.length, 1);
  assert.equal(firing.alerts[0].name, 'SynclineDeadLetters');
  assert.equal(firing.alerts[0].severity, 'warning');
  assert.equal(firing.alerts[0].labels.pipeline, P);
  assert.match(firing.alerts[0].summary, new RegExp(`^${P} dead-lettered \\d+ records$`));
  assert.ok(firing.alerts[0].value >= 1);
  assert.ok(!Number.isNaN(Date.parse(firing.alerts[0].startsAt)));
  const listed = await (await fetch(`http://127.0.0.1:${rt.httpPort}/alerts`)).json() as { alerts: { name: string; state: string }[] };
  assert.deepEqual(listed.alerts.map((a) => `${a.name}/${a.state}`), ['SynclineDeadLetters/firing']);

  // While the rows keep the condition true the engine evaluates it many times: still one notice.
  await waitFor('the resolved notice at the webhook', async () => hook.bodies.length >= 2, 30_000);
  const resolved = hook.bodies[1]!;
  assert.equal(resolved.status, 'resolved');
  assert.equal(resolved.alerts[0].name, 'SynclineDeadLetters');
  assert.ok(resolved.alerts[0].endsAt);
  await waitFor('every channel done', async () => slack.bodies.length >= 2 && mail.mails.length >= 2 && flaky.bodies.length >= 2, 30_000);
  await sleep(1500); // a few more evaluations: nothing new
  assert.equal(hook.bodies.length, 2, 'webhook: exactly one firing and one resolved notice');
  assert.deepEqual(hook.bodies.map((b) => b.status), ['firing', 'resolved']);

  // Slack format.
  assert.equal(slack.bodies.length, 2);
  assert.match(slack.bodies[0]!.text, /FIRING 1: SynclineDeadLetters/);
  assert.ok(Array.isArray(slack.bodies[0]!.blocks) && slack.bodies[0]!.blocks.length >= 2);
  assert.match(JSON.stringify(slack.bodies[0]!.blocks), new RegExp(`${P} dead-lettered`));
  assert.match(slack.bodies[1]!.text, /RESOLVED 1: SynclineDeadLetters/);

  // Email.
  assert.equal(mail.mails.length, 2);
  assert.deepEqual(mail.mails[0]!.to, ['oncall@test.local']);
  assert.match(mail.mails[0]!.text, /Subject: \[syncline warning\] FIRING 1: SynclineDeadLetters/);
  assert.match(mail.mails[0]!.text, new RegExp(`${P} dead-lettered`));
  assert.match(mail.mails[1]!.text, /Subject: \[syncline warning\] RESOLVED 1: SynclineDeadLetters/);

  // 503 + Retry-After twice, then delivered; the resolved notice on its first attempt.
  assert.equal(flaky.attempts, 4);
  assert.deepEqual(flaky.bodies.map((b) => b.status), ['firing', 'resolved']);
  assert.equal(critical.attempts, 0, 'routing: a warning does not reach a critical-only channel');

  // The closed port: retried, given up, counted; the pipeline keeps applying changes.
  const metrics = await (await fetch(`http://127.0.0.1:${rt.httpPort}/metrics`)).text();
  const count = (channel: string, outcome: string) => Number(new RegExp(`syncline_alert_notifications_total\\{channel="${channel}",outcome="${outcome}"\\} (\\d+)`).exec(metrics)?.[1]);
  assert.equal(count('dead', 'failed'), 2);
  assert.equal(count('dead', 'sent'), 0);
  for (const c of ['hook', 'slack', 'mail', 'flaky']) {
    assert.equal(count(c, 'sent'), 2, c);
    assert.equal(count(c, 'failed'), 0, c);
  }
  assert.ok(!/channel="disabled"/.test(metrics), 'a channel without url is disabled');
  await sql(env.sourceDb, `insert into items (id, qty) select g, g from generate_series(200, 209) g`);
  await waitFor('10 more applied', async () => h.applier!.stats.applied === 15, 30_000);
  assert.equal(rt.observe.health.phase, 'running');
});
