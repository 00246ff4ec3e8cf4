/**
 * Dependencies that are not ready yet: Kafka, the schema registry, Redis, a PostgreSQL server.
 *
 * A retriable error of a dependency while a stage starts (or restarts) is waited for, not fatal:
 * the stage tries again with the retry policy's delays until the start deadline (config
 * startTimeoutMs). `DependencyWaits` keeps what is awaited so that the log says it once per
 * dependency and outage: one `dependency.waiting` line at warn naming what is awaited and the first
 * error, the repeats at debug, and one `dependency.ready` line at info once it answers.
 * Owner: one per Runtime (or per KafkaClient used alone); nothing is persisted.
 *
 * The decisions are pure functions here (which dependency an error concerns, which kafkajs log
 * lines are an expected transient state, how a start deadline is reported); the waiting itself is
 * the Runtime's (untilReady, its stage supervisor).
 */
import type { Logger } from 'pino';
import { errorCode, errorMessage, networkCode, SynclineError, errorKind } from './errors.js';

export type DependencyKind = 'kafka' | 'registry' | 'redis' | 'postgres' | 'other';

/** What is awaited: a kind and how the log names it ("Kafka at 127.0.0.1:9092 (kafka.brokers)"). */
export interface Dependency {
  kind: DependencyKind;
  /** One line per key: a PostgreSQL server per address, the others per kind. */
  key: string;
  name: string;
  /** Error codes of this system start with it (a connector's classified errors: `MARIADB_`), so errors that do not name the server are still its. */
  codePrefix?: string;
}

/** The addresses of the configured dependencies, for the log lines. */
export interface DependencyAddresses {
  kafka: string[];
  registry: string;
  redis: string;
  /** How messages name the Redis (core/redis.ts redisWhere: a single server or a cluster); default from `redis`. */
  redisName?: string;
  /** The system a stage reads (capture: its source, from its connector's registration), for errors that do not name it. */
  source?: Dependency;
}

/** A PostgreSQL server as the log names it: `PostgreSQL at host:port/db (pipeline p source)`. */
export function postgresDependency(c: { host: string; port: number; database: string }, pipeline: string, role: 'source' | 'target'): Dependency {
  const at = `${c.host}:${c.port}/${c.database}`;
  return { kind: 'postgres', key: `postgres ${at}`, name: `PostgreSQL at ${at} (pipeline ${pipeline} ${role})` };
}

