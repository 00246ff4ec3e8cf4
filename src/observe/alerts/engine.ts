/**
 * The alert engine of one Runtime: every `evaluateEveryMs` it samples the metrics the rules read
 * from the Runtime's Registry (./samples.ts), evaluates each rule (./expr.ts), and notifies.
 *
 * Lifecycle of one alert (a rule and one series the condition holds for):
 *   condition holds → pending → (held for `for`) → firing → condition no longer holds → resolved.
 * A pending alert whose condition clears is dropped silently.
 *
 * Deduplication and aggregation, per severity (a "group"): alerts that fire or resolve are queued in
 * their group; a group is flushed when it has something queued and its last flush is at least
 * `groupWindowMs` old (the first notification of a group goes out at once). One flush is one message
 * per channel routed that severity, carrying every queued alert (firing and resolved). So:
 *  - an alert is announced once when it fires and never repeated while it stays firing;
 *  - a group sends at most one message per channel per window; alerts of a severity that fire
 *    within a window after a notification are aggregated into the next one;
 *  - an announced alert that resolves and fires again before the resolved notice went out (flapping
 *    inside the window) sends nothing: both notices cancel;
 *  - a resolved notice follows when the condition of an announced alert clears.
 *
 * Sending never blocks evaluations and never throws into the pipeline: one channel's messages go out
 * one after the other, in order (a resolved notice never overtakes its firing notice); each is sent with
 * core/retry.ts (the channel's retry policy, Retry-After honoured); a message that still fails is
 * logged at error with its channel and counted in syncline_alert_notifications_total{outcome="failed"}.
 * On stop(), evaluations end and sends in flight are given a few seconds, then abandoned; resolved
 * notices are not sent for alerts still firing at shutdown.
 */
import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { AlertsConfig, RetryConfig } from '../../core/config/schema.js';
import { errorMessage, fatal } from '../../core/errors.js';
import { redact } from '../../core/redact.js';
import { withRetry, RetryExhausted } from '../../core/retry.js';
import { makeChannel, type AlertNotice, type Channel, type Notification, type Severity } from './channels.js';
import { evaluateCondition, parseCondition, parseDuration, referencedMetrics, signature, type Condition, type Labels } from './expr.js';
import { SampleStore } from './samples.js';

interface Rule {
  name: string;
  cond: Condition;
  forMs: number;
  severity: Severity;
  summary: string;
  labels: Labels;
}

interface AlertState {
  key: string;
  rule: Rule;
  labels: Labels;
  value: number;
  state: 'pending' | 'firing';
  activeAt: number;
  firedAt?: number;
}

interface Group {
  lastFlushAt?: number;
  /** Queued notices by alert key: the newest status of each. */
  queue: Map<string, AlertNotice>;
  /** Alerts whose firing notice was sent and whose resolved notice was not. */
  announced: Set<string>;
}

/** An alert as GET /alerts shows it. */
export interface ActiveAlert {
  name: string;
  state: 'pending' | 'firing';
  severity: Severity;
  summary: string;
  labels: Labels;
  value: number;
  activeAt: string;
  firedAt?: string;
}

export interface AlertEngineOptions {
  config: AlertsConfig;
  /** defaults.retry: the base of each channel's retry policy. */
  retry: RetryConfig;
  registry: Registry;
  log: Logger;
  now?: () => number;
  /** Replaces the channels built from the config (tests). */
  channels?: Channel[];
  /** Waits between retries (tests). */
  wait?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** `{{ $lastError }}` of a summary: the last error of the alert's pipeline (its `pipeline` label), masked; '' when none. */
  lastError?: (pipeline: string | undefined) => string;
}

/**
 * `{{ $value }}` and `{{ $labels.NAME }}`, as in Prometheus annotations, and `{{ $lastError }}` (the
 * last error of the alert's pipeline: a stage failure or the newest dead letter's reason). The text
 * is masked (src/core/redact.ts): a value quoted in an error text never reaches a channel.
 */
