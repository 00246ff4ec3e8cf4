/**
 * `syncline dlq …`'s commands and options; their actions (../dlq.ts, with the clients they open)
 * load only when one of them runs.
 */
import type { Command } from 'commander';

export function dlqCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../dlq.js');
  const dlq = program.command('dlq').description('inspect and settle dead letters (invalid, failed, conflict): list, show, resolve, requeue, discard');
  const common = (c: Command) => c.option('-c, --config <file>', 'config file', defaultConfig).option('--json', 'JSON output');
  common(dlq.command('list'))
    .description('list dead letters (default: open ones), oldest first')
    .option('-p, --pipeline <name>', 'only this pipeline')
    .option('--kind <kind>', 'invalid | failed | conflict | parked')
    .option('--table <table>', 'target table (schema.table or table)')
    .option('--key <key>', 'target key: a JSON list of the key values, or the single key value')
    .option('--state <state>', 'open | resolved | requeued | discarded | all', 'open')
    .option('--since <iso>', 'dead-lettered at or after')
    .option('--until <iso>', 'dead-lettered at or before')
    .option('--limit <n>', 'at most n', (v) => Number(v))
    .action(async (o) => (await actions()).dlqList(o));
  common(dlq.command('show'))
    .argument('<id>', 'dead letter id')
    .option('-p, --pipeline <name>', 'look only in this pipeline')
    .description('one dead letter: reason, origin, violations, conflict versions with a field diff, history')
    .action(async (id: string, o) => (await actions()).dlqShow(id, o));
  common(dlq.command('resolve'))
    .argument('<id>', 'conflict id')
    .requiredOption('--choice <choice>', 'source | target | merged')
    .option('--merged <json>', 'the merged record (JSON object of target columns) for --choice merged')
    .option('--merged-file <file>', 'read the merged record from a JSON file')
    .option('--note <text>', 'a note kept with the action')
    .option('--by <who>', 'who settles it (default: user@host)')
    .option('-p, --pipeline <name>', 'look only in this pipeline')
    .description('settle a conflict: write the source or merged version, or keep the target; then release the later changes of its key in order')
    .action(async (id: string, o) => (await actions()).dlqResolve(id, o));
  for (const [name, desc] of [
    ['requeue', 'process a dead letter again: invalid/failed go back to their original topic and partition; a conflict goes through conflict resolution again'],
    ['discard', 'drop a dead letter (a conflict: the target keeps its row); later changes of its key are released'],
  ] as const) {
    common(dlq.command(name))
      .argument('<id>', 'dead letter id')
      .option('--by <who>', 'who acts (default: user@host)')
      .option('--note <text>', 'a note kept with the action')
      .option('-p, --pipeline <name>', 'look only in this pipeline')
      .description(desc)
      .action(async (id: string, o) => (await actions()).dlqRequeueOrDiscard(name, id, o));
  }
}
