/** `syncline pipeline drop|pause|resume`'s options; their actions (../pipeline-drop.ts, ../pipeline-pause.ts) load only when one runs. */
import type { Command } from 'commander';
import type { DropOptions } from '../pipeline-drop.js';
import { withApiOptions } from '../api-options.js';

function pauseCommands(pipeline: Command, defaultConfig: string): void {
  for (const action of ['pause', 'resume'] as const) {
    withApiOptions(pipeline.command(action))
      .argument('<name>', 'a realtime pipeline')
      .option('-c, --config <file>', 'config file', defaultConfig)
      .option('--url <url>', 'the running syncline (default: from the config observability host and port)')
      .option('--json', 'JSON output')
      .description(action === 'pause'
        ? "pause the pipeline's processing in the running syncline: its consumer stops fetching, the batch in flight finishes; nothing is lost (changes wait in Kafka, capture goes on). Kept until resume or a restart of the process"
        : "resume a paused pipeline's processing in the running syncline (from where it stopped)")
      .action(async (name: string, o) => (await import('../pipeline-pause.js')).setPaused(action, name, o));
  }
}

export function pipelineCommands(program: Command, defaultConfig: string): void {
  const pipeline = program.command('pipeline').description('pipeline administration: drop, pause, resume');
  pauseCommands(pipeline, defaultConfig);
  pipeline
    .command('drop')
    .argument('<name>', 'pipeline (as named in the config)')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('--dry-run', 'only list what would be dropped and what is kept (and why)')
    .option('-y, --yes', 'drop without asking for confirmation')
    .description("remove what a pipeline created (replication slot, publication, replication origins, Kafka topics and consumer groups, its capture offsets, registry subjects, Redis keys) and nothing of any other pipeline; refused while the pipeline runs")
    .action(async (name: string, o: DropOptions) => {
      const code = await (await import('../pipeline-drop.js')).pipelineDrop(name, o);
      // One-shot: client libraries may keep timers alive after close; do not hang on them.
      process.stdout.write('', () => process.exit(code));
    });
}
