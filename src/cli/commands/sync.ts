/** `syncline sync …`'s commands and options; their actions (../sync.ts) load only when one runs. */
import type { Command } from 'commander';
import { withApiOptions } from '../api-options.js';

export function syncCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../sync.js');
  const sync = program.command('sync').description('runs of scheduled and manual pipelines: run, status, list');
  const common = (c: Command) => c.option('-c, --config <file>', 'config file', defaultConfig).option('--json', 'JSON output');
  withApiOptions(common(sync.command('run')))
    .argument('<pipeline>', 'a pipeline in mode scheduled or manual')
    .option('-t, --table <table>', 'only this source table (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--full', 'a full re-read of the tables: they are backfilled inside the run (sources with backfills: PostgreSQL, MariaDB)')
    .option('--wait', 'follow the run until it ends (a progress bar on a terminal); exit 1 unless it succeeded')
    .option('--url <url>', 'the running syncline (default: from the config observability host and port)')
    .option('--by <who>', 'who asks (default: user@host; only where the API takes no token, api.auth none)')
    .description('start a bounded sync run of the pipeline in the running syncline; prints its id')
    .action(async (pipeline: string, o) => (await actions()).syncRun(pipeline, o));
  withApiOptions(common(sync.command('status')))
    .argument('[run]', 'a run id (default: the latest run of each bounded pipeline)')
    .option('--wait', 'follow the run until it ends')
    .option('--url <url>', 'the running syncline (default: from the config)')
    .description('a run\'s progress and outcome (from the running syncline, else from the record topic)')
    .action(async (id: string | undefined, o) => (await actions()).syncStatus(id, o));
  common(sync.command('list'))
    .option('-p, --pipeline <name>', 'only this pipeline')
    .option('--limit <n>', 'at most n (newest first)', (v) => Number(v), 50)
    .description('recorded runs, newest first (read from <prefix>.sync.runs; no running syncline needed)')
    .action(async (o) => (await actions()).syncList(o));
}
