/**
 * SIGTERM sent to the pid a user gets from the documented way of starting syncline reaches it:
 * `npm run syncline -- start` (package.json's script execs node, so npm's child is syncline itself
 * and the signal npm forwards is syncline's), which drains (capture acknowledges what Kafka has,
 * consumers finish and commit) and exits 0, leaving no process behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { ROOT, sql, testEnv, waitFor } from './helpers.js';

/** Whether a process exists (signal 0 probes without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test('SIGTERM to the pid of `npm run syncline -- start` drains syncline, exit 0, nothing left running', async (t) => {
  const env = await testEnv([{ name: 'sig', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, 'create table items (id int primary key, name text)');
  await sql(env.targetDb, 'create table items (id int primary key, name text)');
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(1, 100) g`);

  const npm = spawn('npm', ['run', 'syncline', '--', 'start', '--config', env.configFile], {
    cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, so a failed test can remove whatever it left (below)
  });
  let out = '';
  npm.stdout.on('data', (d: Buffer) => (out += d.toString()));
  npm.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null }>((r) => npm.on('close', (code, signal) => r({ code, signal }))); // close: after its output is read
  t.after(() => {
    try {
      process.kill(-npm.pid!, 'SIGKILL'); // the group: npm and anything it started (only when the test failed)
    } catch {
      // already gone
    }
  });

  const count = async () => Number((await sql(env.targetDb, 'select count(*)::int as n from items')).rows[0].n);
  await waitFor('syncline started and copied the table', async () => out.includes('"msg":"syncline.started"') && (await count()) === 100, 120000);
  // npm's child is syncline (no shell in between).
  const children = readFileSync(`/proc/${npm.pid}/task/${npm.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.equal(children.length, 1, `children of npm: ${children.join(' ')}`);
  const syncline = children[0]!;
  const cmdline = readFileSync(`/proc/${syncline}/cmdline`, 'utf8').split('\0');
  assert.equal(cmdline[0], 'node', cmdline.join(' '));
  assert.ok(cmdline.includes('src/cli/main.ts') && cmdline.includes('start'), cmdline.join(' '));

  // Changes in flight when the signal comes are handed on before it exits.
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(101, 150) g`);
  npm.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, out.slice(-3000));
  assert.ok(!alive(syncline), `syncline (pid ${syncline}) still runs after npm exited`);
  assert.match(out, /"signal":"SIGTERM","msg":"signal.received: draining"/);
  assert.match(out, /"msg":"runtime.stopped"/);
});
