/** `syncline init`'s options; its action (../init.ts) loads only when it runs. */
import type { Command } from 'commander';

export function initCommand(program: Command): void {
  program
    .command('init')
    .description("read a source database's tables (PostgreSQL, MariaDB) and write a commented config for one pipeline: keys, column types, the fix of each table that cannot be captured as it is; passwords as ${ENV} references")
    .requiredOption('--source <url>', 'source database: postgres://user[:password]@host[:port]/database[?sslmode=require] or mariadb://user[:password]@host[:port]/database (also mysql://)')
    .option('--target <url>', "target database, either form (default: the source's server, database <source database>_target)")
    .option('--tables <list>', 'only these tables: table (schema public; MariaDB: the URL\'s database) or schema.table, comma-separated; "quote" names holding . , or "')
    .option('-p, --pipeline <name>', 'pipeline name (default: from the source database name)')
    .option('-o, --out <file>', 'write the config here (default: stdout)')
    .option('--force', 'replace --out when it exists')
    .action(async (o: { source: string; target?: string; tables?: string; pipeline?: string; out?: string; force?: boolean }) => {
      process.exitCode = await (await import('../init.js')).init(o);
    });
}