/** `host:port` of a URL, without credentials. */
export function urlAddress(url: string, defaultPort: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || defaultPort}`;
  } catch {
    return '(unparsable url)';
  }
}

/**
 * Which dependency a (classified) error is about, from its code and message; undefined when it is
 * not one of them (a bug, a bad record: not something to wait for).
 */
export function dependencyOf(err: unknown, addrs: DependencyAddresses): Dependency | undefined {
  const code = errorCode(err);
  const msg = errorMessage(err);
  const name = (err as { name?: unknown })?.name;
  const kafka = (): Dependency => ({ kind: 'kafka', key: 'kafka', name: `Kafka at ${addrs.kafka.join(',')} (kafka.brokers)` });
  if (code.startsWith('REGISTRY_')) return { kind: 'registry', key: 'registry', name: `schema registry at ${addrs.registry} (schemaRegistry.url)` };
  if (code.startsWith('REDIS_') || /\bRedis\b/.test(msg) || name === 'MaxRetriesPerRequestError') {
    return { kind: 'redis', key: 'redis', name: addrs.redisName ?? `Redis at ${urlAddress(addrs.redis, '6379')} (redis.url)` };
  }
  if (code.startsWith('PG_') || /\bPostgreSQL\b/.test(msg)) {
    // "… cannot connect to PostgreSQL user@host:port/db: …", "pipeline p target: …"
    const at = /PostgreSQL (?:[^\s@]+@)?([^\s/:]+:\d+\/[^\s:]+)/.exec(msg)?.[1];
    if (!at && addrs.source?.kind === 'postgres') return addrs.source;
    const role = /pipeline (\S+) (capture|target|source)/.exec(msg);
    const what = role ? ` (pipeline ${role[1]} ${role[2] === 'target' ? 'target' : 'source'})` : '';
    return { kind: 'postgres', key: `postgres ${at ?? role?.[0] ?? ''}`, name: `PostgreSQL${at ? ` at ${at}` : ''}${what}` };
  }
  if (code.startsWith('KAFKA_') || (typeof name === 'string' && name.startsWith('KafkaJS')) || /\bKafka\b/.test(msg)) return kafka();
  if (addrs.source?.codePrefix && code.startsWith(addrs.source.codePrefix)) return addrs.source;
  return undefined;
}

/**
 * Whether an error is a dependency not being ready, to be waited for: a retriable error
 * (SynclineError kind retriable) or a Node network error; never fatal or poison ones.
 */
export function awaitable(err: unknown): boolean {
  const kind = errorKind(err);
  if (kind === 'retriable') return true;
  if (kind !== 'unknown') return false;
  return networkCode(err) !== undefined;
}

/**
 * What a kafkajs log line at level ERROR means (it logs every failed request at that level):
 *  - 'transient': an expected moment of a working cluster that the caller waits for itself
 *    (metadata of a topic just created not propagated yet, a leader election, a concurrent
 *    creation of the same topic, a rebalance): not worth a line above debug;
 *  - 'unavailable': Kafka is not ready (no connection, the group coordinator not available or
 *    loading, a request timing out): one warning per outage (DependencyWaits);
 *  - 'other': logged at warn as it is.
 */
export function kafkaLogKind(message: string, error?: string): 'transient' | 'unavailable' | 'other' {
  const text = `${message} ${error ?? ''}`;
  if (/does not host this topic-partition|concurrent operation on the same transaction|no leader for this topic-partition|not the leader for that topic-partition|Topic creation errors|topic already exists|rebalanc|leader epoch|high watermark has not caught up|fetch session|Restarting the consumer/i.test(text)) return 'transient';
  // A batch failing on another dependency ends in a consumer crash logged by kafkajs: not Kafka's.
  if (/\b(Redis|registry|PostgreSQL)\b|\b(REDIS|REGISTRY|PG)_/.test(text)) return 'other';
  // A certificate that does not verify is no outage: said as it is (the error that follows is fatal).
  if (/certificate|wrong version number|SASL .*authentication failed/i.test(text)) return 'other';
  if (/coordinator (is )?(not available|loading)|not the correct coordinator|Connection (error|timeout|closed)|Closed connection|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|Failed to connect|Broker not connected|not connected|timed out|disconnected before a response|NumberOfRetriesExceeded|fewer in-sync replicas|not the correct controller|Metadata not loaded/i.test(text)) return 'unavailable';
  return 'other';
}

/**
 * The error that ends a start when the deadline passed: the last error of the dependency, its code
 * and message kept (they name the dependency and address), with the deadline said; or, when no
 * attempt failed yet (a peer that accepted the connection and never answered, a client still
 * retrying inside), START_TIMEOUT naming what was starting and what it was waiting for.
 */
export function startDeadlineError(last: unknown, timeoutMs: number, what: string, awaited: string[] = []): SynclineError {
  const s = timeoutMs / 1000;
  if (last === undefined) {
    const why = awaited.length > 0 ? `${what} still waiting for ${awaited.join(', ')}` : `${what} did not answer`;
    return new SynclineError('retriable', 'START_TIMEOUT', `start did not complete within ${s}s (startTimeoutMs): ${why}`);
  }
  return new SynclineError('retriable', errorCode(last), `${errorMessage(last)} (still failing at the start deadline, ${s}s after the start: startTimeoutMs)`, last);
}

interface Outage {
  since: number;
  what: string;
}

export class DependencyWaits {
  private readonly outages = new Map<string, Outage & { dep: Dependency }>();
  /**
   * While a start is under way (hold() … release()), a dependency that answered one stage may not
   * be ready for the next (Kafka takes topics before its group coordinator is up): its end is said
   * at release(), and a new failure meanwhile is the same outage, not a second warning.
   */
  private holding = false;
  private readonly answered = new Set<string>();

  constructor(private readonly log: Logger, private readonly now: () => number = Date.now) {}

  /**
   * `dep` did not answer (err): warn the first time of an outage, naming what is awaited and by
   * whom (`what`: "pipeline orders-sync capture", "the Kafka client"); debug afterwards.
   */
  waiting(dep: Dependency, err: unknown, what: string): void {
    this.answered.delete(dep.key);
    const known = this.outages.get(dep.key);
    if (known) {
      this.log.debug({ dependency: dep.kind, err: errorMessage(err), for: what }, `dependency.waiting: still waiting for ${dep.name}`);
      return;
    }
    this.outages.set(dep.key, { since: this.now(), what, dep });
    this.log.warn(
      { dependency: dep.kind, awaited: dep.name, for: what, err: errorMessage(err), code: errorCode(err) },
      `dependency.waiting: ${dep.name} is not ready yet; ${what} waits for it and retries (until the start deadline): ${errorMessage(err)}`,
    );
  }

  /** `dep` answered: info once if it was awaited (during a start: at release()). */
  ready(dep: Dependency | string): void {
    const key = typeof dep === 'string' ? dep : dep.key;
    const o = this.outages.get(key);
    if (!o) return;
    if (this.holding) {
      this.answered.add(key);
      return;
    }
    this.outages.delete(key);
    const s = ((this.now() - o.since) / 1000).toFixed(1);
    this.log.info({ dependency: o.dep.kind, awaited: o.dep.name, waitedS: Number(s) }, `dependency.ready: ${o.dep.name} is there (waited ${s} s)`);
  }

  /** A start begins: ends of waits are said when it is done (release). */
  hold(): void {
    this.holding = true;
  }

  /** The start is done (every stage running): say which dependencies answered. */
  release(): void {
    if (!this.holding) return;
    this.holding = false;
    for (const key of [...this.answered]) this.ready(key);
    this.answered.clear();
  }

  isWaiting(key: string): boolean {
    return this.outages.has(key);
  }

  /** What is awaited now, for a start-deadline message. */
  awaited(): string[] {
    return [...this.outages.values()].filter((o) => !this.answered.has(o.dep.key)).map((o) => o.dep.name);
  }
}
