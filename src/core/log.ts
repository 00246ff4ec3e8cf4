/** pino JSON logs, one line per event; child loggers carry pipeline/stage/table. */
import { pino, type Logger } from 'pino';

export const rootLogger: Logger = pino({
  level: process.env.SYNCLINE_LOG_LEVEL ?? (process.env.NODE_ENV === 'test' ? 'warn' : 'info'),
  // SYNCLINE_INSTANCE_ID (also the processor's transactional id, src/runtime.ts) tells apart the lines
  // of several processes on one host.
  base: { svc: 'syncline', ...(process.env.SYNCLINE_INSTANCE_ID ? { instance: process.env.SYNCLINE_INSTANCE_ID } : {}) },
  timestamp: pino.stdTimeFunctions.isoTime,
});

export function stageLogger(pipeline: string, stage: string): Logger {
  return rootLogger.child({ pipeline, stage });
}
export type { Logger };
