/** `syncline replay`'s options; its action (../replay.ts) loads only when it runs. */
import type { Command } from 'commander';

export function replayCommand(program: Command, defaultConfig: string): void {
  program
    .command('replay')
    .description("re-run a pipeline's changes from its change topics through validation, conflict resolution and the sink, without touching the live consumer group; already-applied changes are no-ops")
    .option('-c, --config <file>', 'config file', defaultConfig)
    .requiredOption('-p, --pipeline <name>', 'pipeline')
    .requiredOption('--from <from>', "ISO time, offset (every partition), or 'beginning'")
    .option('--to <to>', 'ISO time or offset, inclusive (default: the current end)')
    .option('--table <table>', 'only this table (source or target name)')
    .option('--dry-run', 'read only: say what would happen, write nothing')
    .option('--transforms-as-of <hash>', 'run the transforms of this recorded version (its hash) instead of those in force now (the default)')
    .option('--json', 'print the summary as JSON')
    .action(async (o) => (await import('../replay.js')).replayAction(o));
}
