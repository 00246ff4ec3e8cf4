/**
 * A real paginated HTTP API for the HTTP source's tests (node:http on an ephemeral port), backed by an
 * in-memory dataset the test mutates while the source lists it:
 *   GET /cursor   {data: {items: […]}, next_cursor}    keyset cursor (?cursor=<last id>, ?limit=)
 *   GET /page     {results: […]}                       ?page=1.. &per_page=
 *   GET /offset   {results: […]}                       ?offset= &limit=
 *   GET /link     […] + Link: <…>; rel="next"          ?p= (page number, 25 a page)
 *   GET /versions {items, next}                         ?since_version= (version ≥ it), ?after=<version>, 10 a page
 *   GET /events   {data: {items: […]}, next_cursor}    ?updated_since=<ISO> (updated_at ≥ it), ordered
 *                                                       by (updated_at, id), cursor "<updated_at>|<id>"
 * Items are ordered by id. Every request is recorded (time, path, query, headers); `fault` can answer
 * a request instead (429 with Retry-After, 500); requests without the expected Authorization are 401.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Item { id: number; name: string; price: number; updated_at: string }
export interface Event { id: number; kind: string; payload: string; updated_at: string }

export interface Request { at: number; path: string; query: URLSearchParams; headers: IncomingMessage['headers']; status: number }

export class TestApi {
  readonly items = new Map<number, Record<string, unknown>>();
  readonly events = new Map<number, Event>();
  readonly requests: Request[] = [];
  /** Expected Authorization header (null: none checked). */
  auth: string | null = null;
  fault: (n: number, path: string) => { status: number; headers?: Record<string, string> } | null = () => null;
  private server!: Server;
  port = 0;

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const u = new URL(req.url!, 'http://x');
      const n = this.requests.length;
      const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
        this.requests.push({ at: Date.now(), path: u.pathname, query: u.searchParams, headers: req.headers, status });
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(JSON.stringify(body));
      };
      if (this.auth !== null && req.headers.authorization !== this.auth) return send(401, { error: 'unauthorized' });
      const f = this.fault(n, u.pathname);
      if (f) return send(f.status, { error: `fault ${f.status}` }, f.headers);
      const q = u.searchParams;
      const items = [...this.items.entries()].sort((a, b) => a[0] - b[0]).map((e) => e[1]);
      switch (u.pathname) {
        case '/cursor': {
          const limit = Number(q.get('limit') ?? 25);
          const after = q.has('cursor') ? Number(q.get('cursor')) : -Infinity;
          const page = items.filter((i) => (i.id as number) > after).slice(0, limit);
          return send(200, { data: { items: page }, next_cursor: page.length === limit ? String(page[page.length - 1]!.id) : null });
        }
        case '/page': {
          const size = Number(q.get('per_page') ?? 25);
          const p = Number(q.get('page') ?? 1);
          return send(200, { results: items.slice((p - 1) * size, p * size) });
        }
        case '/offset': {
          const off = Number(q.get('offset') ?? 0);
          return send(200, { results: items.slice(off, off + Number(q.get('limit') ?? 25)) });
        }
        case '/link': {
          const p = Number(q.get('p') ?? 0);
          const page = items.slice(p * 25, p * 25 + 25);
          const headers: Record<string, string> = page.length === 25 ? { link: `</link?p=${p + 1}>; rel="next", </link?p=0>; rel="first"` } : {};
          return send(200, page, headers);
        }
        case '/versions': {
          // Items with a `version` field: ?since_version= (version ≥ it), ordered by version, ?after=<version> keyset.
          const since = q.has('since_version') ? Number(q.get('since_version')) : -Infinity;
          const after = q.has('after') ? Number(q.get('after')) : -Infinity;
          const all = items.filter((i) => (i.version as number) >= since && (i.version as number) > after).sort((a, b) => (a.version as number) - (b.version as number));
          const page = all.slice(0, 10);
          return send(200, { items: page, next: page.length === 10 ? page[9]!.version : null });
        }
        case '/events': {
          const limit = Number(q.get('limit') ?? 25);
          const since = q.get('updated_since');
          const [cTs, cId] = q.has('cursor') ? q.get('cursor')!.split('|') : ['', ''];
          const all = [...this.events.values()]
            .filter((e) => since === null || Date.parse(e.updated_at) >= Date.parse(since))
            .sort((a, b) => (a.updated_at < b.updated_at ? -1 : a.updated_at > b.updated_at ? 1 : a.id - b.id))
            .filter((e) => !q.has('cursor') || e.updated_at > cTs! || (e.updated_at === cTs && e.id > Number(cId)));
          const page = all.slice(0, limit);
          const last = page[page.length - 1];
          return send(200, { data: { items: page }, next_cursor: page.length === limit ? `${last!.updated_at}|${last!.id}` : null });
        }
      }
      return send(404, { error: `no ${u.pathname}` });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The most requests answered within any one second (a sliding window over the recorded times). */
  maxPerSecond(): number {
    const t = this.requests.map((r) => r.at).sort((a, b) => a - b);
    let best = 0;
    for (let i = 0, j = 0; i < t.length; i++) {
      while (t[i]! - t[j]! >= 1000) j++;
      best = Math.max(best, i - j + 1);
    }
    return best;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
