/** `syncline rollback`'s options; its action (../rollback.ts) loads only when it runs. */
import { Option, type Command } from 'commander';
import { tokenOption } from '../api-options.js';

/** withApiOptions without --key (rollback's --key is the row key): the client certificate's key comes from SYNCLINE_API_KEY. */
function withApiOptionsButKey(cmd: Command): Command {
  return cmd
    .addOption(tokenOption())
    .addOption(new Option('--ca <file>', 'PEM file of the CA that signed the HTTPS certificate of the running syncline (default: SYNCLINE_API_CA, else the system CAs)'))
    .addOption(new Option('--cert <file>', 'PEM client certificate, for a syncline that requires one (default: SYNCLINE_API_CERT); its key from SYNCLINE_API_KEY'));
}

export function rollbackCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../rollback.js');
  withApiOptionsButKey(program
    .command('rollback')
    .description("put a pipeline's target rows back to their state at an instant (from the change history), written through the running pipeline; --dry-run shows the diff")
    .requiredOption('-p, --pipeline <name>', 'the pipeline')
    .requiredOption('--to <iso>', 'the instant (ISO time, e.g. 2026-12-01T10:00:00Z)')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-t, --table <table>', 'only this target table (default: every table of the pipeline that keeps history)')
    .option('--key <key>', 'only this key of --table: a value (42), a JSON array of the key values ([1,"a"]) or a JSON object ({"id":42})')
    .option('--dry-run', 'show per key what would be written (current → target), write nothing')
    .option('--pause', 'hold the pipeline (its consumer stage, from before the rollback writes) until `syncline pipeline resume NAME`, so no later change overwrites it')
    .option('--json', 'JSON output')
    .option('--url <url>', "base URL of the running syncline that runs the pipeline's sink (default: from the config's observability section)"))
    .action(async (o: { config: string; pipeline: string; to: string; table?: string; key?: string; dryRun?: boolean; pause?: boolean; json?: boolean; url?: string; token?: string; ca?: string; cert?: string }) => (await actions()).rollbackAction(o));
}
