/** `syncline history …`'s commands and options; their actions (../history.ts) load only when one runs. */
import type { Command } from 'commander';

export function historyCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../history.js');
  const cmd = program.command('history').description('the change history of the targets: a key\'s timeline, a table as it was (config history)');
  cmd
    .command('show')
    .description("a key's timeline with a field diff per step")
    .option('-c, --config <file>', 'config file', defaultConfig)
    .requiredOption('--pipeline <name>', 'pipeline')
    .requiredOption('--table <table>', 'target table (schema.table)')
    .requiredOption('--key <key>', 'the key: a value (42), a JSON array of the key values ([1,"a"]) or a JSON object ({"id":42})')
    .option('--since <iso>', 'from this instant')
    .option('--until <iso>', 'before this instant')
    .option('--json', 'the timeline as JSON')
    .action(async (o: { config: string; pipeline: string; table: string; key: string; since?: string; until?: string; json?: boolean }) => (await actions()).historyShow(o));
  cmd
    .command('asof')
    .description('the target table as it was at an instant, rebuilt from the history')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .requiredOption('--pipeline <name>', 'pipeline')
    .requiredOption('--table <table>', 'target table (schema.table)')
    .requiredOption('--at <iso>', 'the instant (ISO time)')
    .option('-o, --out <file>', 'write the rows as JSON lines to this file (default: stdout)')
    .option('--into <schema.table>', "create this table in the PostgreSQL target's database, like the target table, with the rows")
    .action(async (o: { config: string; pipeline: string; table: string; at: string; out?: string; into?: string }) => (await actions()).historyAsof(o));
}
