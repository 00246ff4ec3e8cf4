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
 * Lua scripts, MULTI and MGET stay legal in a cluster; see docs/adr/0035-redis-cluster.md):
 *   <keyPrefix>:{<pipeline>}:v:<table>:<keyString>   per key    e.g. syncline:{orders}:v:public.users:[7]
 *   <keyPrefix>:{<pipeline>}:t:<table>               table truncate watermark
 *   <keyPrefix>:{<pipeline>}:tb:<table>:<pos>        set: consumer partitions that reached the truncate at <pos> (truncateBarrier)
 *   <keyPrefix>:{<pipeline>}:tc:<table>:<pos>        who runs that truncate (a claim with a lease), 'done' once it ran
 *   <keyPrefix>:{<pipeline>}:r:<table>:<keyString>   last-synced row (tagged JSON, see sink/apply-topic.ts),
 *                                                    kept for tables whose conflicts show or merge it (manual, custom)
 *   <keyPrefix>:{<pipeline>}:p:<table>:<keyString>   id of the dead letter this key is parked behind (manual conflicts)
 *   <keyPrefix>:{<pipeline>}:p!                      set once the parking index was rebuilt from the dead-letter
 *                                                    topic (missing after a Redis flush: rebuild it)
 *   <keyPrefix>:{<pipeline>}:cols                    hash: column-set signature → JSON list of column names
 *   <keyPrefix>:{<pipeline>}:i:<topic>:<partition>   hash: write intents of the batch of that consumer partition being
 *                                                    written (see intend()); deleted once its state is committed
 * Value: a compact string '<pos>|<ts>|<hash>', e.g. '000000000001a2b3c8:00000002|1795608000123|9f2c…'
 * (<pos> from core/envelope position(): fixed width, compared as a plain string; <hash> is 'D' for a
 * deleted row and last so it may contain anything).
 */
import { createHash } from 'node:crypto';
import { scanKeys, type RedisClient } from '../core/redis.js';
import type { Decided, Row } from '../core/envelope.js';
import { classifyRedisError, fatal, SynclineError } from '../core/errors.js';
import { parseTagged, stringifyTagged } from '../core/tagged-json.js';

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

/** What else getMany reads in its one MGET, per table. */
export interface ReadOptions {
  /** Read the parking entry of keys of these tables (and the parking-index marker). */
  parked?: (table: string) => boolean;
  /** Read the last-synced row of keys of these tables. */
  rows?: (table: string) => boolean;
  /** Called with whether the parking index marker exists (only when some key was read with `parked`). */
  onIndex?: (built: boolean) => void;
  /** Filled per item (same order): the dead-letter id the key is parked behind, and its last-synced row (null: none, or not read). */
  out?: { parked: (string | null)[]; rows: (Row | null)[] };
}

export interface VersionKey {
  table: string;
  /** keyString(key) from src/sink/sink.ts. */
  key: string;
}

/** What a target write about to commit will make the state (see VersionState.intend). */
export interface Intent {
  commits: VersionCommit[];
  /** Column sets of the commits' hashes (signature → names). */
  sigs: Record<string, string[]>;
}

export interface VersionCommit extends VersionKey {
  pos: string;
  hash: string;
  /** Last-synced row to keep (tables with manual/custom conflicts); null deletes it; undefined leaves it. */
  row?: Row | null;
  /** The key's columns → values (write intents: to read the target row back). */
  keyRow?: Row;
  /**
   * Two-way (write intents): the target row was kept by a conflict and is to be re-published for
   * the peer, over what (see Sink.republish). A process killed after the target commit settles the
   * state from the intent and re-publishes these rows, which the batch's redelivery no longer would.
   */
  republish?: Decided;
}

const POSITION_RE = /^[0-9a-f]{16}:[0-9a-f]{8}$/;
/** A state hash written into JSON as it is. */
const PLAIN_HASH = /^[0-9a-zA-Z:]*$/;

/**
 * For item i (KEYS[2i-1] version key, KEYS[2i] row key; ARGV[3i-1] pos, ARGV[3i] hash, ARGV[3i+1] row
 * mode): write pos|now|hash only when the key is missing or its stored pos is lower, and then the row
 * ('-' leave it, 'x' delete it, '=' followed by the row's JSON: set it). Positions are validated
 * fixed-width lower-case hex, so string comparison is commit order. Returns the number of keys written.
 */
