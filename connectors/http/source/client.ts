/**
 * The HTTP source's requests: GET with the configured auth (secrets read from the environment once,
 * at construction, and never logged or put in a message), a token-bucket rate limit that every
 * attempt (retries too) goes through, a timeout per request, and the retry policy:
 *  - 429, 408, 5xx, network errors, timeouts and a 2xx body that is not JSON: retriable, with the
 *    server's Retry-After instead of the backoff (src/core/retry.ts);
 *  - 401/403: fatal (credentials or rights), naming the URL and the auth kind;
 *  - any other 4xx: fatal (a listing the API refuses cannot be dead-lettered record by record),
 *    naming the URL with the first KB of the body.
 * Owned by one HttpSource; one request at a time.
 */
import type { Logger } from 'pino';
import { errorMessage, fatal, retriable, SynclineError } from '../../../src/core/errors.js';
import { RetryExhausted, withRetry } from '../../../src/core/retry.js';
import { parseJsonExact } from '../../../src/core/json-exact.js';
import { classifyResponse, classifyTransport } from '../errors.js';
import type { HttpSourceConfig } from './spec.js';

export interface Page {
  body: unknown;
  link: string | null;
}

/** Auth headers from the environment; a variable not set is fatal, naming it (not its value). */
export function authHeaders(auth: HttpSourceConfig['auth'], env: NodeJS.ProcessEnv, pipeline: string): Record<string, string> {
  const need = (name: string): string => {
    const v = env[name];
    if (v === undefined || v === '') throw fatal('HTTP_AUTH_ENV', `pipeline ${pipeline}: source.auth needs the environment variable ${name}, which is not set`);
    return v;
  };
  if (!auth) return {};
  if (auth.bearer) return { authorization: `Bearer ${need(auth.bearer.env)}` };
  if (auth.basic) return { authorization: `Basic ${Buffer.from(`${need(auth.basic.userEnv)}:${need(auth.basic.passwordEnv)}`).toString('base64')}` };
  if (auth.header) return { [auth.header.name.toLowerCase()]: need(auth.header.env) };
  return {};
}

/** Token bucket: `rate` tokens a second, at most `burst` saved up. `take()` resolves when a request may go. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(private readonly rate: number, private readonly burst: number, private readonly now: () => number = Date.now) {
    this.tokens = burst;
    this.last = now();
  }

  /** Milliseconds to wait before the next request (0: go now; the token is taken). */
  reserve(): number {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.rate) * 1000);
  }

  async take(): Promise<void> {
    const wait = this.reserve();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
}

export class HttpSourceClient {
  private readonly headers: Record<string, string>;
  private readonly bucket?: TokenBucket;
  /** Requests sent (every attempt), retries, and how long Retry-After made us wait. */
  readonly stats = { requests: 0, retries: 0, retryAfterMs: 0 };

  constructor(private readonly c: HttpSourceConfig, private readonly pipeline: string, private readonly log: Logger, env: NodeJS.ProcessEnv = process.env) {
    this.headers = { accept: 'application/json', ...Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v])), ...authHeaders(c.auth, env, pipeline) };
    if (c.rateLimit) this.bucket = new TokenBucket(c.rateLimit.requestsPerSecond, c.rateLimit.burst);
  }

  /** GET `url` as JSON, retried by the policy; throws classified errors. */
  async get(url: string, what: string): Promise<Page> {
    const cfg = { ...this.c.retry, multiplier: 2, jitter: 0.2 };
    try {
      const out = await withRetry(cfg, () => this.once(url, what), {
        onRetry: (err, attempt, delayMs) => {
          this.stats.retries++;
          if ((err as SynclineError).retryAfterMs !== undefined) this.stats.retryAfterMs += delayMs;
          this.log.warn({ url, attempt, delayMs, code: (err as SynclineError).code, err: errorMessage(err) }, 'http.source.retry');
        },
      });
      return out.value;
    } catch (err) {
      if (err instanceof RetryExhausted) {
        const last = err.last instanceof SynclineError ? err.last : retriable('HTTP_FAILED', errorMessage(err.last), err.last);
        throw retriable(last.code, `${last.message} (gave up after ${err.attempts} attempts)`, last);
      }
      throw err;
    }
  }

  private async once(url: string, what: string): Promise<Page> {
    await this.bucket?.take();
    this.stats.requests++;
    const context = `pipeline ${this.pipeline}: HTTP source GET ${url} (${what})`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, { headers: this.headers, signal: AbortSignal.timeout(this.c.timeoutMs), redirect: 'follow' });
      text = await res.text();
    } catch (err) {
      throw classifyTransport(err, context);
    }
    if (res.status < 200 || res.status >= 300) {
      const e = classifyResponse(res.status, context, res.headers.get('retry-after'), text);
      if (e.kind === 'fatal') {
        e.message = e.message.replace('check target.headers', 'check source.auth');
        throw e;
      }
      // Another 4xx: the listing cannot go on past a page the API refuses.
      if (e.kind === 'poison') throw fatal(e.code, `${e.message} (the API refuses this listing request: check source.endpoints' url, params and pagination)`);
      throw e;
    }
    try {
      return { body: text === '' ? null : parseJsonExact(text), link: res.headers.get('link') };
    } catch (err) {
      throw retriable('HTTP_BAD_JSON', `${context}: HTTP ${res.status} with a body that is not JSON (${errorMessage(err)}): ${text.slice(0, 1024)}`);
    }
  }
}
