/**
 * The one way syncline opens Redis: a single server (redis.url), a Redis Cluster
 * (redis.cluster.nodes, see docs/adr/0035-redis-cluster.md), or the master that Redis Sentinel names
 * (redis.sentinel). Each gives an ioredis client with the same commands; what differs is handled here:
 *   - where messages say the Redis is (`Redis at h:6379 (redis.url)` / `Redis Cluster at a,b,c (redis.cluster.nodes)`);
 *   - SCAN, which in a cluster must visit every master (scanKeys);
 *   - a cluster-aware health probe (clusterHealth: cluster_state, slots, masters).
 * Multi-key commands and Lua scripts stay legal in a cluster because every key of a pipeline carries
 * the hash tag {<pipeline>} (src/sink/version-state.ts).
 */
import { Cluster, Redis } from 'ioredis';
import { redisSecurity, type RedisConnection } from './tls.js';
import { fatal, SynclineError } from './errors.js';

export type RedisClient = Redis | Cluster;

export interface RedisSettings extends RedisConnection {
  /** redis.commandTimeoutMs: no command waits longer for its reply (queued while reconnecting included). */
  commandTimeoutMs?: number | undefined;
  cluster?: { nodes: string[] } | undefined;
  sentinel?: { nodes: string[]; name: string; password?: string } | undefined;
}

export interface RedisClientOptions {
  maxRetriesPerRequest: number;
  enableOfflineQueue?: boolean;
  /** No reconnection (one-shot CLI checks). */
  once?: boolean;
}

/** `host:port` of a Redis URL, without credentials (for messages naming the dependency). */
export function redisUrlAddress(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}`;
  } catch {
    return '(unparsable redis.url)';
  }
}

/** Where the configured Redis is, for messages: `Redis at h:p (redis.url)` or `Redis Cluster at a,b,c (redis.cluster.nodes)`. */
export function redisWhere(r: RedisSettings): string {
  if (r.sentinel) return `Redis master '${r.sentinel.name}' of the sentinels at ${r.sentinel.nodes.join(',')} (redis.sentinel)`;
  return r.cluster ? `Redis Cluster at ${r.cluster.nodes.join(',')} (redis.cluster.nodes)` : `Redis at ${redisUrlAddress(r.url)} (redis.url)`;
}

/** The config path to correct when the Redis cannot be reached. */
export function redisConfigPath(r: RedisSettings): string {
  return r.sentinel ? 'redis.sentinel' : r.cluster ? 'redis.cluster.nodes' : 'redis.url';
}

/** The user and password of redis.url (with cluster or sentinel it gives only those and the scheme). */
function credentialsOf(r: RedisSettings, path: string): { username?: string; password?: string } {
  try {
    const u = new URL(r.url);
    return { ...(u.username ? { username: decodeURIComponent(u.username) } : {}), ...(u.password ? { password: decodeURIComponent(u.password) } : {}) };
  } catch {
    throw fatal('CONFIG_REDIS', `redis.url '${r.url.replace(/\/\/[^@/]*@/, '//…@')}' is not a URL (with ${path} it gives the scheme, user and password: redis://user:password@ or rediss://…)`);
  }
}

export function isCluster(c: RedisClient): c is Cluster {
  return c instanceof Cluster;
}

function parseNode(n: string, i: number, path = 'redis.cluster.nodes'): { host: string; port: number } {
  const m = /^\[?([^\]\s]+?)\]?:(\d{1,5})$/.exec(n.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw fatal(path === 'redis.cluster.nodes' ? 'CONFIG_REDIS_CLUSTER' : 'CONFIG_REDIS_SENTINEL', `${path}[${i}]: '${n}' is not host:port (e.g. 10.0.0.5:7000)`);
  return { host: m[1]!, port };
}

/**
 * A client for the configured Redis, not yet connected (lazyConnect). For a cluster, redis.url's
 * scheme (rediss: TLS), user and password and redis.caFile/verify/username/password apply to every
 * node; its host and port are not used.
 */
