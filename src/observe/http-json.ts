/**
 * The JSON APIs' shared pieces (/api/dlq, /api/pipelines/…/runs, …/backfills, …/verify, /api/history,
 * /api/schema, /api/reload): reading a request's JSON body and sending a JSON answer. Apart from the
 * server (./http.ts), which mounts the APIs and the console that use them.
 */
import type http from 'node:http';
import { HttpError } from '../core/errors.js';
export { HttpError } from '../core/errors.js';

/** A request's JSON object body ({} when empty); HttpError 413 beyond `limit` bytes, 400 when not a JSON object. */
export async function jsonBody(req: http.IncomingMessage, limit = 1 << 20): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body larger than ${limit >= 1 << 20 ? `${limit / (1 << 20)} MiB` : `${limit / 1024} KiB`}`);
    chunks.push(c as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, `request body must be a JSON object: ${(err as Error).message}`);
  }
}

export function sendJson(res: http.ServerResponse, status: number, v: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(JSON.stringify(v));
}