export function renderSummary(text: string, labels: Labels, value: number, lastError?: (pipeline: string | undefined) => string): string {
  const out = text
    .replace(/\{\{\s*\$value\s*\}\}/g, String(value))
    .replace(/\{\{\s*\$labels\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g, (_, l: string) => labels[l] ?? '')
    .replace(/\{\{\s*\$lastError\s*\}\}/g, () => lastError?.(labels.pipeline) ?? '');
  return redact(out);
}

const abortableSleep = (ms: number, signal: AbortSignal) => new Promise<void>((resolve) => {
  if (signal.aborted) return resolve();
  const t = setTimeout(done, ms);
  function done() {
    clearTimeout(t);
    signal.removeEventListener('abort', done);
    resolve();
  }
  signal.addEventListener('abort', done);
});

export class AlertEngine {
  private readonly rules: Rule[];
  private readonly store: SampleStore;
  private readonly channels: { channel: Channel; retry: RetryConfig }[] = [];
  private readonly states = new Map<string, AlertState>();
  private readonly groups = new Map<Severity, Group>();
  private readonly inflight = new Set<Promise<void>>();
  /** Per channel, the last message queued: the next one is sent after it (in order). */
  private readonly lanes = new Map<string, Promise<void>>();
  private readonly abort = new AbortController();
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly counter: Counter<'channel' | 'outcome'>;
  private timer?: NodeJS.Timeout;
  private ticking?: Promise<void>;
  private stopped = false;
  private failing = false;

  constructor(private readonly o: AlertEngineOptions) {
    this.now = o.now ?? Date.now;
    this.log = o.log;
    this.rules = o.config.rules.map((r) => ({
      name: r.name, cond: parseCondition(r.expr), forMs: r.for ? parseDuration(r.for) : 0,
      severity: r.severity, summary: r.summary, labels: r.labels ?? {},
    }));
    const instant = new Set<string>();
    const ranges = new Map<string, number>();
    const margin = 2 * o.config.evaluateEveryMs;
    for (const r of this.rules) {
      const m = referencedMetrics(r.cond);
      for (const n of m.instant) instant.add(n);
      for (const [n, w] of m.ranges) ranges.set(n, Math.max(ranges.get(n) ?? 0, w + margin));
    }
    this.store = new SampleStore(instant, ranges);
    const existing = o.registry.getSingleMetric('syncline_alert_notifications_total') as Counter<'channel' | 'outcome'> | undefined;
    this.counter = existing ?? new Counter({
      name: 'syncline_alert_notifications_total',
      help: 'Alert notifications (one message to one channel) by outcome: sent, or failed once its retries were used up (or not retriable).',
      labelNames: ['channel', 'outcome'], registers: [o.registry],
    });
    const channels = o.channels ?? Object.entries(o.config.channels).flatMap(([name, c]) => {
      const ch = makeChannel(name, c);
      if ('disabled' in ch) {
        this.log.info({ channel: name, type: c.type, reason: ch.disabled }, 'alerts.channel.disabled');
        return [];
      }
      return [ch];
    });
    for (const ch of channels) {
      const override = o.channels ? undefined : o.config.channels[ch.name]?.retry;
      const retry = { ...o.retry };
      for (const [k, v] of Object.entries(override ?? {})) if (v !== undefined) (retry as Record<string, number>)[k] = v as number;
      this.channels.push({ channel: ch, retry });
      for (const outcome of ['sent', 'failed']) this.counter.inc({ channel: ch.name, outcome }, 0);
    }
  }

  /** Evaluate every evaluateEveryMs until stop(). */
  start(): void {
    if (this.timer || this.stopped || this.rules.length === 0) return;
    const every = this.o.config.evaluateEveryMs;
    const loop = () => {
      this.ticking = this.tick().finally(() => {
        this.ticking = undefined;
        if (!this.stopped) this.timer = setTimeout(loop, every);
      });
    };
    this.timer = setTimeout(loop, every);
    this.log.info({ rules: this.rules.length, channels: this.channels.map((c) => c.channel.name), evaluateEveryMs: every }, 'alerts.started');
  }

  /** One evaluation: sample, evaluate, notify. Never throws. */
  async tick(now: number = this.now()): Promise<void> {
    try {
      await this.store.sample(this.o.registry, now);
      this.evaluate(now);
      if (this.failing) this.log.info('alerts.evaluate.recovered');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.log.warn({ err: errorMessage(err) }, 'alerts.evaluate.failed');
      this.failing = true;
    }
  }

  /** Evaluate the rules on the samples recorded so far, then flush the groups that are due. */
  evaluate(now: number): void {
    for (const rule of this.rules) {
      const hits = evaluateCondition(rule.cond, this.store, now);
      const seen = new Set<string>();
      for (const h of hits) {
        const labels: Labels = { ...h.labels, ...rule.labels, severity: rule.severity };
        const key = `${rule.name}\u0000${signature(h.labels)}`;
        seen.add(key);
        let st = this.states.get(key);
        if (!st) this.states.set(key, (st = { key, rule, labels, value: h.value, state: 'pending', activeAt: now }));
        st.value = h.value;
        if (st.state === 'pending' && now - st.activeAt >= rule.forMs) {
          st.state = 'firing';
          st.firedAt = now;
          this.log.warn({ alert: rule.name, severity: rule.severity, labels: h.labels, value: h.value }, 'alerts.firing');
          this.fired(st);
        } else if (st.state === 'firing') {
          const q = this.group(rule.severity).queue.get(key);
          if (q?.status === 'firing') q.value = h.value;
        }
      }
      for (const [key, st] of this.states) {
        if (st.rule !== rule || seen.has(key)) continue;
        this.states.delete(key);
        if (st.state === 'firing') {
          this.log.info({ alert: rule.name, severity: rule.severity, labels: st.labels }, 'alerts.resolved');
          this.resolved(st, now);
        }
      }
    }
    this.flush(now);
  }

  private group(sev: Severity): Group {
    let g = this.groups.get(sev);
    if (!g) this.groups.set(sev, (g = { queue: new Map(), announced: new Set() }));
    return g;
  }

  private notice(st: AlertState, status: 'firing' | 'resolved', endsAt?: number): AlertNotice {
    return {
      status, name: st.rule.name, severity: st.rule.severity, summary: renderSummary(st.rule.summary, st.labels, st.value, this.o.lastError),
      labels: st.labels, value: st.value, startsAt: new Date(st.firedAt ?? st.activeAt).toISOString(),
      ...(endsAt !== undefined ? { endsAt: new Date(endsAt).toISOString() } : {}),
    };
  }

  private fired(st: AlertState): void {
    const g = this.group(st.rule.severity);
    if (g.announced.has(st.key)) g.queue.delete(st.key); // flapped inside the window: nothing to say
    else g.queue.set(st.key, this.notice(st, 'firing'));
  }

  private resolved(st: AlertState, now: number): void {
    this.group(st.rule.severity).queue.set(st.key, this.notice(st, 'resolved', now));
  }

  private flush(now: number): void {
    for (const [severity, g] of this.groups) {
      if (g.queue.size === 0) continue;
      if (g.lastFlushAt !== undefined && now - g.lastFlushAt < this.o.config.groupWindowMs) continue;
      const alerts = [...g.queue.values()];
      for (const [key, a] of g.queue) {
        if (a.status === 'firing') g.announced.add(key);
        else g.announced.delete(key);
      }
      g.queue.clear();
      g.lastFlushAt = now;
      const n: Notification = { status: alerts.some((a) => a.status === 'firing') ? 'firing' : 'resolved', severity, alerts };
      for (const c of this.channels) {
        if (!c.channel.severities.includes(severity)) continue;
        // One channel's messages go out in order: a resolved notice waits for the firing notice still
        // being retried (under load it overtook it, and the receiver was left with "firing").
        const p = (this.lanes.get(c.channel.name) ?? Promise.resolve()).then(() => this.send(c.channel, c.retry, n));
        this.lanes.set(c.channel.name, p);
        const tracked = p.finally(() => {
          this.inflight.delete(tracked);
          if (this.lanes.get(c.channel.name) === p) this.lanes.delete(c.channel.name);
        });
        this.inflight.add(tracked);
      }
    }
  }

  /** Send one message with retries; logs and counts the outcome; never rejects. */
  private async send(channel: Channel, retry: RetryConfig, n: Notification): Promise<void> {
    const signal = this.abort.signal;
    const names = n.alerts.map((a) => a.name);
    try {
      const r = await withRetry(retry, async () => {
        if (signal.aborted) throw fatal('ALERTS_STOPPED', 'the alert engine stopped before the notification was sent');
        await channel.send(n, signal);
      }, {
        wait: (ms) => (this.o.wait ?? abortableSleep)(ms, signal),
        onRetry: (err, attempt, delayMs) => this.log.warn({ channel: channel.name, attempt, delayMs, err: errorMessage(err) }, 'alerts.notify.retry'),
      });
      this.counter.inc({ channel: channel.name, outcome: 'sent' });
      this.log.info({ channel: channel.name, status: n.status, severity: n.severity, alerts: names, attempts: r.attempts }, 'alerts.notify.sent');
    } catch (err) {
      this.counter.inc({ channel: channel.name, outcome: 'failed' });
      const attempts = err instanceof RetryExhausted ? err.attempts : undefined;
      const last = err instanceof RetryExhausted ? err.last : err;
      this.log.error({ channel: channel.name, type: channel.type, status: n.status, severity: n.severity, alerts: names, attempts, err: errorMessage(last), code: (last as { code?: string })?.code }, 'alerts.notify.failed');
    }
  }

  /** Pending and firing alerts (GET /alerts). */
  active(): ActiveAlert[] {
    return [...this.states.values()].map((s) => ({
      name: s.rule.name, state: s.state, severity: s.rule.severity, summary: renderSummary(s.rule.summary, s.labels, s.value, this.o.lastError),
      labels: s.labels, value: s.value, activeAt: new Date(s.activeAt).toISOString(),
      ...(s.firedAt !== undefined ? { firedAt: new Date(s.firedAt).toISOString() } : {}),
    }));
  }

  /** Wait for the notifications in flight (tests). */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
  }

  /** Stop evaluating; give sends in flight `graceMs`, then abandon their retries. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (this.inflight.size > 0) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([this.idle(), new Promise<void>((r) => (t = setTimeout(r, graceMs)))]);
      clearTimeout(t);
    }
    this.abort.abort();
    await this.idle();
    for (const c of this.channels) c.channel.close?.();
  }
}
