/** `syncline backfill`'s options; its action (../backfill.ts) loads only when it runs. */
import type { Command } from 'commander';
import type { BackfillOptions } from '../backfill.js';

export function backfillCommand(program: Command, defaultConfig: string): void {
  program
    .command('backfill')
    .description('re-read a table of a running pipeline in key-ordered chunks while it streams (watermarks: no stale overwrite); or show, pause, resume, cancel backfills')
    .argument('<pipeline>', 'the pipeline')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-t, --table <table>', 'the table to backfill (one the pipeline captures)')
    .option('-w, --where <sql>', "only rows matching this SQL condition of the source (e.g. \"updated_at > '2026-01-01'\")")
    .option('--chunk-size <n>', 'rows per chunk (default 2000)')
    .option('--wait', 'wait until the backfill (or the pause/resume/cancel) took effect, printing progress')
    .option('--timeout <seconds>', 'with --wait: give up after this long (default 3600)')
    .option('--status [id]', 'show the backfills of the pipeline (or one)')
    .option('--pause <id>', 'pause a backfill after its current chunk')
    .option('--resume <id>', 'resume a paused backfill')
    .option('--cancel <id>', 'cancel a backfill after its current chunk')
    .option('--json', 'JSON output')
    .action(async (pipeline: string, o: BackfillOptions) => {
      const code = await (await import('../backfill.js')).backfill(pipeline, o);
      process.stdout.write('', () => process.exit(code));
    });
}
