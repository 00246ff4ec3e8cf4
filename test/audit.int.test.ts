/**
 * The audit trail of a running syncline (src/security/audit/): a runtime with an `audit` section
 * records its start, a sync run asked through the API and a dead-letter action, with the actors of
 * the requests; `syncline audit list` finds them and `syncline audit verify` says the chain and its
 * signed checkpoints are intact (exit 0), then names an altered entry (exit 1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cliArgs, createDb, dropDb, PG, ROOT, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import type { SyncRun } from '../src/sync/runs.js';
import { recordDenied, type AuditEntry } from '../src/security/audit/index.js';

function cli(args: string[], env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'warn', ...env }, timeout: 120_000 }, (err, out, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

test('a runtime records its start, a sync run and a DLQ action; audit list finds them and audit verify passes', async (t) => {
  const keyVar = `SYNCLINE_AUDIT_TEST_KEY_${process.pid}`;
  const key = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  process.env[keyVar] = key;
  // Field encryption (one table encrypts a column): config.loaded names the key ids, never a key.
  const encVar = `SYNCLINE_AUDIT_TEST_ENC_${process.pid}`;
  const encKeys = [randomBytes(32).toString('hex'), randomBytes(32).toString('hex')];
  process.env[encVar] = `k1=${encKeys[0]},k2=${encKeys[1]}`;
  const meta = `syncline_t_${Math.random().toString(16).slice(2, 10)}_meta`;
  await createDb(meta);
  const env = await testEnv(
    [{ name: 'items', tables: [{ source: 'public.items', validate: { fields: { qty: { min: 0 } } }, mask: ['qty'] }, { source: 'public.notes', encrypt: ['body'] }], conflict: { strategy: 'source-wins' }, sync: { mode: 'manual' } }],
    { extra: { observability: { port: 0 }, encryption: { activeKey: 'k2', hashKey: 'k1', keysEnv: encVar }, audit: { url: `postgres://${PG.user}@${PG.host}:${PG.port}/${meta}`, signingKey: { env: keyVar }, checkpointEvery: 5 } } },
  );
  t.after(async () => {
    await env.cleanup();
    await dropDb(meta);
  });
  for (const db of [env.sourceDb, env.targetDb]) await sql(db, `create table items (id int primary key, qty int not null); create table notes (id int primary key, body text)`);
  await sql(env.sourceDb, `insert into items select g, g from generate_series(1, 20) g`);
  await sql(env.sourceDb, `insert into items values (21, -5)`);
  const { rt } = await startRuntime(env);
  const base = `http://127.0.0.1:${rt.httpPort}`;

  const res = await fetch(`${base}/api/pipelines/items/runs`, { method: 'POST', headers: { 'x-syncline-user': 'alice' }, body: '{}' });
  assert.equal(res.status, 202);
  const run = (await res.json()) as SyncRun;
  const ended = await waitFor('the run to end', async () => {
    const r = (await (await fetch(`${base}/api/runs/${run.id}`)).json()) as SyncRun;
    return r.outcome !== 'running' ? r : undefined;
  }, 120_000, 200);
  assert.equal(ended.outcome, 'succeeded', ended.error);
  const letters = await waitFor('the invalid row dead-lettered', async () => {
    const l = (await (await fetch(`${base}/api/dlq?kind=invalid`)).json()) as { deadLetters: { id: string }[] };
    return l.deadLetters.length > 0 ? l.deadLetters : undefined;
  }, 60_000);
  // qty is masked (tables[].mask) wherever the dead letter is shown; an admin reveals it, with a reason, audited.
  const shown = await (await fetch(`${base}/api/dlq/${letters[0]!.id}`)).text();
  assert.doesNotMatch(shown, /"(qty|value)":\s*-5\b/, 'the masked column is not shown');
  assert.match(shown, /\*\*\*/);
  const noReason = await fetch(`${base}/api/dlq/${letters[0]!.id}/reveal`, { method: 'POST', headers: { 'x-syncline-user': 'frank' }, body: '{}' });
  assert.equal(noReason.status, 400);
  assert.match(((await noReason.json()) as { error: string }).error, /needs a reason/);
  const revealed = await fetch(`${base}/api/dlq/${letters[0]!.id}/reveal`, { method: 'POST', headers: { 'x-syncline-user': 'frank' }, body: JSON.stringify({ reason: 'ticket 42: which qty broke the rule' }) });
  assert.equal(revealed.status, 200);
  assert.match(await revealed.text(), /"field":"qty","rule":"min","message":"must be >= 0","value":-5\b/, 'revealed: the value as captured');
  const discard = await fetch(`${base}/api/dlq/${letters[0]!.id}/discard`, { method: 'POST', headers: { 'x-syncline-user': 'erin' }, body: JSON.stringify({ note: 'qty -5 is a test row' }) });
  assert.equal(discard.status, 200);
  // Reloads, refused (a table added to a manual pipeline) and applied (nothing to change), and a denied request.
  const next = structuredClone(env.config);
  next.pipelines.items!.tables.push({ ...next.pipelines.items!.tables[0]!, source: 'public.more' });
  await assert.rejects(rt.reload(next, 'ops'), /reload refused/);
  await rt.reload(structuredClone(env.config), 'ops');
  recordDenied({ actor: 'eve', role: 'viewer', method: 'POST', path: '/api/dlq/x/discard?pipeline=items', status: 403, reason: 'role operator needed' });
  await rt.stop(); // flushes the buffer and signs a last checkpoint

  const cliEnv = { [keyVar]: key };
  const list = await cli(['audit', 'list', '--json', '--limit', '50', '--config', env.configFile], cliEnv);
  assert.equal(list.code, 0, list.err);
  const entries = list.out.trim().split('\n').map((l) => JSON.parse(l) as AuditEntry).reverse();
  const actions = entries.map((e) => `${e.action} by ${e.actor}`);
  assert.ok(actions.includes('sync.run.start by alice'), actions.join('; '));
  assert.ok(actions.includes('sync.run.end by alice'), actions.join('; '));
  assert.ok(actions.includes('dlq.discard by erin'), actions.join('; '));
  const reveal = entries.find((e) => e.action === 'dlq.reveal')!;
  assert.deepEqual([reveal?.actor, reveal?.object, reveal?.details.reason], ['frank', `dlq:${letters[0]!.id}`, 'ticket 42: which qty broke the rule']);
  assert.equal(entries[0]!.action, 'process.start');
  // config.loaded with the file's SHA-256 at the start of a Runtime made in code, and with the bounded run.
  const fileSha = createHash('sha256').update(readFileSync(env.configFile)).digest('hex');
  const loaded = entries.filter((e) => e.action === 'config.loaded').map((e) => [e.details.at, e.details.sha256, e.details.run ?? null]);
  assert.deepEqual(loaded.slice(0, 2), [['start', fileSha, null], ['sync.run', fileSha, run.id]]);
  // Which keys encrypt and hash (a rotation shows as another activeKey): ids only.
  const startLoaded = entries.find((e) => e.action === 'config.loaded' && e.details.at === 'start')!;
  assert.deepEqual(startLoaded.details.encryption, { activeKey: 'k2', hashKey: 'k1', keyIds: ['k1', 'k2'] });
  assert.ok(!JSON.stringify(entries).includes(encKeys[0]!) && !JSON.stringify(entries).includes(encKeys[1]!), 'no key in the trail');
  assert.deepEqual(entries.filter((e) => e.action === 'config.reload').map((e) => [e.actor, e.details.outcome]), [['ops', 'refused'], ['ops', 'ok']]);
  const denied = entries.find((e) => e.action === 'api.denied')!;
  assert.deepEqual([denied.actor, denied.role, denied.object, denied.details.status], ['eve', 'viewer', 'POST /api/dlq/x/discard', 403]);
  assert.equal(entries.at(-1)!.action, 'process.stop');
  assert.ok(actions.some((a) => a.startsWith('schema.registered')), 'the capture registered the table\'s schema');
  const d = entries.find((e) => e.action === 'dlq.discard')!;
  assert.equal(d.object, `dlq:items/${letters[0]!.id}`);
  assert.equal(d.details.kind, 'invalid');
  assert.equal(d.details.outcome, 'ok');
  assert.match(String(d.details.note), /^sha256:/, 'the note is kept as a hash');
  assert.ok(!list.out.includes('qty -5'), 'no free text of the operator in the trail');
  const endRun = entries.find((e) => e.action === 'sync.run.end')!;
  assert.equal((endRun.details.counts as { applied: number }).applied, 20, JSON.stringify(endRun.details));

  const filtered = await cli(['audit', 'list', '--actor', 'erin', '--action', 'dlq.*', '--config', env.configFile], cliEnv);
  assert.equal(filtered.code, 0, filtered.err);
  assert.equal(filtered.out.trim().split('\n').length, 1);
  assert.match(filtered.out, /erin {2}dlq\.discard {2}dlq:items\//);

  let verify = await cli(['audit', 'verify', '--config', env.configFile], cliEnv);
  assert.equal(verify.code, 0, verify.out + verify.err);
  assert.match(verify.out, /audit trail intact: \d+ entries .*[1-9]\d* signed checkpoints verified/);

  const seq = d.seq;
  await sql(meta, `begin; set local session_replication_role = replica; update syncline_audit set actor = 'mallory' where seq = ${seq}; commit`);
  verify = await cli(['audit', 'verify', '--config', env.configFile], cliEnv);
  assert.equal(verify.code, 1, verify.out + verify.err);
  assert.match(verify.out, new RegExp(`first problem at seq ${seq}: entry seq ${seq} .*dlq\\.discard by mallory\\) was altered`));

  const exported = await cli(['audit', 'export', '--format', 'jsonl', '--config', env.configFile], cliEnv);
  assert.equal(exported.code, 0, exported.err);
  const lines = exported.out.trim().split('\n').map((l) => JSON.parse(l) as { checkpoint?: boolean; hash: string });
  assert.equal(lines.filter((l) => !l.checkpoint).length, entries.length);
  assert.ok(lines.some((l) => l.checkpoint));
});
