/**
 * The one way syncline connects to Acme: the source, its snapshot, the monitor, the sink and
 * `pipeline drop` all take their client options from acmeClientOptions, so the connection block,
 * TLS above all, means the same on every side (as connectors/postgres/connection.ts does).
 *
 * TLS: ssl false: none; ssl true: the certificate is verified against the system CAs or sslCaFile,
 * and its name against host; sslVerify false: encrypted, not verified (a warning says so once).
 */
import { readFileSync } from 'node:fs';
import { fatal } from '../../../src/core/errors.js';
import { openAcmeClient, type AcmeClient, type AcmeClientOptions } from './driver.js';
import { classifyAcmeError } from './errors.js';
import type { AcmeConnection } from './spec.js';

const warned = new Set<string>();

export function acmeClientOptions(c: AcmeConnection, purpose: string, extra: Partial<AcmeClientOptions> = {}): AcmeClientOptions {
  let tls: AcmeClientOptions['tls'];
  if (c.ssl) {
    let ca: string | undefined;
    if (c.sslCaFile !== undefined) {
      try {
        ca = readFileSync(c.sslCaFile, 'utf8');
      } catch (err) {
        throw fatal('CONFIG_TLS', `Acme ${c.host}:${c.port}: cannot read sslCaFile ${c.sslCaFile}: ${(err as Error).message}`);
      }
    }
    if (!c.sslVerify && !warned.has(`${c.host}:${c.port}`)) {
      warned.add(`${c.host}:${c.port}`);
      process.emitWarning(`Acme ${c.host}:${c.port}: TLS without certificate verification (sslVerify: false)`, { code: 'SYNCLINE_TLS_UNVERIFIED' });
    }
    tls = { ca, rejectUnauthorized: c.sslVerify };
  }
  return { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, tls, connectTimeoutMs: 10_000, application: `syncline ${purpose}`, ...extra };
}

/** Where a connection goes, without credentials, for messages: `Acme user@host:port/db`. */
export const acmeWhere = (c: AcmeConnection) => `Acme ${c.user}@${c.host}:${c.port}/${c.database}`;

/** Open a client; failures classified (unreachable: retriable, credentials or TLS: fatal). */
export async function connectAcme(c: AcmeConnection, purpose: string, extra?: Partial<AcmeClientOptions>): Promise<AcmeClient> {
  try {
    return await openAcmeClient(acmeClientOptions(c, purpose, extra));
  } catch (err) {
    throw classifyAcmeError(err, `${purpose}: cannot connect to ${acmeWhere(c)}`);
  }
}
