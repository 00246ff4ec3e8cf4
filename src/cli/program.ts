/**
 * The `syncline` command line's commands (commander), defined without being run: src/cli/main.ts
 * parses the process's arguments with it; the README test reads every documented form's help from it.
 * Only the definitions load here (commander): each command's action imports what it uses when it
 * runs (a CLI start costs ~1 s of CPU when it loads every client library and the runtime).
 */
import { Command, InvalidArgumentError } from 'commander';
import { dlqCommands } from './commands/dlq.js';
import { replayCommand } from './commands/replay.js';
import { initCommand } from './commands/init.js';
import { doctorCommand } from './commands/doctor.js';
import { pipelineCommands } from './commands/pipeline.js';
import { backfillCommand } from './commands/backfill.js';
import { verifyCommand } from './commands/verify.js';
import { schemaCommands } from './commands/schema.js';
import { syncCommands } from './commands/sync.js';
import { auditCommands } from './commands/audit.js';
import { historyCommands } from './commands/history.js';
import { rollbackCommands } from './commands/rollback.js';
import { authCommands } from './commands/auth.js';
import { withApiOptions } from './api-options.js';

const DEFAULT_CONFIG = process.env.SYNCLINE_CONFIG ?? 'configs/data-sync-config.yaml';

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
      const { runStages } = await import('./run-stages.js');
      await runStages([...stages], opts);
    });
}

withApiOptions(program
  .command('status')
  .description("a running syncline's readiness (every dependency) and health; without one, checks the config's dependencies from here. Exit 0 when ready, 1 when not")
  .option('-c, --config <file>', 'config file', DEFAULT_CONFIG)
  .option('--url <url>', 'base URL of the running instance (default: from the config\'s observability section, else http://127.0.0.1:9464)'))
  .action(async (opts: { config: string; url?: string; token?: string; ca?: string; cert?: string; key?: string }) => {
    const code = await (await import('./status.js')).status(opts);
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
    const code = await (await import('./report.js')).report(opts);
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
    process.exitCode = await (await import('./config-validate.js')).configValidate(file ?? opts.config ?? DEFAULT_CONFIG);
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
    const r = await (await import('./alerts-export.js')).alertsExport(opts);
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
