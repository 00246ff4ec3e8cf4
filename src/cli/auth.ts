/**
 * `syncline auth token create --name N --role R [--pipeline P]...`: a new API token, printed once,
 * and the config lines that grant it (its SHA-256 only: src/security/access/tokens.ts). And the
 * client side: commands that talk to a running syncline send `--token` or SYNCLINE_TOKEN.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { API_ROLES } from '../core/config/schema.js';
import { newToken, tokenHash } from '../security/access/tokens.js';

/** The Authorization header of a call to a running syncline: --token, else SYNCLINE_TOKEN; none when neither is set. */
export function authHeaders(token?: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const t = (token ?? env.SYNCLINE_TOKEN ?? '').trim();
  return t === '' ? {} : { authorization: `Bearer ${t}` };
}

/** The option every client command takes. */
export const tokenOption = () => new Option('--token <token>', 'API token for a syncline whose API requires one (default: SYNCLINE_TOKEN)');

/** What a 401/403 of a running syncline means for the CLI user. */
export function authHint(status: number, error?: string): string | undefined {
  if (status === 401) return `the running syncline wants an API token (${error ?? 'HTTP 401'}): set SYNCLINE_TOKEN or pass --token`;
  if (status === 403) return `the running syncline refused the token: ${error ?? 'HTTP 403'}`;
  return undefined;
}

export function tokenCreate(o: { name: string; role: string; pipeline?: string[] }): string {
  const token = newToken();
  const env = `SYNCLINE_TOKEN_HASH_${o.name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
  const entry = [`    - name: ${o.name}`, `      role: ${o.role}`, `      hash: \${${env}}`, ...(o.pipeline?.length ? [`      pipelines: [${o.pipeline.join(', ')}]`] : [])];
  return [
    `token (shown once; give it to its holder, who sets SYNCLINE_TOKEN or passes --token):`,
    `  ${token}`,
    ``,
    `environment of the syncline process:`,
    `  ${env}=${tokenHash(token)}`,
    ``,
    `config (api.tokens):`,
    `api:`,
    `  tokens:`,
    ...entry,
    ``,
  ].join('\n');
}

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
    .addOption(new Option('--role <role>', 'viewer, operator or admin').choices([...API_ROLES]).makeOptionMandatory())
    .option('--pipeline <name>', 'limit it to this pipeline (repeat for more); default: all', (v: string, prev: string[] = []) => [...prev, v])
    .action((o: { name: string; role: string; pipeline?: string[] }) => {
      process.stdout.write(tokenCreate(o));
    });
}