const COMMIT_SCRIPT = `
local now = ARGV[1]
local written = 0
for i = 1, #KEYS / 2 do
  local vkey = KEYS[2 * i - 1]
  local pos = ARGV[3 * i - 1]
  local cur = redis.call('GET', vkey)
  local curPos = nil
  if cur then
    local bar = string.find(cur, '|', 1, true)
    if bar then curPos = string.sub(cur, 1, bar - 1) else curPos = cur end
  end
  if (not curPos) or pos > curPos then
    redis.call('SET', vkey, pos .. '|' .. now .. '|' .. ARGV[3 * i])
    local mode = string.sub(ARGV[3 * i + 1], 1, 1)
    if mode == '=' then redis.call('SET', KEYS[2 * i], string.sub(ARGV[3 * i + 1], 2))
    elseif mode == 'x' then redis.call('DEL', KEYS[2 * i]) end
    written = written + 1
  end
end
return written
`;
const COMMIT_SHA = createHash('sha1').update(COMMIT_SCRIPT).digest('hex');

/**
 * The same without last-synced rows (the usual case: tables whose strategy keeps none), and cheaper
 * per key: KEYS[i] version key, ARGV[i] the whole new value 'pos|ts|hash'. Positions are fixed width
 * (25 characters), so the stored one is the value's first 25 characters.
 */
const COMMIT_PLAIN_SCRIPT = `
local written = 0
for i = 1, #KEYS do
  local v = ARGV[i]
  local cur = redis.call('GET', KEYS[i])
  if (not cur) or string.sub(v, 1, 25) > string.sub(cur, 1, 25) then
    redis.call('SET', KEYS[i], v)
    written = written + 1
  end
end
return written
`;
const COMMIT_PLAIN_SHA = createHash('sha1').update(COMMIT_PLAIN_SCRIPT).digest('hex');

/** KEYS: version keys; 'pos|ts|hash' becomes 'pos|ts|' (the hash unknown). Returns how many were changed. */
const FORGET_SCRIPT = `
local n = 0
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  if cur then
    local a = string.find(cur, '|', 1, true)
    local b = a and string.find(cur, '|', a + 1, true)
    if b then redis.call('SET', KEYS[i], string.sub(cur, 1, b)) else redis.call('SET', KEYS[i], cur .. '|0|') end
    n = n + 1
  end
end
return n
`;

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
export const globEscape = (s: string) => s.replace(/[*?[\]\\]/g, (c) => '\\' + c);

/** See VersionState.truncateBarrier. KEYS: watermark, arrivals set, claim. ARGV: pos, from, n, token, leaseMs, arrive. */
const TRUNCATE_BARRIER_SCRIPT = `
local w = redis.call('GET', KEYS[1])
if w then
  local bar = string.find(w, '|', 1, true)
  local wpos = bar and string.sub(w, 1, bar - 1) or w
  if wpos >= ARGV[1] then return {'done', 0} end
end
local c = redis.call('GET', KEYS[3])
if c == 'done' then return {'done', 0} end
if ARGV[6] == '1' then
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], 604800)
end
local have = redis.call('SCARD', KEYS[2])
if have < tonumber(ARGV[3]) then return {'wait', have} end
if ARGV[6] ~= '1' then
  if c then return {'wait', have} end
  return {'claimable', have}
end
if not c then
  redis.call('SET', KEYS[3], ARGV[4], 'PX', ARGV[5])
  return {'run', have}
end
if c == ARGV[4] then
  redis.call('PEXPIRE', KEYS[3], ARGV[5])
  return {'run', have}
end
return {'wait', have}
`;

/** See VersionState.truncateClaim. KEYS: claim. ARGV: token, action, leaseMs. */
const TRUNCATE_CLAIM_SCRIPT = `
local c = redis.call('GET', KEYS[1])
if ARGV[2] == 'done' then
  redis.call('SET', KEYS[1], 'done', 'EX', 604800)
  return 1
end
if c ~= ARGV[1] then return 0 end
if ARGV[2] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('DEL', KEYS[1])
end
return 1
`;

export class VersionState {
  private readonly base: string;
  private readonly colCache = new Map<string, string[]>();

