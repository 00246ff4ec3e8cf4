/**
 * The one way syncline connects to RabbitMQ: the sink (and ping, doctor) take their options from
 * amqpOptions, so TLS means what it means for every connector (src/core/tls.ts).
 */
import amqp from 'amqplib';
import { clientTls } from '../../src/core/tls.js';
import type { RabbitmqConnection } from './spec.js';

export const rabbitWhere = (c: RabbitmqConnection): string => `${c.user}@${c.host}:${c.port}${c.vhost === '/' ? '' : '/' + encodeURIComponent(c.vhost)}`;

export function amqpOptions(c: RabbitmqConnection): { url: amqp.Options.Connect; socket: Record<string, unknown> } {
  const tls = clientTls('RabbitMQ', c, (msg) => process.emitWarning(msg, { code: 'SYNCLINE_TLS_UNVERIFIED' }));
  return {
    url: { protocol: c.ssl ? 'amqps' : 'amqp', hostname: c.host, port: c.port, username: c.user, password: c.password, vhost: c.vhost, heartbeat: c.heartbeatS },
    socket: { timeout: c.connectTimeoutMs, noDelay: true, ...(tls ? { ...tls, servername: /^[\d.:]+$/.test(c.host) ? undefined : c.host } : {}) },
  };
}

/** Open one connection (not recovering: the sink opens a new one when it breaks). */
export async function openConnection(c: RabbitmqConnection): Promise<amqp.ChannelModel> {
  const o = amqpOptions(c);
  return amqp.connect(o.url, o.socket);
}
