/**
 * pino JSON logs, one line per event; child loggers carry pipeline/stage/table.
 *
 * Masking (src/core/redact.ts): every string of a line — the message, each field, an error's
 * message and stack — passes the installed masking policy before it is written, with the line's
 * `table` field (when it has one) as the table, so a target's error text quoting a sensitive value
 * (PostgreSQL "Key (email)=(…) already exists", MariaDB "Duplicate entry '…'", an HTTP body) is
 * logged masked whatever logged it.
 */
import { pino, type Logger } from 'pino';
import { redact, redacting } from './redact.js';

/** A copy of a log line's fields with every string masked (Errors serialized first, as pino would). */
function redactFields(value: unknown, table: string | undefined, depth: number): unknown {
  if (typeof value === 'string') return redact(value, table);
  if (value === null || typeof value !== 'object' || depth > 6) return value;
  if (value instanceof Error) return redactFields(plainError(value), table, depth + 1);
  if (Buffer.isBuffer(value)) return value;
  if (Array.isArray(value)) return value.map((v) => redactFields(v, table, depth + 1));
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = redactFields(v, table, depth + 1);
  return out;
}

/** pino's serialization of an Error (type, message, stack, own fields, causes) as a plain object. */
function plainError(e: Error): Record<string, unknown> {
  const s = pino.stdSerializers.err(e) as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k in s) out[k] = s[k];
  return out;
}

export const rootLogger: Logger = pino({
  level: process.env.SYNCLINE_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
  // SYNCLINE_INSTANCE_ID (also the processor's transactional id, src/runtime.ts) tells apart the lines
  // of several processes on one host.
  base: { svc: 'syncline', ...(process.env.SYNCLINE_INSTANCE_ID ? { instance: process.env.SYNCLINE_INSTANCE_ID } : {}) },
  timestamp: pino.stdTimeFunctions.isoTime,
  formatters: {
    // `err` is left to its serializer (below), which masks it the same way.
    log: (obj) => {
      if (!redacting()) return obj;
      const table = typeof obj.table === 'string' ? obj.table : undefined;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(obj)) out[k] = k === 'err' && v instanceof Error ? v : redactFields(v, table, 1);
      return out;
    },
  },
  serializers: {
    err: (e: unknown) => (e instanceof Error ? (redacting() ? redactFields(plainError(e), undefined, 1) : pino.stdSerializers.err(e)) : e),
  },
  hooks: {
    logMethod(args, method) {
      if (redacting()) {
        const table = typeof args[0] === 'object' && args[0] !== null && typeof (args[0] as { table?: unknown }).table === 'string' ? (args[0] as { table: string }).table : undefined;
        for (let i = 0; i < args.length; i++) if (typeof args[i] === 'string') (args as unknown[])[i] = redact(args[i] as string, table);
      }
      return method.apply(this, args);
    },
  },
});

export function stageLogger(pipeline: string, stage: string): Logger {
  return rootLogger.child({ pipeline, stage });
}
export type { Logger };
