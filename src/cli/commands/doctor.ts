/** `syncline doctor`'s options; its checks (../doctor.ts) load only when it runs. */
import type { Command } from 'commander';

export function doctorCommand(program: Command, defaultConfig: string): void {
  program
    .command('doctor')
    .description("check every prerequisite of every pipeline (the source's settings, rights, tables and keys: PostgreSQL's publication, replica identity and slots, MariaDB's binlog; Kafka, registry, Redis; target tables and rights) and print the fix of each that fails. Exit 0 only when all pass")
    .option('-c, --config <file>', 'config file', defaultConfig)
    .option('-p, --pipeline <name>', 'only this pipeline (repeatable)', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (opts: { config: string; pipeline?: string[] }) => {
      const code = await (await import('../doctor.js')).doctor(opts);
      // Clients of unreachable services may keep retrying in the background: do not wait for them.
      process.stdout.write('', () => process.exit(code));
    });
}
