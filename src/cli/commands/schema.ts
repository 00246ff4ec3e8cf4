/** `syncline schema …`'s commands and options; their actions (../schema.ts) load only when one runs. */
import type { Command } from 'commander';

export function schemaCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../schema.js');
  const schema = program.command('schema').description('schema changes of captured tables: breaking ones wait for an operator (pending, approve, reject)');
  schema
    .command('pending')
    .description('breaking schema changes waiting for a decision (their table\'s apply is held)')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-p, --pipeline <name>', 'only this pipeline')
    .option('--json', 'JSON output')
    .action(async (o: { config: string; pipeline?: string; json?: boolean }) => (await actions()).schemaPending(o));
  schema
    .command('list')
    .description('every schema change recorded (safe ones applied automatically, and decisions)')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-p, --pipeline <name>', 'only this pipeline')
    .option('--json', 'JSON output')
    .action(async (o: { config: string; pipeline?: string; json?: boolean }) => (await actions()).schemaList(o));
  for (const [verb, status, what] of [['approve', 'approved', 'the held table applies its changes with the new schema'], ['reject', 'rejected', 'the table\'s changes under that schema are dead-lettered (SCHEMA_CHANGE_REJECTED; requeue them once the target is fixed), the table flows on']] as const) {
    schema
      .command(verb)
      .description(`${verb} a pending schema change: ${what}`)
      .argument('<id>', 'the change (syncline schema pending)')
      .option('-c, --config <file>', 'config file', defaultConfig)
      .option('--note <text>', 'why (recorded with the decision)')
      .option('--json', 'JSON output')
      .action(async (id: string, o: { config: string; note?: string; json?: boolean }) => (await actions()).schemaDecide(status, id, o));
  }
}
