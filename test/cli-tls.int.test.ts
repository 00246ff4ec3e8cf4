/**
 * CLI commands against a running syncline that serves HTTPS with a private CA and requires client
 * certificates (observability.tls with clientCaFile) and an API token: `status`, `report` and
 * `sync run` work with --ca/--cert/--key (and with SYNCLINE_API_CA/CERT/KEY), and fail clearly,
 * naming the running syncline's URL and the cause, without the CA, without a client certificate,
 * and with a client certificate of another CA (bad option combinations: src/cli/api-client.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliArgs, freePort, ROOT, sql, startRuntime, testEnv } from './helpers.js';
import { makeCerts } from './test-certs.js';
import { newToken, tokenHash } from '../src/security/access/tokens.js';
import { parseConfig } from '../src/core/config/load.js';
import { status as runStatus } from '../src/cli/status.js';
import { errorCode } from '../src/core/errors.js';

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    const clean = { ...process.env };
    for (const k of ['SYNCLINE_TOKEN', 'SYNCLINE_API_CA', 'SYNCLINE_API_CERT', 'SYNCLINE_API_KEY']) delete clean[k];
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...clean, SYNCLINE_LOG_LEVEL: 'warn', ...env }, timeout: 60_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}


test('CLI commands reach an HTTPS syncline with a private CA, a client certificate and a token; without them they fail naming the peer and the cause', async (t) => {
  const certs = makeCerts();
  const token = newToken();
  const port = await freePort();
  const env = await testEnv([{ name: 'cl', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'manual' } }]);
  t.after(async () => {
    await env.cleanup();
    certs.remove();
  });
  await sql(env.sourceDb, `create table items (id int primary key)`);
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as Record<string, unknown>;
  doc.observability = { host: '127.0.0.1', port, tls: { certFile: certs.serverCert, keyFile: certs.serverKey, clientCaFile: certs.caFile } };
  doc.api = { tokens: [{ name: 'cli', role: 'operator', hash: tokenHash(token) }], open: [] };
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));
  env.config = parseConfig(readFileSync(env.configFile, 'utf8'), env.configFile, {});
  await startRuntime(env);
  const url = `https://127.0.0.1:${port}`;
  const tls = ['--ca', certs.caFile, '--cert', certs.clientCert, '--key', certs.clientKey];
  const dir = mkdtempSync(join(tmpdir(), 'syncline-cli-tls-'));

  // The commands as a user runs them (options and variables parsed by the CLI) ...
  const [status, report, runs] = await Promise.all([
    // The URL comes from the config (https: it has observability.tls).
    cli(['status', '--config', env.configFile, ...tls, '--token', token]),
    cli(['report', '--config', env.configFile, '--dir', dir], { SYNCLINE_API_CA: certs.caFile, SYNCLINE_API_CERT: certs.clientCert, SYNCLINE_API_KEY: certs.clientKey, SYNCLINE_TOKEN: token }),
    cli(['sync', 'run', 'cl', '--config', env.configFile, ...tls, '--token', token]),
  ]);
  // ... and the refusals, from the same code in this process (each CLI process costs seconds here).
  const refusal = async (o: { ca?: string; cert?: string; key?: string }) => {
    try {
      await runStatus({ config: env.configFile, token, ...o, out: () => undefined });
    } catch (err) {
      return `syncline: ${errorCode(err)}: ${(err as Error).message}`;
    }
    assert.fail('expected a refusal');
  };
  const noCa = await refusal({});
  const noCert = await refusal({ ca: certs.caFile });
  const stranger = await refusal({ ca: certs.caFile, cert: certs.strangerCert, key: certs.strangerKey });
  t.diagnostic(`without --ca: ${noCa}`);
  t.diagnostic(`without a client certificate: ${noCert}`);
  t.diagnostic(`client certificate of another CA: ${stranger}`);

  assert.match(status.out, new RegExp(`syncline at ${url}`), status.out + status.err);
  assert.equal(report.code, 0, report.out + report.err);
  assert.match(report.out, new RegExp(`syncline at ${url}: 1 pipeline\\(s\\)`));
  assert.ok(JSON.parse(readFileSync(join(dir, 'sync-status.json'), 'utf8')));
  assert.equal(runs.code, 0, runs.out + runs.err);
  assert.match(runs.out, /^\S+\n$/, 'the id of the run started');

  const peer = `the running syncline at ${url.replace(/\./g, '\\.')}`;
  assert.match(noCa, new RegExp(`TLS: the certificate of ${peer} does not verify \\((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\\b.*pass --ca FILE`));
  assert.match(noCert, new RegExp(`TLS: ${peer} refused the connection in the handshake .*requires a client certificate.*--cert FILE --key FILE`));
  assert.match(stranger, new RegExp(`TLS: ${peer} (refused|closed the connection in the handshake).*client certificate ${certs.strangerCert}`));
});
