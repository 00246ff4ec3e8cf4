/**
 * Per-key version state in Redis: for every target key of a pipeline, the commit position of the
 * last change whose effect the target durably holds, and the content hash of what it holds.
 * The processor reads it (getMany) to make redelivered or older changes no-ops and to skip changes
 * whose content the target already holds; it writes it (commitMany) only after the target write
 * committed ("synced means applied").
 *
 * Owner: one VersionState per pipeline in the processor; the Redis client is the caller's.
 * Buffers: nothing; every call is one round trip. Crash/replay: commitMany is a compare-and-set
 * that never moves a key backwards, so replaying a batch, or committing out of order, is harmless.
 * Losing Redis is survivable: a missing entry reads as null (unknown), and the caller falls back to
 * reading the target.
 *
 * Keys (all keys of a pipeline share one hash tag, hence one Redis Cluster slot, so the multi-key
 * Lua script and MGET stay legal in a cluster):
 *   <keyPrefix>:{<pipeline>}:v:<table>:<keyString>   per key    e.g. syncline:{orders}:v:public.users:[7]
 *   <keyPrefix>:{<pipeline>}:t:<table>               table truncate watermark
 * Value: a compact string '<pos>|<ts>|<hash>', e.g. '000000000001a2b3c8:00000002|1795608000123|9f2c…'
 * (<pos> from core/envelope position(): fixed width, compared as a plain string; <hash> is 'D' for a
 * deleted row and last so it may contain anything).
 */
import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { classifyNetworkError, fatal, SynclineError } from '../core/errors.js';

/** Hash value recorded for a deleted (or truncated) row. */
export const DELETED = 'D';

export interface VersionEntry {
  /** Effective commit position: max(key position, table truncate watermark). */
  pos: string;
  /** Content hash of what the target holds, or 'D' when the row is deleted/truncated. */
  hash: string;
  /** When the entry was written (ms since the epoch). */
  ts: number;
  /** True when the table's truncate watermark is newer than the key's own entry (hash is then 'D'). */
  truncated: boolean;
}

export interface VersionKey {
  table: string;
  /** keyString(key) from src/sink/sink.ts. */
  key: string;
}

export interface VersionCommit extends VersionKey {
  pos: string;
  hash: string;
}

const POSITION_RE = /^[0-9a-f]{16}:[0-9a-f]{8}$/;

/**
 * For each KEYS[i]: write ARGV[2i] .. '|' .. ARGV[1] .. '|' .. ARGV[2i+1] (pos|ts|hash) only when
 * the key is missing or its stored pos is lower. Positions are validated fixed-width lower-case hex,
 * so string comparison is commit order. Returns the number of keys written.
 */
const COMMIT_SCRIPT = `
local now = ARGV[1]
local written = 0
for i = 1, #KEYS do
  local pos = ARGV[2 * i]
  local cur = redis.call('GET', KEYS[i])
  local curPos = nil
  if cur then
    local bar = string.find(cur, '|', 1, true)
    if bar then curPos = string.sub(cur, 1, bar - 1) else curPos = cur end
  end
  if (not curPos) or pos > curPos then
    redis.call('SET', KEYS[i], pos .. '|' .. now .. '|' .. ARGV[2 * i + 1])
    written = written + 1
  end
end
return written
`;
const COMMIT_SHA = createHash('sha1').update(COMMIT_SCRIPT).digest('hex');

interface Parsed {
  pos: string;
  ts: number;
  hash: string;
}

function parseValue(v: string | null): Parsed | null {
  if (v === null) return null;
  const a = v.indexOf('|');
  const b = a < 0 ? -1 : v.indexOf('|', a + 1);
  if (a < 0 || b < 0) return { pos: a < 0 ? v : v.slice(0, a), ts: 0, hash: '' };
  return { pos: v.slice(0, a), ts: Number(v.slice(a + 1, b)), hash: v.slice(b + 1) };
}

/** Escape Redis glob metacharacters. */
const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, (c) => '\\' + c);

