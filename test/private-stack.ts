/**
 * A private stack for tests that start a service late or from cold: scripts/stack.sh with a run dir
 * and ports of its own (SYNCLINE_RUN_DIR, SYNCLINE_KAFKA_PORT, SYNCLINE_REGISTRY_PORT,
 * SYNCLINE_REDIS_PORT, SYNCLINE_PG_PORT), so the shared stack everyone's tests use is never stopped
 * or reconfigured. The jars come from the cache the shared stack filled. `down()` stops what it
 * started and removes the run dir.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';

export type Service = 'postgres' | 'redis' | 'kafka' | 'registry' | 'mariadb';

export interface PrivateStack {
  dir: string;
  /** The ports of the services it starts (MariaDB only with tls: else the machine's own on 3306 is used). */
  ports: Record<Exclude<Service, 'mariadb'>, number> & { mariadb?: number };
  /** The variables that point scripts/stack.sh at this stack. */
  stackEnv: Record<string, string>;
  /** The variables that point syncline's example config (and the demo) at this stack. */
  configEnv: Record<string, string>;
  /** host:port of every Kafka node, comma-separated. */
  brokers: string;
  registryUrl: string;
  redisUrl: string;
  /** With `tls`: the SASL_SSL listener, the CA and certificates, the credentials (scripts/stack.sh, SYNCLINE_STACK_TLS). */
  tls?: StackTls;
  /** `scripts/stack.sh up SERVICE...`; resolves with its output. */
  up(...services: Service[]): Promise<string>;
  /** kill -9 of Kafka node i (kafkaNodes > 1); `up('kafka')` starts it again. */
  killKafkaNode(i: number): Promise<string>;
  down(): Promise<void>;
}

/** Whether a TCP port on 127.0.0.1 can be bound now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A free port whose next port is free too (Kafka's controller listens there), below the kernel's
 * range of ephemeral ports: those are handed to outgoing connections and to listen(0) at any
 * moment, and a JVM started half a minute later would find its port taken.
 */
async function freePorts(taken: Set<number>, count = 2): Promise<number> {
  let low = 32768;
  try {
    low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || low;
  } catch {
    /* not Linux: the usual default */
  }
  for (;;) {
    const p = Math.max(1024, low - 12000) + Math.floor(Math.random() * 11000);
    const range = Array.from({ length: count }, (_, i) => p + i);
    if (taken.has(p - 1) || range.some((x) => taken.has(x))) continue;
    let free = true;
    for (const x of range) if (!(free = await bindable(x))) break;
    if (free) {
      for (const x of range) taken.add(x);
      return p;
    }
  }
}

