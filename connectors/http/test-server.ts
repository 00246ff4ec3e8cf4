/**
 * A real HTTP server for the HTTP sink's tests (node:http on an ephemeral port): stores JSON objects
 * by URL path, deletes them on DELETE, applies each Idempotency-Key once (a repeat is answered 200 and
 * counted, not applied), takes batched arrays at /batch, and can be told to fail requests.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  path: string;
  idem: string | undefined;
  body: string;
  headers: IncomingMessage['headers'];
  status: number;
}

export type Fault = (req: { method: string; path: string; idem: string | undefined; body: string }) => { status: number; headers?: Record<string, string>; body?: string } | null;

export class TestApi {
  readonly objects = new Map<string, Record<string, unknown>>();
  readonly seen: Seen[] = [];
  /** Requests per idempotency key (every attempt), and those applied. */
  readonly attempts = new Map<string, number>();
  readonly applied = new Map<string, number>();
  /** A `seq` field that went backwards for a path: path → [stored, incoming]. */
  readonly backwards: { path: string; stored: number; incoming: number }[] = [];
  fault: Fault = () => null;
  /** Delay before answering (ms), to keep requests in flight. */
  delayMs = 0;
  private server!: Server;
  port = 0;

  /** Listen on `port` (0: an ephemeral one); start again after stop() on the same port to bring the server back (what it stored is kept). */
  async start(port = 0): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const method = req.method!;
        const path = decodeURI(new URL(req.url!, 'http://x').pathname);
        const idem = req.headers['idempotency-key'] as string | undefined;
        const answer = (status: number, text = '', headers: Record<string, string> = {}) => {
          this.seen.push({ method, path, idem, body, headers: req.headers, status });
          const go = () => {
            res.writeHead(status, { 'content-type': 'application/json', ...headers });
            res.end(text);
          };
          if (this.delayMs > 0) setTimeout(go, this.delayMs);
          else go();
        };
        if (method === 'GET') {
          const o = this.objects.get(path);
          return o ? answer(200, JSON.stringify(o)) : answer(404, '{"error":"not found"}');
        }
        const f = this.fault({ method, path, idem, body });
        if (idem !== undefined) this.attempts.set(idem, (this.attempts.get(idem) ?? 0) + 1);
        if (f) return answer(f.status, f.body ?? '', f.headers);
        if (idem !== undefined && this.applied.has(idem)) {
          this.applied.set(idem, this.applied.get(idem)! + 1); // a repeat: counted, not applied
          return answer(200, '{"repeat":true}');
        }
        try {
          if (path === '/batch') {
            for (const item of JSON.parse(body) as { op: string; table: string; key: Record<string, unknown>; values: Record<string, unknown> | null }[]) {
              const p = `/${item.table}/${Object.values(item.key).join(',')}`;
              if (item.op === 'delete') this.objects.delete(p);
              else this.put(p, item.values!);
            }
          } else if (method === 'DELETE') this.objects.delete(path);
          else this.put(path, JSON.parse(body) as Record<string, unknown>);
        } catch (err) {
          return answer(400, JSON.stringify({ error: String(err) }));
        }
        if (idem !== undefined) this.applied.set(idem, 1);
        answer(method === 'POST' ? 201 : 200, '{}');
      });
    });
    await new Promise<void>((r) => this.server.listen(port, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  private put(path: string, o: Record<string, unknown>): void {
    const before = this.objects.get(path);
    if (before && typeof before.seq === 'number' && typeof o.seq === 'number' && o.seq < before.seq) this.backwards.push({ path, stored: before.seq, incoming: o.seq });
    this.objects.set(path, o);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
