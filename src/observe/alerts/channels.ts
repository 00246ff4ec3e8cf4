/**
 * Notification channels: one attempt of sending one notification (the engine retries with
 * core/retry.ts). Errors follow the taxonomy of core/errors.ts: HTTP answers through
 * classifyHttpStatus (429/5xx/408 retriable with Retry-After, 401/403 fatal, other 4xx poison),
 * network errors and SMTP 4xx retriable, SMTP 5xx poison.
 */
import nodemailer from 'nodemailer';
import type { AlertChannelConfig } from '../../core/config/schema.js';
import { classifyHttpStatus, errorMessage, poison, retriable } from '../../core/errors.js';

export type Severity = 'critical' | 'warning' | 'info';

export interface AlertNotice {
  status: 'firing' | 'resolved';
  name: string;
  severity: Severity;
  summary: string;
  labels: Record<string, string>;
  value: number;
  startsAt: string;
  endsAt?: string;
}

/** One message to one channel: the alerts of one severity that fired or resolved in one window. */
export interface Notification {
  status: 'firing' | 'resolved';
  severity: Severity;
  alerts: AlertNotice[];
}

export interface Channel {
  name: string;
  type: string;
  severities: Severity[];
  /** One attempt; throws a classified error. */
  send(n: Notification, signal: AbortSignal): Promise<void>;
  close?(): void;
}

const TIMEOUT_MS = 10_000;

/** The webhook body (Alertmanager-like). */
export function webhookBody(channel: string, n: Notification): unknown {
  return { version: '1', receiver: channel, status: n.status, groupLabels: { severity: n.severity }, alerts: n.alerts };
}

const icon = (s: 'firing' | 'resolved', sev: Severity) => (s === 'resolved' ? ':white_check_mark:' : sev === 'critical' ? ':rotating_light:' : sev === 'warning' ? ':warning:' : ':information_source:');

export function headline(n: Notification): string {
  const firing = n.alerts.filter((a) => a.status === 'firing');
  const resolved = n.alerts.filter((a) => a.status === 'resolved');
  const parts = [];
  if (firing.length) parts.push(`FIRING ${firing.length}: ${firing.map((a) => a.name).join(', ')}`);
  if (resolved.length) parts.push(`RESOLVED ${resolved.length}: ${resolved.map((a) => a.name).join(', ')}`);
  return `[syncline ${n.severity}] ${parts.join('; ')}`;
}

const describe = (a: AlertNotice) => {
  const labels = Object.entries(a.labels).filter(([k]) => k !== 'severity' && k !== 'alertname').map(([k, v]) => `${k}=${v}`).join(', ');
  return `${a.status.toUpperCase()} ${a.name}: ${a.summary}${labels ? ` (${labels})` : ''}; value ${a.value}; since ${a.startsAt}${a.endsAt ? `, resolved ${a.endsAt}` : ''}`;
};

/** A Slack incoming-webhook message. */
export function slackBody(n: Notification): unknown {
  const shown = n.alerts.slice(0, 40);
  const blocks: unknown[] = [{ type: 'section', text: { type: 'mrkdwn', text: `${icon(n.status, n.severity)} *${headline(n)}*` } }];
  for (const a of shown) blocks.push({ type: 'section', text: { type: 'mrkdwn', text: `${icon(a.status, a.severity)} ${describe(a)}` } });
  if (n.alerts.length > shown.length) blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `and ${n.alerts.length - shown.length} more` }] });
  return { text: headline(n), blocks };
}

export function emailText(n: Notification): string {
  return `${headline(n)}\n\n${n.alerts.map(describe).join('\n')}\n`;
}

async function post(channel: string, url: string, headers: Record<string, string> | undefined, body: unknown, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
      signal: AbortSignal.any([signal, AbortSignal.timeout(TIMEOUT_MS)]),
    });
  } catch (err) {
    throw retriable('ALERT_NETWORK', `alert channel ${channel}: ${errorMessage((err as { cause?: unknown }).cause ?? err)}`, err);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (!res.ok) throw classifyHttpStatus(res.status, `alert channel ${channel}`, res.headers.get('retry-after'));
}

/** The channel a config describes, or a reason it is disabled. */
export function makeChannel(name: string, c: AlertChannelConfig): Channel | { disabled: string } {
  const severities = c.severities as Severity[];
  if (c.type === 'webhook' || c.type === 'slack') {
    const url = c.url?.trim();
    if (!url) return { disabled: 'no url' };
    const body = c.type === 'slack' ? (n: Notification) => slackBody(n) : (n: Notification) => webhookBody(name, n);
    return { name, type: c.type, severities, send: (n, signal) => post(name, url, c.headers, body(n), signal) };
  }
  if (!c.smtp?.host?.trim() || !c.to?.length) return { disabled: !c.smtp?.host?.trim() ? 'no smtp.host' : 'no recipients (to)' };
  const transport = nodemailer.createTransport({
    host: c.smtp.host,
    port: c.smtp.port,
    secure: c.smtp.secure,
    auth: c.smtp.user ? { user: c.smtp.user, pass: c.smtp.password ?? '' } : undefined,
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  return {
    name, type: 'email', severities,
    async send(n) {
      try {
        await transport.sendMail({ from: c.from ?? 'syncline@localhost', to: c.to, subject: headline(n), text: emailText(n) });
      } catch (err) {
        const code = (err as { responseCode?: number }).responseCode;
        const msg = `alert channel ${name}: ${errorMessage(err)}`;
        if (code !== undefined && code >= 500) throw poison(`SMTP_${code}`, msg, err);
        throw retriable(code ? `SMTP_${code}` : 'ALERT_NETWORK', msg, err);
      }
    },
    close: () => transport.close(),
  };
}
