/** `syncline audit …`'s commands and options; their actions (../audit.ts) load only when one runs. */
import type { Command } from 'commander';

export function auditCommands(program: Command, defaultConfig: string): void {
  const actions = () => import('../audit.js');
  const cmd = program.command('audit').description('the audit trail: who did what, hash-chained with signed checkpoints (config audit)');
  cmd
    .command('list')
    .description('entries, newest first')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('--since <when>', 'ISO time or duration back from now (30m, 24h, 7d)')
    .option('--actor <name>', 'only this actor')
    .option('--action <action>', 'only this action (a trailing * matches a prefix: dlq.*)')
    .option('--limit <n>', 'at most this many', '100')
    .option('--json', 'one JSON object per line')
    .action(async (o: { config: string; since?: string; actor?: string; action?: string; limit: string; json?: boolean }) => (await actions()).auditList(o));
  cmd
    .command('export')
    .description('every entry, oldest first, with its hashes, then the signed checkpoints')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('--format <format>', 'jsonl (one JSON object per line)', 'jsonl')
    .option('-o, --out <file>', 'write to this file instead of stdout')
    .action(async (o: { config: string; format: string; out?: string }) => (await actions()).auditExport(o));
  cmd
    .command('verify')
    .description('recompute the hash chain and check the signed checkpoints; exit 1 naming the first altered, missing or reordered entry')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .action(async (o: { config: string }) => (await actions()).auditVerify(o));
  cmd
    .command('prune')
    .description('drop entries older than audit.retentionDays, up to a signed checkpoint')
    .option('-c, --config <file>', 'config file', defaultConfig)
    .action(async (o: { config: string }) => (await actions()).auditPrune(o));
  cmd
    .command('keygen')
    .description('write a new Ed25519 key pair for signing checkpoints (PEM)')
    .requiredOption('--private <file>', 'private key file to write (keep it secret: mode 0600)')
    .requiredOption('--public <file>', 'public key file to write')
    .action(async (o: { private: string; public: string }) => (await actions()).auditKeygen(o));
}