export class VersionState {
  private readonly base: string;

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
    readonly pipeline: string,
  ) {
    if (/[{}]/.test(keyPrefix) || /[{}]/.test(pipeline)) throw new Error(`key prefix and pipeline name must not contain '{' or '}' (got '${keyPrefix}', '${pipeline}')`);
    this.base = `${keyPrefix}:{${pipeline}}:`;
  }

  keyOf(table: string, key: string): string {
    return `${this.base}v:${table}:${key}`;
  }

  truncateKeyOf(table: string): string {
    return `${this.base}t:${table}`;
  }

  /**
   * States of these keys, in order (null = nothing known). One MGET (one round trip) that also reads
   * each table's truncate watermark; a watermark newer than the key's entry is reported as a
   * deleted entry at the watermark position with truncated = true.
   */
  async getMany(items: VersionKey[]): Promise<(VersionEntry | null)[]> {
    if (items.length === 0) return [];
    const tables = [...new Set(items.map((i) => i.table))];
    const keys = [...items.map((i) => this.keyOf(i.table, i.key)), ...tables.map((t) => this.truncateKeyOf(t))];
    let values: (string | null)[];
    try {
      values = await this.redis.mget(keys);
    } catch (err) {
      throw this.wrap(err, `version state: MGET of ${items.length} keys`);
    }
    const marks = new Map<string, Parsed | null>();
    tables.forEach((t, i) => marks.set(t, parseValue(values[items.length + i] ?? null)));
    return items.map((item, i) => {
      const own = parseValue(values[i] ?? null);
      const mark = marks.get(item.table) ?? null;
      if (mark && (!own || mark.pos > own.pos)) return { pos: mark.pos, hash: DELETED, ts: mark.ts, truncated: true };
      return own ? { pos: own.pos, hash: own.hash, ts: own.ts, truncated: false } : null;
    });
  }

  /**
   * Record that the target now holds `hash` ('D' for deleted) at `pos` for each key. One EVALSHA;
   * per key atomically, a write happens only if `pos` is greater than the stored position, so state
   * never moves backwards. Several items for one key are applied in array order.
   */
  async commitMany(items: VersionCommit[]): Promise<void> {
    if (items.length === 0) return;
    const keys: string[] = [];
    const args: string[] = [String(Date.now())];
    for (const it of items) {
      checkPosition(it.pos);
      keys.push(this.keyOf(it.table, it.key));
      args.push(it.pos, it.hash);
    }
    await this.runCommit(keys, args, `version state: commit of ${items.length} keys`);
  }

  /** Record a table-level truncate at `pos` (never moves backwards); every key of the table at a lower position reads as deleted. */
  async truncateTable(table: string, pos: string): Promise<void> {
    checkPosition(pos);
    await this.runCommit([this.truncateKeyOf(table)], [String(Date.now()), pos, DELETED], `version state: truncate of ${table}`);
  }

  /** Delete every key of this pipeline (SCAN + UNLINK). For tests and resets. */
  async clear(): Promise<number> {
    let cursor = '0';
    let n = 0;
    try {
      do {
        const [next, keys] = await this.redis.scan(cursor, 'MATCH', globEscape(this.base) + '*', 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) n += await this.redis.unlink(...keys);
      } while (cursor !== '0');
    } catch (err) {
      throw this.wrap(err, `version state: clear of pipeline ${this.pipeline}`);
    }
    return n;
  }

  /** EVALSHA, falling back to EVAL (which also caches the script) when Redis lost it (restart, SCRIPT FLUSH). */
  private async runCommit(keys: string[], args: string[], context: string): Promise<void> {
    try {
      try {
        await this.redis.evalsha(COMMIT_SHA, keys.length, ...keys, ...args);
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err;
        await this.redis.eval(COMMIT_SCRIPT, keys.length, ...keys, ...args);
      }
    } catch (err) {
      throw this.wrap(err, context);
    }
  }

  private wrap(err: unknown, context: string): SynclineError {
    const e = classifyNetworkError(err, context);
    // classifyNetworkError keeps any code; make the Redis origin visible in it.
    return e.code.startsWith('NET_') || e.code.startsWith('REDIS_') ? e : new SynclineError('retriable', `REDIS_${e.code}`, e.message, err);
  }
}

function checkPosition(pos: string): void {
  if (!POSITION_RE.test(pos)) throw fatal('BAD_POSITION', `invalid commit position '${pos}' (expected 16 hex digits ':' 8 hex digits, see core/envelope position())`);
}
