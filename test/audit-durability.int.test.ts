/**
 * Audit entries survive an outage of the metadata database and a crash: a running `syncline
 * capture` (real child) records denied requests and a reload while its audit database is
 * unreachable (a TCP proxy in front of PostgreSQL, cut), is killed (SIGKILL), and started again with
 * the database back: the entries are in the table, in the order they were recorded, before the
 * second process's own; `syncline audit verify` passes; the spool is empty after a clean stop.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { execFile, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliArgs, createDb, dropDb, freePort, PG, ROOT, spawnCli, sql, testEnv, waitFor } from './helpers.js';
import { TcpProxy } from './tcp-proxy.js';
import { newToken, tokenHash } from '../src/security/access/tokens.js';


test('entries recorded while the audit database is down are not lost when the process is killed: the next start appends them in order, verify passes', async (t) => {
  const meta = `syncline_t_${Math.random().toString(16).slice(2, 10)}_meta`;
  await createDb(meta);
  const proxy = new TcpProxy(PG.port, PG.host);
  const proxyPort = await proxy.start();
  const env = await testEnv([{ name: 'du', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }]);
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) {
      c.kill('SIGKILL');
      await once(c, 'exit');
    }
    await proxy.stop();
    await env.cleanup();
    await dropDb(meta);
  });
  await sql(env.sourceDb, `create table items (id int primary key)`);
  const port = await freePort();
  const admin = newToken();
  const spoolDir = mkdtempSync(join(tmpdir(), 'syncline-spool-'));
  const keyVar = 'SYNCLINE_AUDIT_DURABILITY_KEY';
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as Record<string, unknown>;
  doc.observability = { host: '127.0.0.1', port };
  doc.api = { tokens: [{ name: 'boss', role: 'admin', hash: tokenHash(admin) }] };
  doc.audit = { url: `postgres://${PG.user}@127.0.0.1:${proxyPort}/${meta}`, spoolDir, signingKey: { env: keyVar } };
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));

  const base = `http://127.0.0.1:${port}`;
  const start = async () => {
    const c = spawnCli(['capture', '--config', env.configFile], { [keyVar]: key });
    children.push(c);
    await waitFor('the API to answer', () => fetch(`${base}/api/pipelines/du/backfills`, { headers: { authorization: `Bearer ${admin}` } }).then((r) => r.status === 200, () => false), 60_000, 200);
    return c;
  };
  const rows = async () => (await sql(meta, `select seq, action, object from syncline_audit order by seq`)).rows as { seq: string; action: string; object: string }[];

  const first = await start();
  await waitFor('the start recorded', async () => (await rows().catch(() => [])).some((r) => r.action === 'config.loaded') || undefined, 30_000, 200);

  proxy.block(); // the metadata database is unreachable from here on
  for (const n of [1, 2, 3]) {
    const r = await fetch(`${base}/api/pipelines/du/backfills?n=${n}`, { headers: { authorization: `Bearer slt_${'x'.repeat(43)}` } });
    assert.equal(r.status, 401); // acknowledged: its api.denied entry is on disk
  }
  const reload = await fetch(`${base}/api/reload`, { method: 'POST', headers: { authorization: `Bearer ${admin}` } });
  assert.equal(reload.status, 200, await reload.text());
  first.kill('SIGKILL');
  await once(first, 'exit');
  proxy.unblock();
  const before = (await rows()).map((r) => r.action);
  assert.ok(!before.includes('api.denied') && !before.includes('config.reload'), `nothing of the outage reached the table: ${before.join(', ')}`);
  assert.ok(readdirSync(spoolDir).length > 0, 'the spool file stays');

  const restarted = await start();
  const all = await waitFor('the spooled entries appended', async () => {
    const r = await rows();
    return r.filter((e) => e.action === 'process.start').length === 2 ? r : undefined;
  }, 30_000, 200);
  const actions = all.map((r) => r.action);
  const i = before.length;
  assert.deepEqual(actions.slice(0, i), before, 'what was there stays first');
  // Then what the first process spooled (its capture may have registered a schema meanwhile), then the second start.
  const second = actions.indexOf('process.start', i);
  const spooled = all.slice(i, second).filter((r) => r.action !== 'schema.registered');
  assert.deepEqual(spooled.map((r) => r.action), ['api.denied', 'api.denied', 'api.denied', 'config.reload', 'config.loaded'], actions.join(', '));
  assert.deepEqual(spooled.slice(0, 3).map((r) => r.object), ['GET /api/pipelines/du/backfills', 'GET /api/pipelines/du/backfills', 'GET /api/pipelines/du/backfills']);
  assert.deepEqual(all.map((r) => Number(r.seq)), all.map((_, k) => k + 1), 'one unbroken sequence');

  restarted.kill('SIGTERM');
  await once(restarted, 'exit');
  assert.deepEqual(readdirSync(spoolDir), [], 'a clean stop with the database up leaves no spool');
  const verify = await new Promise<{ code: number; out: string }>((resolve) => {
    execFile(process.execPath, cliArgs(['audit', 'verify', '--config', env.configFile]), { cwd: ROOT, env: { ...process.env, [keyVar]: key, SYNCLINE_LOG_LEVEL: 'warn' }, timeout: 60_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: out + stderr });
    });
  });
  assert.equal(verify.code, 0, verify.out);
  assert.match(verify.out, /audit trail intact/);
});
