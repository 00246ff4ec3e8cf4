/**
 * npm test: alone (starts private services late, on a timeline).
 * A dependency that is not ready yet is waited for, not fatal: `syncline start` started while Kafka,
 * the schema registry or Redis is down waits for it (one `dependency.waiting` warning naming it, no
 * error, the process stays up), and once it is started converges; SIGTERM then exits 0 and the
 * wait's end is logged once (`dependency.ready`). Each late service is a private instance
 * (test/private-stack.ts: scripts/stack.sh on free ports and a run dir of its own), never the shared one.
 */
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checksum, cliArgs, ROOT, sql, testEnv, waitFor } from './helpers.js';
import { logLines, privateStack, spawnGroup, type PrivateStack, type Service } from './private-stack.js';

const DDL = `create table items (id int primary key, v text not null, updated_at timestamptz not null default clock_timestamp())`;
let stack: PrivateStack;

before(async () => {
  stack = await privateStack();
});
after(() => stack?.down());

async function startsBeforeItsDependency(t: TestContext, service: Service, point: (doc: Record<string, any>) => void, awaited: RegExp): Promise<void> {
  const env = await testEnv([{ name: 'items-sync', tables: [{ source: 'public.items' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'seed ' || g from generate_series(1, 200) g`);
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8'));
  point(doc);
  const file = join(env.configFile, '..', `late-${service}.yaml`);
  writeFileSync(file, JSON.stringify(doc, null, 2));

  // A start deadline long enough for a JVM started on a busy machine; the default is 120 s.
  const c = spawnGroup(process.execPath, cliArgs(['start', '-c', file]), { SYNCLINE_LOG_LEVEL: 'info', SYNCLINE_START_TIMEOUT_MS: '400000' });
  t.after(() => c.kill());
  const waiting = () => logLines(c.out()).filter((l) => l.level === 40 && String(l.msg).startsWith('dependency.waiting') && awaited.test(String(l.awaited)));
  await waitFor(`syncline to say it waits for ${service}`, async () => {
    if (c.p.exitCode !== null) return 'exited';
    return waiting().length > 0;
  }, 120_000, 250);
  assert.equal(c.p.exitCode, null, `syncline waits for ${service} instead of exiting:\n${c.out().slice(-3000)}`);

  await stack.up(service);
  await sql(env.sourceDb, `update items set v = 'changed', updated_at = clock_timestamp() where id % 3 = 0`);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'late ' || g from generate_series(1000, 1099) g`);
  await waitFor('the target to converge', async () => {
    if (c.p.exitCode !== null) return 'exited';
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  }, 420_000, 500);
  assert.equal(c.p.exitCode, null, `still running after ${service} came:\n${c.out().slice(-3000)}`);
  c.p.kill('SIGTERM');
  assert.equal(await c.exit, 0, `exit 0 after SIGTERM:\n${c.out().slice(-2000)}`);

  const lines = logLines(c.out());
  assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error logged');
  assert.equal(waiting().length, 1, `the wait for ${service} is said once: ${JSON.stringify(waiting())}`);
  assert.equal(lines.filter((l) => l.level === 30 && String(l.msg).startsWith('dependency.ready') && awaited.test(String(l.awaited))).length, 1, 'and its end once');
  const others = lines.filter((l) => l.level === 40 && !String(l.msg).startsWith('dependency.waiting'));
  assert.deepEqual(others.map((l) => JSON.stringify(l)), [], 'no other warning');
}

test('syncline started while Kafka is down waits for it; Kafka started → converges', async (t) => {
  await startsBeforeItsDependency(t, 'kafka', (d) => (d.kafka.brokers = [stack.brokers]), new RegExp(`^Kafka at ${stack.brokers}`));
});

test('syncline started while the schema registry is down waits for it; the registry started → converges', async (t) => {
  await startsBeforeItsDependency(t, 'registry', (d) => (d.schemaRegistry = { url: stack.registryUrl }), /^schema registry at /);
});

test('syncline started while Redis is down waits for it; Redis started → converges', async (t) => {
  await startsBeforeItsDependency(t, 'redis', (d) => (d.redis = { url: stack.redisUrl }), new RegExp(`^Redis at 127\\.0\\.0\\.1:${stack.ports.redis}`));
});
