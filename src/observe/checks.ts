/**
 * Readiness: every dependency a process needs, checked in parallel, each with a timeout.
 *   kafka             admin describeCluster
 *   registry          GET <schemaRegistry.url>/subjects
 *   redis             PING (a cluster: and CLUSTER INFO: state ok, all 16384 slots served) (when the process runs a sink)
 *   source:<pipeline> SourceMonitor.ping()        (when it runs capture; PostgreSQL: select 1)
 *   target:<pipeline> Sink.ping()                 (when it runs a sink)
 * GET /ready, `syncline status` and syncline_dependency_up all use one DependencyChecks. It keeps,
 * per dependency, the result of the last check and the last error ever seen (with its time), so
 * after a recovery the report still says what went wrong. Concurrent runs share one round of checks.
 *
 *   {"ready":false,"checks":{"kafka":{"ok":true,"latencyMs":3,"lastError":null,"checkedAt":"…"},
 *     "target:orders-sync":{"ok":false,"latencyMs":12,"lastError":"postgres sink 127.0.0.1:5432/shop: ping: Connection terminated unexpectedly","lastErrorAt":"…","checkedAt":"…"}}}
 */
import { clusterHealth, isCluster, type RedisClient } from '../core/redis.js';
import type { Logger } from 'pino';
import type { SourceMonitor } from '../capture/source.js';
import { errorMessage } from '../core/errors.js';
import type { KafkaClient } from '../core/kafka.js';
import type { Sink } from '../sink/sink.js';
import { withTimeout } from './metrics.js';
import { registryAccess, type RegistryConnection } from '../core/registry-http.js';

export interface CheckResult {
  ok: boolean;
  /** Duration of the last check (the timeout when it timed out); null before the first check. */
  latencyMs: number | null;
  /** The last error seen, kept after the dependency recovers (see lastErrorAt). */
  lastError: string | null;
  lastErrorAt: string | null;
  /** When the last check ended (ISO time). */
  checkedAt: string | null;
}

export interface ReadyReport {
  ready: boolean;
  checks: Record<string, CheckResult>;
}

/**
 * A probe resolves when the dependency answers, rejects with the reason otherwise. It may time
 * itself out within `timeoutMs` to give a better reason; DependencyChecks stops waiting a little
 * after that in any case.
 */
export type Probe = (timeoutMs: number) => Promise<unknown>;

export class DependencyChecks {
  private readonly results = new Map<string, CheckResult>();
  private running?: Promise<ReadyReport>;
  private readonly pending = new Map<string, Promise<unknown>>();

  /**
   * `previous`: checks this one replaces (its results are carried over by name). `stopping`: true
   * once the process stops: a round still under way then meets clients being closed, not a
   * dependency that went down (said at debug).
   */
  constructor(private readonly probes: Map<string, Probe>, private readonly timeoutMs: number, private readonly log?: Logger, previous?: DependencyChecks, private readonly stopping: () => boolean = () => false) {
    for (const name of probes.keys()) {
      this.results.set(name, previous?.results.get(name) ?? { ok: false, latencyMs: null, lastError: null, lastErrorAt: null, checkedAt: null });
    }
  }

  get names(): string[] {
    return [...this.probes.keys()];
  }

  /** Check every dependency now (joins a round already under way). */
  run(): Promise<ReadyReport> {
    if (!this.running) {
      this.running = this.runAll().finally(() => {
        this.running = undefined;
      });
    }
    return this.running;
  }

  /** The results of the last round, without checking again. */
  last(): ReadyReport {
    return this.report();
  }

  private async runAll(): Promise<ReadyReport> {
    await Promise.all([...this.probes].map(([name, probe]) => this.check(name, probe)));
    return this.report();
  }

