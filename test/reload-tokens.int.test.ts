/**
 * API tokens follow a reload of a running process (a real `syncline capture` child, SIGHUP): a
 * removed token is refused (401) on the next request, a token whose role changed has its new
 * permissions at once, and the audit trail holds config.loaded (with the file's SHA-256) for the
 * start of the stage and for the reload, and the reload with the token names it changed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createDb, dropDb, freePort, PG, spawnCli, sql, testEnv, waitFor } from './helpers.js';
import { newToken, tokenHash } from '../src/security/access/tokens.js';


const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

test('a reload (SIGHUP) revokes a removed token at once, gives a changed role its new permissions, and is audited with config.loaded', async (t) => {
  const meta = `syncline_t_${Math.random().toString(16).slice(2, 10)}_meta`;
  await createDb(meta);
  const env = await testEnv([{ name: 'tk', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }]);
  t.after(async () => {
    await env.cleanup();
    await dropDb(meta);
  });
  await sql(env.sourceDb, `create table items (id int primary key)`);
  const port = await freePort();
  const admin = newToken();
  const watcher = newToken();
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as Record<string, unknown>;
  const write = (tokens: { name: string; role: string; token: string }[]) => {
    doc.api = { tokens: tokens.map((x) => ({ name: x.name, role: x.role, hash: tokenHash(x.token) })) };
    writeFileSync(env.configFile, JSON.stringify(doc, null, 2));
  };
  doc.observability = { port, host: '127.0.0.1' };
  doc.audit = { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${meta}` };
  write([{ name: 'boss', role: 'admin', token: admin }, { name: 'watcher', role: 'viewer', token: watcher }]);
  const firstSha = sha(env.configFile);

  const child = spawnCli(['capture', '--config', env.configFile]);
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  const base = `http://127.0.0.1:${port}`;
  const call = (token: string, method: string, path: string) => fetch(base + path, { method, headers: { authorization: `Bearer ${token}` } }).then((r) => r.status).catch(() => 0);
  const list = '/api/pipelines/tk/backfills';
  const pause = '/api/pipelines/tk/backfills/none/pause';
  await waitFor('the API to answer', async () => (await call(admin, 'GET', list)) === 200 || undefined, 60_000, 200);
  assert.equal(await call(watcher, 'GET', list), 200);
  assert.equal(await call(watcher, 'POST', pause), 403, 'a viewer may not pause a backfill');

  // boss revoked, watcher made an operator; the process keeps running.
  write([{ name: 'watcher', role: 'operator', token: watcher }]);
  const secondSha = sha(env.configFile);
  child.kill('SIGHUP');
  await waitFor('the revoked token refused', async () => (await call(admin, 'GET', list)) === 401 || undefined, 30_000, 100);
  assert.notEqual(await call(watcher, 'POST', pause), 403, 'the operator may now (404: no such backfill)');
  assert.equal(await call(watcher, 'POST', '/api/reload'), 403, 'but is no admin');

  const rows = async () => (await sql(meta, `select action, actor, details from syncline_audit order by seq`)).rows as { action: string; actor: string; details: string }[];
  const entries = await waitFor('the reload in the audit trail', async () => {
    const r = await rows();
    return r.some((e) => e.action === 'config.reload') && r.filter((e) => e.action === 'config.loaded').length >= 2 ? r : undefined;
  }, 30_000, 200);
  const loaded = entries.filter((e) => e.action === 'config.loaded').map((e) => JSON.parse(e.details) as { sha256: string; at: string; file: string });
  assert.deepEqual(loaded.map((l) => [l.at, l.sha256, l.file]), [['start', firstSha, env.configFile], ['reload', secondSha, env.configFile]]);
  const reload = entries.find((e) => e.action === 'config.reload')!;
  assert.equal(reload.actor, 'signal:SIGHUP');
  assert.deepEqual(JSON.parse(reload.details), { outcome: 'ok', sha256: secondSha, pipelines: [], tokens: { added: [], removed: ['boss'], changed: ['watcher'] } });

  // Turning authentication off is not a token change: refused, the tokens stay as they are.
  doc.api = { auth: 'none' };
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));
  child.kill('SIGHUP');
  await waitFor('the refused reload recorded', async () => (await rows()).filter((e) => e.action === 'config.reload').length === 2 || undefined, 30_000, 200);
  const refused = (await rows()).filter((e) => e.action === 'config.reload').at(-1)!;
  assert.equal((JSON.parse(refused.details) as { outcome: string }).outcome, 'refused');
  assert.equal(await call(watcher, 'GET', list), 200);
  assert.equal(await fetch(base + list).then((r) => r.status), 401, 'auth still required');
});
