/** `syncline auth token create`'s options; its action (../auth.ts) loads only when it runs. */
import { InvalidArgumentError, Option, type Command } from 'commander';

/** API_ROLES of src/core/config/schema.ts, without loading the config schema (auth.test.ts checks they are the same). */
export const ROLES = ['viewer', 'operator', 'admin'] as const;

export function authCommands(program: Command): void {
  const auth = program.command('auth').description('access control of the HTTP API (docs/security.md)');
  const token = auth.command('token').description('API tokens');
  token
    .command('create')
    .description('make a new API token: prints it once, and the hash line and config entry that grant it (only the hash is stored)')
    .requiredOption('--name <name>', 'who holds it (recorded as token:<name> with every action)', (v) => {
      if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(v)) throw new InvalidArgumentError('letters, digits and _ . @ - (at most 64)');
      return v;
    })
    .addOption(new Option('--role <role>', 'viewer, operator or admin').choices([...ROLES]).makeOptionMandatory())
    .option('--pipeline <name>', 'limit it to this pipeline (repeat for more); default: all', (v: string, prev: string[] = []) => [...prev, v])
    .action(async (o: { name: string; role: string; pipeline?: string[] }) => {
      process.stdout.write((await import('../auth.js')).tokenCreate(o));
    });
}
