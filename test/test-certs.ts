/**
 * A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a second CA that
 * signed a client certificate of its own (a client the server must refuse): made with openssl in a
 * temporary directory, as scripts/stack.sh makes them for the private TLS stack (EC keys: fast).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCerts {
  dir: string;
  caFile: string;
  otherCaFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client certificate signed by the other CA. */
  strangerCert: string;
  strangerKey: string;
  remove(): void;
}

export function makeCerts(): TestCerts {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-certs-'));
  const f = (n: string) => join(dir, n);
  const o = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  o('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2', '-subj', '/CN=syncline test CA');
  o('req', '-x509', ...ec, '-keyout', 'other-ca.key', '-out', 'other-ca.crt', '-days', '2', '-subj', '/CN=syncline other CA');
  writeFileSync(f('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  writeFileSync(f('client.ext'), 'extendedKeyUsage=clientAuth\n');
  const sign = (name: string, cn: string, ca: string, ext: string) => {
    o('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
    o('x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', ext);
  };
  sign('server', 'localhost', 'ca', 'server.ext');
  sign('client', 'syncline-cli', 'ca', 'client.ext');
  sign('stranger', 'stranger', 'other-ca', 'client.ext');
  return {
    dir, caFile: f('ca.crt'), otherCaFile: f('other-ca.crt'), serverCert: f('server.crt'), serverKey: f('server.key'),
    clientCert: f('client.crt'), clientKey: f('client.key'), strangerCert: f('stranger.crt'), strangerKey: f('stranger.key'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