export function createRedis(r: RedisSettings, o: RedisClientOptions): RedisClient {
  // TLS and credentials, and the bound on every command's reply (redis.commandTimeoutMs).
  const common = { ...redisSecurity(r, (msg) => process.emitWarning(msg, { code: 'SYNCLINE_TLS_UNVERIFIED' })), ...(r.commandTimeoutMs ? { commandTimeout: r.commandTimeoutMs } : {}) };
  if (r.sentinel) {
    // The sentinels name the master; after a failover ioredis asks them again and reconnects to the new one.
    return new Redis({
      sentinels: r.sentinel.nodes.map((n, i) => parseNode(n, i, 'redis.sentinel.nodes')),
      name: r.sentinel.name,
      ...(r.sentinel.password ? { sentinelPassword: r.sentinel.password } : {}),
      ...credentialsOf(r, 'redis.sentinel'),
      ...common,
      lazyConnect: true,
      maxRetriesPerRequest: o.maxRetriesPerRequest,
      ...(o.enableOfflineQueue !== undefined ? { enableOfflineQueue: o.enableOfflineQueue } : {}),
      ...(o.once ? { retryStrategy: () => null, sentinelRetryStrategy: () => null } : { sentinelRetryStrategy: (times: number) => Math.min(100 * times, 2000) }),
    });
  }
  if (!r.cluster) {
    return new Redis(r.url, { ...common, lazyConnect: true, maxRetriesPerRequest: o.maxRetriesPerRequest, ...(o.enableOfflineQueue !== undefined ? { enableOfflineQueue: o.enableOfflineQueue } : {}), ...(o.once ? { retryStrategy: () => null } : {}) });
  }
  const nodes = r.cluster.nodes.map((n, i) => parseNode(n, i));
  const fromUrl = credentialsOf(r, 'redis.cluster');
  return new Cluster(nodes, {
    lazyConnect: true,
    enableOfflineQueue: o.enableOfflineQueue ?? true,
    scaleReads: 'master',
    // A failover moves slots: MOVED/ASK are followed, CLUSTERDOWN and TRYAGAIN retried shortly.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    retryDelayOnTryAgain: 200,
    maxRedirections: 16,
    slotsRefreshTimeout: 2000,
    ...(o.once ? { clusterRetryStrategy: () => null } : { clusterRetryStrategy: (times: number) => Math.min(100 * times, 2000) }),
    redisOptions: { ...fromUrl, ...common, maxRetriesPerRequest: o.maxRetriesPerRequest, ...(o.once ? { retryStrategy: () => null } : {}) },
  });
}

/**
 * Every key matching `pattern` (SCAN ... MATCH), in batches given to `each`. On a cluster every
 * master is scanned (SCAN only sees the keys of the node it runs on); a batch holds keys of one node.
 */
export async function scanKeys(client: RedisClient, pattern: string, each: (keys: string[]) => Promise<void> | void): Promise<void> {
  const nodes: Redis[] = isCluster(client) ? client.nodes('master') : [client];
  if (isCluster(client) && nodes.length === 0) throw new SynclineError('retriable', 'REDIS_CLUSTER_NO_MASTER', 'Redis Cluster: no master node known (the slots are not loaded yet)');
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await each(keys);
    } while (cursor !== '0');
  }
}

/**
 * Delete keys that may lie in different slots: UNLINK in one command on a single server; on a
 * cluster one UNLINK per slot (a multi-key command must stay in one slot). Returns how many went.
 */
export async function unlinkKeys(client: RedisClient, keys: string[]): Promise<number> {
  if (keys.length === 0) return 0;
  if (!isCluster(client)) return client.unlink(...keys);
  const bySlot = new Map<number, string[]>();
  for (const k of keys) {
    const s = keySlot(k);
    const list = bySlot.get(s);
    if (list) list.push(k);
    else bySlot.set(s, [k]);
  }
  const n = await Promise.all([...bySlot.values()].map((ks) => client.unlink(...ks)));
  return n.reduce((a, b) => a + b, 0);
}

/** Health of a cluster as one node sees it: CLUSTER INFO's state and slots, and the masters/replicas known. */
export async function clusterHealth(client: Cluster): Promise<{ ok: boolean; detail: string }> {
  const info = String(await client.cluster('INFO'));
  const field = (name: string) => new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1] ?? '?';
  const state = field('cluster_state');
  const masters = client.nodes('master').length;
  const replicas = client.nodes('slave').length;
  const detail = `cluster_state:${state}, slots ok ${field('cluster_slots_ok')}/16384, ${masters} masters, ${replicas} replicas`;
  return { ok: state === 'ok' && field('cluster_slots_ok') === '16384', detail };
}

/** The Redis Cluster slot of a key (CRC16/XMODEM of its hash tag, or of the whole key, mod 16384). */
export function keySlot(key: string): number {
  const bytes = Buffer.from(key);
  let start = 0;
  let end = bytes.length;
  const open = bytes.indexOf(0x7b); // {
  if (open >= 0) {
    const close = bytes.indexOf(0x7d, open + 1); // }
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) {
    crc ^= bytes[i]! << 8;
    for (let b = 0; b < 8; b++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

/**
 * A single-server client pointed at a node of a Redis Cluster would meet MOVED on most keys: refuse
 * at start, saying what to configure. (Without the right to run INFO, the first MOVED says it.)
 */
export async function checkRedisMode(client: RedisClient, r: RedisSettings): Promise<void> {
  if (isCluster(client)) return;
  let info: string;
  try {
    info = await client.info('cluster');
  } catch {
    return;
  }
  if (/^cluster_enabled:1/m.test(info)) {
    throw fatal('REDIS_CLUSTER_MODE', `${redisWhere(r)} is a node of a Redis Cluster: list the cluster's nodes in redis.cluster.nodes (redis.url then gives only the scheme, user and password)`);
  }
}