  constructor(
    private readonly redis: RedisClient,
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

  rowKeyOf(table: string, key: string): string {
    return `${this.base}r:${table}:${key}`;
  }

  parkKeyOf(table: string, key: string): string {
    return `${this.base}p:${table}:${key}`;
  }

  private get indexKey(): string {
    return `${this.base}p!`;
  }

  /**
   * States of these keys, in order (null = nothing known). One MGET (one round trip) that also reads
   * each table's truncate watermark; a watermark newer than the key's entry is reported as a
   * deleted entry at the watermark position with truncated = true.
   */
  async getMany(items: VersionKey[], opts: ReadOptions = {}): Promise<(VersionEntry | null)[]> {
    if (items.length === 0) return [];
    const tables = [...new Set(items.map((i) => i.table))];
    const keys = [...items.map((i) => this.keyOf(i.table, i.key)), ...tables.map((t) => this.truncateKeyOf(t))];
    // Extra keys (parking entries, last-synced rows, the parking-index marker) ride in the same MGET.
    const extra: { i: number; kind: 'parked' | 'row'; at: number }[] = [];
    items.forEach((it, i) => {
      if (opts.parked?.(it.table)) extra.push({ i, kind: 'parked', at: keys.push(this.parkKeyOf(it.table, it.key)) - 1 });
      if (opts.rows?.(it.table)) extra.push({ i, kind: 'row', at: keys.push(this.rowKeyOf(it.table, it.key)) - 1 });
    });
    const markerAt = extra.some((e) => e.kind === 'parked') ? keys.push(this.indexKey) - 1 : -1;
    let values: (string | null)[];
    try {
      values = await this.redis.mget(keys);
    } catch (err) {
      throw this.wrap(err, `version state: MGET of ${items.length} keys`);
    }
    const marks = new Map<string, Parsed | null>();
    tables.forEach((t, i) => marks.set(t, parseValue(values[items.length + i] ?? null)));
    const out: (VersionEntry | null)[] = items.map((item, i) => {
      const own = parseValue(values[i] ?? null);
      const mark = marks.get(item.table) ?? null;
      if (mark && (!own || mark.pos > own.pos)) return { pos: mark.pos, hash: DELETED, ts: mark.ts, truncated: true };
      return own ? { pos: own.pos, hash: own.hash, ts: own.ts, truncated: false } : null;
    });
    if (opts.out) {
      opts.out.parked = items.map(() => null);
      opts.out.rows = items.map(() => null);
      for (const e of extra) {
        const v = values[e.at] ?? null;
        if (v === null) continue;
        if (e.kind === 'parked') opts.out.parked[e.i] = v;
        else if (!out[e.i]?.truncated) opts.out.rows[e.i] = parseTagged(v) as Row;
      }
    }
    if (markerAt >= 0) opts.onIndex?.(values[markerAt] !== null);
    return out;
  }

  /** Park a key behind dead letter `id` (kept if the key is already parked). Returns the id it is parked behind. */
  async park(table: string, key: string, id: string): Promise<string> {
    try {
      const r = await this.redis.set(this.parkKeyOf(table, key), id, 'NX', 'GET');
      return r ?? id;
    } catch (err) {
      throw this.wrap(err, `version state: park ${table} ${key}`);
    }
  }

  /** Park a key behind dead letter `id`, replacing what it was parked behind. */
  async setParked(table: string, key: string, id: string): Promise<void> {
    try {
      await this.redis.set(this.parkKeyOf(table, key), id);
    } catch (err) {
      throw this.wrap(err, `version state: park ${table} ${key}`);
    }
  }

  /** Release a parked key. */
  async unpark(table: string, key: string): Promise<void> {
    try {
      await this.redis.del(this.parkKeyOf(table, key));
    } catch (err) {
      throw this.wrap(err, `version state: unpark ${table} ${key}`);
    }
  }

  /** Replace the parking index (after a Redis flush): these keys are parked, then the marker is set. */
  async rebuildParking(parked: { table: string; key: string; id: string }[]): Promise<void> {
    try {
      const m = this.redis.multi();
      for (const p of parked) m.set(this.parkKeyOf(p.table, p.key), p.id, 'NX');
      m.set(this.indexKey, String(Date.now()));
      await m.exec();
    } catch (err) {
      throw this.wrap(err, 'version state: rebuild of the parking index');
    }
  }

  private intentKeyOf(consumer: string): string {
    return `${this.base}i:${consumer}`;
  }

  /**
   * Write-ahead for a target transaction about to commit: what commitMany will record once it has.
   * A process killed between the target's commit and commitMany leaves the intent behind; the next
   * process reads it (intents()) before it applies that consumer partition again, checks each entry
   * against the target and commits those the target holds, so a redelivery of the batch meets
   * current state instead of writing changes the target has moved past. `consumer`: the consumer
   * topic and partition ('<topic>:<partition>'); `slot`: which write of the batch (several when keys
   * are retried one by one). Kept 7 days at most.
   */
  async intend(consumer: string, slot: string, intent: Intent): Promise<void> {
    const k = this.intentKeyOf(consumer);
    // Built by hand (a batch's worth of entries, on the hot path): [table, keyString, pos, hash, flags]
    // (flags: 1 keeps its last-synced row, 2 re-published over a delete, 4 re-published over an update),
    // and the key columns of each table, to turn a keyString back into a key row.
    const keyColumns: Record<string, string[]> = {};
    let s = '{"c":[';
    // A batch has one or a few tables: each one's JSON once. Hashes ('D', '', '<sig>:<sha1>') need no escaping.
    let lastTable = '';
    let tableJson = '""';
    for (let i = 0; i < intent.commits.length; i++) {
      const c = intent.commits[i]!;
      if (c.keyRow && !keyColumns[c.table]) keyColumns[c.table] = Object.keys(c.keyRow);
      if (c.table !== lastTable) tableJson = JSON.stringify((lastTable = c.table));
      const hash = PLAIN_HASH.test(c.hash) ? '"' + c.hash + '"' : JSON.stringify(c.hash);
      const flags = (c.row === undefined ? 0 : 1) | (c.republish === 'delete' ? 2 : c.republish === 'update' ? 4 : 0);
      s += (i ? ',[' : '[') + tableJson + ',' + JSON.stringify(c.key) + ',"' + c.pos + '",' + hash + ',' + flags + ']';
    }
    s += '],"k":' + JSON.stringify(keyColumns) + ',"s":' + JSON.stringify(intent.sigs) + '}';
    try {
      await this.redis.multi().hset(k, slot, s).expire(k, 7 * 86400).exec();
    } catch (err) {
      throw this.wrap(err, `version state: write intent of ${intent.commits.length} keys`);
    }
  }

  /** The intents left for a consumer partition (see intend()); `row: null` on commits whose last-synced row is kept. */
  async intents(consumer: string): Promise<Intent[]> {
    let all: Record<string, string>;
    try {
      all = await this.redis.hgetall(this.intentKeyOf(consumer));
    } catch (err) {
      throw this.wrap(err, `version state: write intents of ${consumer}`);
    }
    return Object.values(all).map((v) => {
      const o = JSON.parse(v) as { c: [string, string, string, string, number][]; k: Record<string, string[]>; s: Record<string, string[]> };
      return {
        commits: o.c.map(([table, key, pos, hash, flags]) => {
          const values = JSON.parse(key) as unknown[];
          const cols = o.k[table];
          // Scalar keys only (a bytea key's string does not give its value back): others stay without keyRow.
          const keyRow = cols && cols.length === values.length && values.every((x) => x === null || typeof x !== 'object') ? (Object.fromEntries(cols.map((c, i) => [c, values[i]])) as Row) : undefined;
          const republish: Decided | undefined = flags & 2 ? 'delete' : flags & 4 ? 'update' : undefined;
          return { table, key, pos, hash, ...(flags & 1 ? { row: null } : {}), ...(keyRow ? { keyRow } : {}), ...(republish ? { republish } : {}) };
        }),
        sigs: o.s,
      };
    });
  }

  /** Forget a consumer partition's intents (its state is committed). */
  async clearIntents(consumer: string): Promise<void> {
    try {
      await this.redis.del(this.intentKeyOf(consumer));
    } catch (err) {
      throw this.wrap(err, `version state: clear write intents of ${consumer}`);
    }
  }

  /** Column names of a column-set signature (see columnSig), cached in the process. */
  async columnsOf(sig: string): Promise<string[] | null> {
    const hit = this.colCache.get(sig);
    if (hit) return hit;
    let v: string | null;
    try {
      v = await this.redis.hget(`${this.base}cols`, sig);
    } catch (err) {
      throw this.wrap(err, 'version state: column set lookup');
    }
    if (v === null) return null;
    const cols = JSON.parse(v) as string[];
    this.colCache.set(sig, cols);
    return cols;
  }

  /** Remember the column names of a signature (once per process and signature). */
  async registerColumns(sig: string, cols: string[]): Promise<void> {
    if (this.colCache.has(sig)) return;
    try {
      await this.redis.hsetnx(`${this.base}cols`, sig, JSON.stringify(cols));
    } catch (err) {
      throw this.wrap(err, 'version state: column set registration');
    }
    this.colCache.set(sig, cols);
  }

  /**
   * Record that the target now holds `hash` ('D' for deleted) at `pos` for each key. One EVALSHA;
   * per key atomically, a write happens only if `pos` is greater than the stored position, so state
   * never moves backwards. Several items for one key are applied in array order.
   */
  async commitMany(items: VersionCommit[]): Promise<void> {
    if (items.length === 0) return;
    if (items.every((it) => it.row === undefined)) {
      const now = '|' + String(Date.now()) + '|';
      const values = items.map((it) => {
        checkPosition(it.pos);
        return it.pos + now + it.hash;
      });
      await this.runCommit(items.map((it) => this.keyOf(it.table, it.key)), values, `version state: commit of ${items.length} keys`, COMMIT_PLAIN_SCRIPT, COMMIT_PLAIN_SHA);
      return;
    }
    const keys: string[] = [];
    const args: string[] = [String(Date.now())];
    for (const it of items) {
      checkPosition(it.pos);
      keys.push(this.keyOf(it.table, it.key), this.rowKeyOf(it.table, it.key));
      args.push(it.pos, it.hash, it.row === undefined ? '-' : it.row === null ? 'x' : '=' + stringifyTagged(it.row));
    }
    await this.runCommit(keys, args, `version state: commit of ${items.length} keys`);
  }

  /** Record a table-level truncate at `pos` (never moves backwards); every key of the table at a lower position reads as deleted. */
  async truncateTable(table: string, pos: string): Promise<void> {
    checkPosition(pos);
    await this.runCommit([this.truncateKeyOf(table), this.truncateKeyOf(table) + ':r'], [String(Date.now()), pos, DELETED, '-'], `version state: truncate of ${table}`);
  }

  /** Position of the table's last truncate (its watermark), or null. */
  async truncatedAt(table: string): Promise<string | null> {
    try {
      return parseValue(await this.redis.get(this.truncateKeyOf(table)))?.pos ?? null;
    } catch (err) {
      throw this.wrap(err, `version state: truncate watermark of ${table}`);
    }
  }

  /**
   * The truncate barrier (see Applier.truncate): a truncate's copy reached consumer partition `from`
   * of `n`. 'done': the truncate at `pos` (or a later one) ran, or was settled otherwise (its write
   * dead-lettered): skip this copy. 'run': every partition reached it and this caller (`token`)
   * holds the claim to run it (a lease of `leaseMs`, renewed by truncateClaim('renew') while it runs).
   * 'wait': partitions are still applying changes older than the truncate, or another process runs it.
   * With `arrive` false nothing is recorded and 'run' reads 'claimable' (every partition arrived and
   * nobody holds the claim: a waiter fetches its copy again and claims it).
   */
  async truncateBarrier(table: string, pos: string, from: string, n: number, token: string, leaseMs: number, arrive = true): Promise<{ verdict: 'done' | 'run' | 'wait' | 'claimable'; arrived: number }> {
    checkPosition(pos);
    try {
      const r = (await this.redis.eval(TRUNCATE_BARRIER_SCRIPT, 3, this.truncateKeyOf(table), `${this.base}tb:${table}:${pos}`, `${this.base}tc:${table}:${pos}`, pos, from, String(n), token, String(leaseMs), arrive ? '1' : '0')) as [string, number];
      return { verdict: r[0] as 'done' | 'run' | 'wait' | 'claimable', arrived: Number(r[1]) };
    } catch (err) {
      throw this.wrap(err, `version state: truncate barrier of ${table}`);
    }
  }

  /** Renew the claim of a truncate (false: this token no longer holds it), or end it: 'done' (kept 7 days) once it ran, or 'release' (deleted) for another to run it. */
  async truncateClaim(table: string, pos: string, token: string, action: 'renew' | 'done' | 'release', leaseMs = 0): Promise<boolean> {
    try {
      const r = await this.redis.eval(TRUNCATE_CLAIM_SCRIPT, 1, `${this.base}tc:${table}:${pos}`, token, action, String(leaseMs));
      return r === 1;
    } catch (err) {
      throw this.wrap(err, `version state: truncate claim of ${table}`);
    }
  }

  /**
   * Record that the end-of-snapshot marker at `pos` for `table` arrived by way of `from` (a
   * partition, or change-topic/apply-topic partitions); returns by how many distinct ways it has (a
   * set per marker, kept 7 days; redeliveries count once).
   */
  async markSnapshotEnd(table: string, pos: string, from: string): Promise<number> {
    const k = `${this.base}s:${table}:${pos}`;
    try {
      const r = await this.redis.multi().sadd(k, from).expire(k, 7 * 86400).scard(k).exec();
      return Number(r?.[2]?.[1] ?? 0);
    } catch (err) {
      throw this.wrap(err, `version state: snapshot end of ${table}`);
    }
  }

  /**
   * Keys of `table` whose state is older than `cutoff` and not deleted — by a delete, or by a truncate
   * after their last change (SCAN: proportional to the pipeline's keys).
   */
  async keysBefore(table: string, cutoff: string): Promise<string[]> {
    const prefix = `${this.base}v:${table}:`;
    const out: string[] = [];
    const truncated = await this.truncatedAt(table);
    try {
      await scanKeys(this.redis, globEscape(prefix) + '*', async (keys) => {
        const values = await this.redis.mget(keys);
        keys.forEach((k, i) => {
          const v = parseValue(values[i] ?? null);
          if (v && v.pos < cutoff && v.hash !== DELETED && (truncated === null || v.pos > truncated)) out.push(k.slice(prefix.length));
        });
      });
    } catch (err) {
      throw this.wrap(err, `version state: keys of ${table}`);
    }
    return out;
  }

  /**
   * Forget what the target is known to hold for these keys (`syncline verify --repair`): the stored
   * hash becomes '' (unknown) and the position stays, so the next change of the key is written
   * whatever its content (a repair row equal to what syncline last wrote would otherwise be skipped
   * as unchanged) and an older redelivery is still stale. Keys without state are left alone.
   * Returns how many were forgotten.
   */
  async forget(table: string, keys: string[]): Promise<number> {
    if (keys.length === 0) return 0;
    try {
      const n = await this.redis.eval(FORGET_SCRIPT, keys.length, ...keys.map((k) => this.keyOf(table, k)));
      return Number(n);
    } catch (err) {
      throw this.wrap(err, `version state: forget ${keys.length} keys of ${table}`);
    }
  }

  /** Delete every key of this pipeline (SCAN + UNLINK). For tests and resets. */
  async clear(): Promise<number> {
    let n = 0;
    try {
      // All keys of the pipeline share its hash tag: one slot, so one UNLINK per batch even on a cluster.
      await scanKeys(this.redis, globEscape(this.base) + '*', async (keys) => {
        n += await this.redis.unlink(...keys);
      });
    } catch (err) {
      throw this.wrap(err, `version state: clear of pipeline ${this.pipeline}`);
    }
    return n;
  }

  /** EVALSHA, falling back to EVAL (which also caches the script) when Redis lost it (restart, SCRIPT FLUSH). */
  private async runCommit(keys: string[], args: string[], context: string, script = COMMIT_SCRIPT, sha = COMMIT_SHA): Promise<void> {
    try {
      try {
        await this.redis.evalsha(sha, keys.length, ...keys, ...args);
      } catch (err) {
        if (!/NOSCRIPT/.test((err as Error)?.message ?? '')) throw err;
        await this.redis.eval(script, keys.length, ...keys, ...args);
      }
    } catch (err) {
      throw this.wrap(err, context);
    }
  }

  private wrap(err: unknown, context: string): SynclineError {
    return classifyRedisError(err, context);
  }
}

function checkPosition(pos: string): void {
  if (!POSITION_RE.test(pos)) throw fatal('BAD_POSITION', `invalid commit position '${pos}' (expected 16 hex digits ':' 8 hex digits, see core/envelope position())`);
}