export function run(cmd: string, args: string[], env: Record<string, string>, timeoutMs = 600_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stderr}${stdout}`));
      else resolve(stderr + stdout);
    });
  });
}

export interface StackTls {
  /** host:port of Kafka's SASL_SSL listener (SCRAM-SHA-512). */
  brokers: string;
  kafkaPort: number;
  /** PEM files under the run dir's tls/. */
  caFile: string;
  otherCaFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** Read after `up` (the stack makes them). */
  kafkaUser(): string;
  kafkaPassword(): string;
  redisUser(): string;
  redisPassword(): string;
}

/**
 * `tls`: SYNCLINE_STACK_TLS=1 (Kafka SASL_SSL on a port of its own, Redis TLS-only with an ACL user, PostgreSQL ssl with plaintext refused, the registry HTTPS-only, a MariaDB of the run dir TLS-only).
 * `kafkaNodes`: Kafka as that many KRaft nodes (scripts/stack.sh --brokers N), node i on ports.kafka + 2(i-1); `brokers` lists them all.
 */
export async function privateStack(opts: { tls?: boolean; kafkaNodes?: number } = {}): Promise<PrivateStack> {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-stack-'));
  const taken = new Set<number>();
  const nodes = opts.kafkaNodes ?? 1;
  const ports = { kafka: await freePorts(taken, 2 * nodes), registry: await freePorts(taken), redis: await freePorts(taken), postgres: await freePorts(taken) };
  const kafkaTlsPort = opts.tls ? await freePorts(taken) : 0;
  // MariaDB of the run dir only with TLS (the shared one on 3306 cannot take certificates without a restart).
  const mariadbPort = opts.tls ? await freePorts(taken) : 3306;
  const allPorts = opts.tls ? { ...ports, mariadb: mariadbPort } : ports;
  const stackEnv: Record<string, string> = {
    ...(opts.tls ? { SYNCLINE_STACK_TLS: '1', SYNCLINE_KAFKA_TLS_PORT: String(kafkaTlsPort), SYNCLINE_MARIADB_PORT: String(mariadbPort) } : {}),
    SYNCLINE_RUN_DIR: dir,
    SYNCLINE_KAFKA_PORT: String(ports.kafka),
    SYNCLINE_REGISTRY_PORT: String(ports.registry),
    SYNCLINE_REDIS_PORT: String(ports.redis),
    SYNCLINE_PG_PORT: String(ports.postgres),
    ...(nodes > 1 ? { SYNCLINE_KAFKA_NODES: String(nodes) } : {}),
  };
  const brokers = Array.from({ length: nodes }, (_, i) => `127.0.0.1:${ports.kafka + 2 * i}`).join(',');
  const registryUrl = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${ports.registry}/apis/ccompat/v7`;
  const redisUrl = `${opts.tls ? 'rediss' : 'redis'}://127.0.0.1:${ports.redis}`;
  const t = join(dir, 'tls');
  const read = (f: string) => () => readFileSync(join(t, f), 'utf8').trim();
  const tls: StackTls | undefined = opts.tls
    ? {
        brokers: `127.0.0.1:${kafkaTlsPort}`, kafkaPort: kafkaTlsPort,
        caFile: join(t, 'ca.crt'), otherCaFile: join(t, 'other-ca.crt'), serverCert: join(t, 'server.crt'), serverKey: join(t, 'server.key'),
        clientCert: join(t, 'client.crt'), clientKey: join(t, 'client.key'),
        kafkaUser: read('kafka.user'), kafkaPassword: read('kafka.password'), redisUser: read('redis.user'), redisPassword: read('redis.password'),
      }
    : undefined;
  const stack = (...args: string[]) => run('bash', [join(ROOT, 'scripts/stack.sh'), ...args], stackEnv);
  return {
    dir, ports: allPorts, stackEnv, brokers, registryUrl, redisUrl, ...(tls ? { tls } : {}),
    configEnv: {
      SYNCLINE_KAFKA_BROKERS: brokers, SYNCLINE_SCHEMA_REGISTRY_URL: registryUrl, SYNCLINE_REDIS_URL: redisUrl,
      SYNCLINE_SOURCE_PORT: String(ports.postgres), SYNCLINE_TARGET_PORT: String(ports.postgres),
    },
    up: (...services) => stack('up', ...services),
    killKafkaNode: (i) => stack('kill', `kafka-${i}`),
    async down() {
      await stack('down').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A command in a process group of its own, with its output collected; `kill()` ends the group
 * (npm → sh → tsx leave their children behind otherwise).
 */
export function spawnGroup(cmd: string, args: string[], env: Record<string, string>): { p: ChildProcess; out: () => string; exit: Promise<number | null>; kill: (sig?: NodeJS.Signals) => void } {
  const p = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  const take = (d: Buffer) => {
    out += d.toString();
    if (process.env.SYNCLINE_CHILD_LOG) process.stderr.write(d);
  };
  p.stdout?.on('data', take);
  p.stderr?.on('data', take);
  const exit = new Promise<number | null>((resolve) => p.on('exit', (code) => resolve(code)));
  return {
    p, out: () => out, exit,
    kill: (sig = 'SIGKILL') => {
      try {
        process.kill(-p.pid!, sig);
      } catch {
        /* gone */
      }
    },
  };
}

/** The JSON log lines (pino) in a process's output. */
export function logLines(out: string): { level: number; msg: string; [k: string]: unknown }[] {
  return out.split('\n').filter((l) => l.startsWith('{"level"')).flatMap((l) => {
    try {
      return [JSON.parse(l)];
    } catch {
      return [];
    }
  });
}
