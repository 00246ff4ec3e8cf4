/**
 * `syncline start|capture|process|sink`: the runtime with the config's pipelines (or some), stopped by
 * SIGTERM/SIGINT, reloaded by SIGHUP. Loaded by ./program.ts when one of those commands runs.
 */
import { loadConfig } from '../core/config/load.js';
import { rootLogger } from '../core/log.js';
import { Runtime, type Stage } from '../runtime.js';
import { errorMessage, fatal, networkCode, redisRefusal, retriable, SynclineError, withDeadline } from '../core/errors.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { isCluster, redisWhere } from '../core/redis.js';

export async function runStages(stages: Stage[], opts: { config: string; pipeline?: string[]; metricsPort?: number; metricsHost?: string }): Promise<void> {
  const load = () => {
    const config = loadConfig(opts.config);
    if (opts.metricsPort !== undefined || opts.metricsHost !== undefined) {
      const o = config.observability;
      config.observability = {
        enabled: true,
        checkTimeoutMs: o?.checkTimeoutMs ?? 3000,
        host: opts.metricsHost ?? o?.host ?? '127.0.0.1',
        port: opts.metricsPort ?? o?.port ?? 9464,
      };
    }
    return config;
  };
  const config = load();
  const runtime = new Runtime(config, new Set(stages), opts.pipeline);
  let signals = 0;
  let stopping: Promise<void> | undefined;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) process.exit(130);
    rootLogger.info({ signal: sig }, 'signal.received: draining');
    stopping = runtime.stop().catch((err: unknown) => rootLogger.error({ err: errorMessage(err) }, 'runtime.stop.failed'));
  };
  // SIGHUP: reload the config file (src/reload.ts); a refused one is logged and the running config stays.
  runtime.reloadSource = load;
  process.on('SIGHUP', () => {
    rootLogger.info({ config: opts.config }, 'signal.received: SIGHUP, reloading the config');
    Promise.resolve().then(() => runtime.reload(runtime.readConfigForReload('signal:SIGHUP'), 'signal:SIGHUP'))
      .then((r) => rootLogger.info(r, 'runtime.reloaded'))
      .catch((err: unknown) => rootLogger.error({ err: errorMessage(err) }, 'runtime.reload.refused: the running config stays'));
  });
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  let redisError: Error | undefined;
  runtime.redis.on('error', (err: Error) => (redisError = err));
  if (isCluster(runtime.redis)) runtime.redis.on('node error', (err: Error) => (redisError = err));
  const startMs = runtime.startTimeoutMs;
  try {
    // Bounded: a dependency that accepts connections but never answers must not hold the start
    // forever. The runtime's own waits end at the same deadline with the dependency's last error;
    // this one, a moment later, catches a start step that hangs without one.
    const { done } = await withDeadline(runtime.start(), startMs + START_GRACE_MS, () => startTimeout(runtime, config, stages, startMs));
    rootLogger.info({ pipelines: runtime.pipelines.map((p) => p.name), stages }, 'syncline.started');
    await done;
    // The stages end before the stop is over (clients closed, the final report written): wait for all of it.
    await stopping;
    // Drained and closed. Some client libraries keep timers alive after close; do not hang on them.
    setTimeout(() => process.exit(process.exitCode ?? 0), 100).unref();
  } catch (err) {
    const described = attribute(err, config, runtime, redisError); // before stop() changes the clients' state
    await Promise.race([runtime.stop().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000).unref())]);
    throw described;
  }
}


/** After the start deadline (config startTimeoutMs), how long before a start that hangs is ended. */
const START_GRACE_MS = 2_000;


/** The user of a Redis URL ('default' when it names none, as Redis does). */
function redisUser(url: string): string {
  try {
    return decodeURIComponent(new URL(url).username) || 'default';
  } catch {
    return 'default';
  }
}

function startTimeout(runtime: Runtime, config: SynclineConfig, stages: Stage[], ms: number): SynclineError {
  const redis = runtime.redis.status;
  if (stages.includes('sink') && redis !== 'ready') {
    const why = redis === 'connect' ? 'accepted the connection but did not answer' : `is not reachable (${redis})`;
    return retriable('REDIS_TIMEOUT', `start did not complete within ${ms / 1000}s: ${redisWhere(config.redis)} ${why}`);
  }
  const awaited = runtime.waits.awaited();
  const what = awaited.length > 0 ? `waiting for ${awaited.join(', ')}` : `PostgreSQL sources/targets, Kafka ${config.kafka.brokers.join(',')}, registry ${config.schemaRegistry.url}: see the warnings above`;
  return retriable('START_TIMEOUT', `start did not complete within ${ms / 1000}s (${what})`);
}

/**
 * Errors that client libraries raise without saying whose they are ("Broker not connected",
 * "Connection is closed.") get the dependency and its address; ours (SynclineError) already say it.
 */
function attribute(err: unknown, config: SynclineConfig, runtime: Runtime, redisError?: Error): unknown {
  if (err instanceof SynclineError || !(err instanceof Error)) return err;
  const net = networkCode(err);
  if (err.name.startsWith('KafkaJS') || /[\\/]kafkajs[\\/]/.test(err.stack ?? '')) {
    const code = net ? `NET_${net}` : /connect|timeout|timed out/i.test(err.message) ? 'KAFKA_UNAVAILABLE' : 'KAFKA_ERROR';
    return retriable(code, `Kafka at ${config.kafka.brokers.join(',')} (kafka.brokers): ${err.message}`, err);
  }
  const fromRedis = err.name === 'MaxRetriesPerRequestError' || /[\\/]ioredis[\\/]/.test(err.stack ?? '');
  // Refused credentials or rights: no retry makes them right (ioredis reports "Connection is closed." and the reply as an error event).
  const auth = fromRedis ? redisRefusal(redisError ?? err) : null;
  if (auth) return fatal(`REDIS_${auth[0]}`, `cannot authenticate to ${redisWhere(config.redis).replace(/ \([^)]*\)$/, '')} as ${config.redis.username ?? redisUser(config.redis.url)} (${config.redis.username !== undefined ? 'redis.username' : 'redis.url'}): ${auth[1]}`, err);
  if (fromRedis && runtime.redis.status !== 'ready') {
    const why = redisError && redisError.message !== err.message ? `${err.message} (${redisError.message})` : err.message;
    const code = networkCode(redisError) ?? net;
    return retriable(code ? `NET_${code}` : 'REDIS_UNAVAILABLE', `cannot connect to ${redisWhere(config.redis)}: ${why}`, err);
  }
  return err;
}