  private async check(name: string, probe: Probe): Promise<void> {
    const prev = this.results.get(name)!;
    const t0 = Date.now();
    let error: string | null = null;
    try {
      // A probe that is still hanging from an earlier round (a blackholed host) is waited on again
      // rather than started once more, so hanging connection attempts do not pile up.
      let pending = this.pending.get(name);
      if (!pending) {
        const p = probe(this.timeoutMs).finally(() => this.pending.delete(name));
        p.catch(() => undefined);
        this.pending.set(name, (pending = p));
      }
      const current = pending;
      await withTimeout(this.timeoutMs + 100, name, () => current);
    } catch (err) {
      error = errorMessage(err) || String(err);
    }
    const at = new Date().toISOString();
    const next: CheckResult = {
      ok: error === null,
      latencyMs: Date.now() - t0,
      lastError: error ?? prev.lastError,
      lastErrorAt: error !== null ? at : prev.lastErrorAt,
      checkedAt: at,
    };
    this.results.set(name, next);
    const wasUp = prev.checkedAt === null ? true : prev.ok;
    if (wasUp && !next.ok) {
      if (this.stopping()) this.log?.debug({ dependency: name, err: error }, 'ready.dependency.down (while stopping)');
      else this.log?.warn({ dependency: name, err: error }, 'ready.dependency.down');
    }
    else if (!wasUp && next.ok) this.log?.info({ dependency: name, latencyMs: next.latencyMs }, 'ready.dependency.up');
  }

  private report(): ReadyReport {
    const checks: Record<string, CheckResult> = {};
    for (const [name, r] of this.results) checks[name] = { ...r };
    return { ready: Object.values(checks).every((c) => c.ok), checks };
  }
}

/** Remembers a Redis client's last connection error (cleared when it is ready again), for readable probe failures. */
export function watchRedis(client: RedisClient): { client: RedisClient; lastError: () => string | null } {
  let last: string | null = null;
  const remember = (err: Error) => {
    last = err.message || (err as { code?: string }).code || String(err);
  };
  client.on('error', remember);
  if (isCluster(client)) client.on('node error', remember);
  client.on('ready', () => {
    last = null;
  });
  return { client, lastError: () => last };
}

export interface ProbeSources {
  kafka: KafkaClient;
  /** The config's schemaRegistry section (https CA, basic auth: ../core/registry-http.ts), or its URL. */
  registry: string | RegistryConnection;
  redis?: { client: RedisClient; lastError: () => string | null };
  sources: { pipeline: string; monitor: SourceMonitor }[];
  targets: { pipeline: string; sink: Sink }[];
}

/** The probes of a process's dependencies (see the list at the top). */
export function dependencyProbes(s: ProbeSources): Map<string, Probe> {
  const probes = new Map<string, Probe>();
  probes.set('kafka', async () => {
    const admin = await s.kafka.getAdmin();
    await admin.describeCluster();
  });
  const registry = registryAccess(s.registry);
  probes.set('registry', async (timeoutMs) => {
    const url = `${registry.url.replace(/\/+$/, '')}/subjects`;
    let res: Response;
    try {
      res = await registry.fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const cause = (err as { cause?: unknown }).cause;
      throw new Error(`GET ${url}: ${errorMessage(err)}${cause ? ` (${errorMessage(cause)})` : ''}`);
    }
    await res.arrayBuffer().catch(() => undefined);
    if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  });
  if (s.redis) {
    const { client, lastError } = s.redis;
    probes.set('redis', async (timeoutMs) => {
      try {
        await withTimeout(timeoutMs, 'PING', () => client.ping());
        if (isCluster(client)) {
          // A cluster answers PING on one node while slots are uncovered (a master down, its failover pending).
          const h = await withTimeout(timeoutMs, 'CLUSTER INFO', () => clusterHealth(client));
          if (!h.ok) throw new Error(`Redis Cluster not ok: ${h.detail}`);
        }
      } catch (err) {
        const conn = lastError();
        throw new Error(`redis: ${errorMessage(err)}${conn ? ` (connection: ${conn})` : ''}`);
      }
    });
  }
  for (const { pipeline, monitor } of s.sources) probes.set(`source:${pipeline}`, () => monitor.ping());
  for (const { pipeline, sink } of s.targets) probes.set(`target:${pipeline}`, () => sink.ping());
  return probes;
}
