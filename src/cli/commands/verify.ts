/** `syncline verify`'s options; its action (../verify.ts) loads only when it runs. */
import type { Command } from 'commander';
import type { VerifyOptions } from '../verify.js';

export function verifyCommand(program: Command, defaultConfig: string): void {
  program
    .command('verify')
    .description('compare the source and target of a running pipeline (key-range checksums, bisected to keys, re-checked once the pipeline caught up); --repair re-syncs the differing keys through the pipeline')
    .requiredOption('-p, --pipeline <name>', 'the pipeline')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-t, --table <table>', 'only this table (default: every table of the pipeline)')
    .option('--repair', 're-sync the differing keys through the pipeline (missing and different rows re-read from the source, extra rows deleted)')
    .option('--range-rows <n>', 'rows per checksummed key range (default 10000)')
    .option('--json', 'JSON output')
    .action(async (o: VerifyOptions) => (await import('../verify.js')).verifyAction(o));
}
