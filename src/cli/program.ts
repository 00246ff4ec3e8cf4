/**
 * The `syncline` command line's commands (commander), defined without being run: src/cli/main.ts
 * parses the process's arguments with it; the README test reads every documented form's help from it.
 */
import { Command, InvalidArgumentError } from 'commander';
import { loadConfig } from '../core/config/load.js';
import { rootLogger } from '../core/log.js';
import { Runtime, type Stage } from '../runtime.js';
import { configValidate } from './config-validate.js';
import { status } from './status.js';
import { alertsExport } from './alerts-export.js';
import { report } from './report.js';
import { errorCode, errorMessage, fatal, networkCode, redisRefusal, retriable, SynclineError, withDeadline } from '../core/errors.js';
import type { SynclineConfig } from '../core/config/schema.js';
import { dlqCommands } from './dlq.js';
import { replayCommand } from './replay.js';
import { initCommand } from './init.js';
import { doctorCommand } from './doctor.js';
import { pipelineCommands } from './pipeline-drop.js';
import { backfillCommand } from './backfill.js';
import { verifyCommand } from './verify.js';
import { schemaCommands } from './schema.js';
import { syncCommands } from './sync.js';
import { auditCommands } from './audit.js';
import { historyCommands } from './history.js';
import { rollbackCommands } from './rollback.js';
import { authCommands } from './auth.js';
import { withApiOptions } from './api-client.js';
import { isCluster, redisWhere } from '../core/redis.js';

const DEFAULT_CONFIG = process.env.SYNCLINE_CONFIG ?? 'configs/data-sync-config.yaml';

async function runStages(stages: Stage[], opts: { config: string; pipeline?: string[]; metricsPort?: number; metricsHost?: string }): Promise<void> {
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

export const program = new Command();
program.name('syncline').description('PostgreSQL → Kafka → targets change-data-capture and sync').version('0.1.0');

const collect = (v: string, prev: string[] = []) => [...prev, v];
const parsePort = (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('a TCP port 0-65535');
  return n;
};

for (const [cmd, stages, desc] of [
  ['start', ['capture', 'process', 'sink'], 'run every stage of the pipelines in one process'],
  ['capture', ['capture'], 'run only capture: PostgreSQL → Kafka change topics'],
  ['process', ['process'], 'run only the processor: change topics → decode, map, hash → <prefix>.apply.<pipeline>'],
  ['sink', ['sink'], 'run only the sink writer: <prefix>.apply.<pipeline> → version state, conflicts → targets'],
] as const) {
  program
    .command(cmd)
    .description(desc)
    .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
    .option('-p, --pipeline <name>', 'only this pipeline (repeatable)', collect)
    .option('--metrics-port <port>', 'serve /metrics, /health, /ready on this port (overrides observability.port; enables them)', parsePort)
    .option('--metrics-host <host>', 'address for /metrics, /health, /ready (overrides observability.host; enables them)')
    .action(async (opts: { config: string; pipeline?: string[]; metricsPort?: number; metricsHost?: string }) => {
      await runStages([...stages], opts);
    });
}

withApiOptions(program
  .command('status')
  .description("a running syncline's readiness (every dependency) and health; without one, checks the config's dependencies from here. Exit 0 when ready, 1 when not")
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('--url <url>', 'base URL of the running instance (default: from the config\'s observability section, else http://127.0.0.1:9464)'))
  .action(async (opts: { config: string; url?: string; token?: string; ca?: string; cert?: string; key?: string }) => {
    const code = await status(opts);
    // Clients of unreachable services may keep retrying in the background: do not wait for them.
    process.stdout.write('', () => process.exit(code));
  });

withApiOptions(program
  .command('report')
  .description("write the report files (sync-status.json, history.jsonl, sync-report.md) from a running syncline's /metrics and /health; without one, re-render sync-report.md from the files there")
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('--url <url>', 'base URL of the running instance (default: from the config\'s observability section, else http://127.0.0.1:9464)')
  .option('--dir <dir>', 'report directory (default: the config\'s reports.dir, else reports)'))
  .action(async (opts: { config: string; url?: string; dir?: string; token?: string; ca?: string; cert?: string; key?: string }) => {
    const code = await report(opts);
    process.stdout.write('', () => process.exit(code));
  });

const configCmd = program.command('config').description('config tools');
configCmd
  .command('validate')
  .argument('[file]', `config file (default ${DEFAULT_CONFIG})`)
  .option('-c, --config <file>', 'config file, as with every other command (the same as FILE)')
  .description('validate a config file; prints each problem with file and line')
  .action(async (file: string | undefined, opts: { config?: string }, cmd: Command) => {
    if (file !== undefined && opts.config !== undefined && file !== opts.config) cmd.error(`error: two config files given: ${file} and --config ${opts.config}; give one`, { exitCode: 2 });
    process.exitCode = await configValidate(file ?? opts.config ?? DEFAULT_CONFIG);
  });

program
  .command('alerts')
  .description('alerting tools')
  .command('export')
  .description("write the config's alert rules as Prometheus alerting rules (promtool check rules accepts them)")
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('-o, --out <file>', 'rules file to write', 'prometheus/alerts.yml')
  .option('--check', 'do not write: exit 1 when the file is not what would be written (CI)')
  .action(async (opts: { config: string; out: string; check?: boolean }) => {
    const r = await alertsExport(opts);
    (r.code === 0 ? process.stdout : process.stderr).write(`${r.message}\n`);
    process.exitCode = r.code;
  });

dlqCommands(program, DEFAULT_CONFIG);
replayCommand(program, DEFAULT_CONFIG);
initCommand(program);
doctorCommand(program, DEFAULT_CONFIG);
pipelineCommands(program, DEFAULT_CONFIG);
backfillCommand(program, DEFAULT_CONFIG);
verifyCommand(program, DEFAULT_CONFIG);
syncCommands(program, DEFAULT_CONFIG);
schemaCommands(program, DEFAULT_CONFIG);
auditCommands(program, DEFAULT_CONFIG);
historyCommands(program, DEFAULT_CONFIG);
rollbackCommands(program, DEFAULT_CONFIG);
authCommands(program);

/** Commands that end when their work is done (client libraries may keep timers alive after close). */
export const ONE_SHOT = new Set(['dlq', 'replay', 'sync', 'schema', 'audit', 'history', 'rollback']);
