/**
 * `syncline auth token create --name N --role R [--pipeline P]...`: a new API token, printed once,
 * and the config lines that grant it (its SHA-256 only: src/security/access/tokens.ts). And the
 * client side: commands that talk to a running syncline send `--token` or SYNCLINE_TOKEN.
 */
import { newToken, tokenHash } from '../security/access/tokens.js';

/** The Authorization header of a call to a running syncline: --token, else SYNCLINE_TOKEN; none when neither is set. */
export function authHeaders(token?: string, env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const t = (token ?? env.SYNCLINE_TOKEN ?? '').trim();
  return t === '' ? {} : { authorization: `Bearer ${t}` };
}

export { tokenOption } from './api-options.js';

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
