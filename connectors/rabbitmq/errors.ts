/**
 * RabbitMQ errors → syncline's three kinds (src/core/errors.ts). The AMQP reply code decides: from
 * the error's `code` (a channel or connection closed by the server) or from its text (a refused
 * handshake: "Handshake terminated by server: 403 (ACCESS-REFUSED) …").
 *  - fatal: 403 ACCESS_REFUSED (credentials, or no configure/write permission on the exchange),
 *    530 NOT_ALLOWED (no access to the vhost, or it does not exist), 404 NOT_FOUND (the exchange
 *    does not exist and declare is false), 406 PRECONDITION_FAILED (the exchange exists with another
 *    type or durability, or a message over the broker's max_message_size);
 *  - retriable: everything else: connection refused, lost or forced closed (320), a channel closed
 *    under us, resource errors (506), timeouts, an unknown error.
 * Per-record outcomes (unroutable, too large) are decided in ./sink.ts, not here.
 */
import { classifyNetworkError, fatal, networkCode, retriable, SynclineError } from '../../src/core/errors.js';

const HINTS: Record<number, string> = {
  403: 'check the connection user and password, and that the user may configure (declare: true) and write the exchange: rabbitmqctl set_permissions -p <vhost> <user> <configure> <write> <read>',
  530: 'check connection.vhost exists and the user has access to it: rabbitmqctl set_permissions -p <vhost> <user> …',
  404: 'create the exchange, or set declare: true on the target',
  406: "the exchange exists with another type or durability than the target's exchangeType (declare it durable, or set declare: false), or a message exceeded the broker's max_message_size (lower maxMessageBytes)",
};

/** The AMQP reply code of an error, if it has one. */
export function replyCode(err: unknown): number | undefined {
  const e = err as { code?: unknown; message?: unknown } | null;
  if (e && typeof e.code === 'number') return e.code;
  const m = typeof e?.message === 'string' ? /\b(\d{3}) \(([A-Z-]+)\)/.exec(e.message) : null;
  return m ? Number(m[1]) : undefined;
}

export function classifyRabbitError(err: unknown, context: string): SynclineError {
  if (err instanceof SynclineError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  const code = replyCode(err);
  if (code !== undefined && HINTS[code] !== undefined) {
    return fatal(`RABBITMQ_${code}`, `${context}: ${msg} (${HINTS[code]})`, err);
  }
  if (/ACCESS[-_]REFUSED/.test(msg)) return fatal('RABBITMQ_403', `${context}: ${msg} (${HINTS[403]})`, err);
  if (networkCode(err)) return classifyNetworkError(err, context);
  if (code !== undefined) return retriable(`RABBITMQ_${code}`, `${context}: ${msg}`, err);
  if ((err as Error)?.name === 'IllegalOperationError') return retriable('RABBITMQ_CHANNEL_CLOSED', `${context}: ${msg}`, err);
  return retriable('RABBITMQ_ERROR', `${context}: ${msg}`, err);
}
