/**
 * kill -9 of the capture process mid-stream, then a restart: nothing is lost (the slot's confirmed
 * LSN only covers what Kafka acknowledged). Also: SIGTERM drains and exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { checksum, sleep, spawnCli, startRuntime, testEnv, waitFor, withClient, soak } from './helpers.js';

const DDL = `create table items (id bigint primary key, n int not null, label text, updated_at timestamptz not null default clock_timestamp())`;

test('capture killed with SIGKILL mid-stream and restarted loses nothing', async (t) => {
  const env = await testEnv([{ name: 'items-sync', tables: [{ source: 'public.items' }] }]);
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, (c) => c.query(DDL));
  await withClient(env.targetDb, (c) => c.query(DDL));

  // Processor in this process; capture as a separate OS process we can kill.
  const proc = await startRuntime(env, ['process', 'sink']);
  let capture = spawnCli(['capture', '--config', env.configFile]);

  let writing = true;
  let committed = 0;
  const writer = withClient(env.sourceDb, async (c) => {
    for (let i = 1; writing; i++) {
      await c.query('begin');
      await c.query(`insert into items (id, n, label) select g, 0, 'x' from generate_series($1::int * 20 + 1, $1::int * 20 + 20) g`, [i]);
      await c.query(`update items set n = n + 1, updated_at = clock_timestamp() where id between $1::int * 20 + 1 and $1::int * 20 + 5`, [i]);
      await c.query(`delete from items where id = $1::int * 20 + 7`, [i]);
      await c.query('commit');
      committed += 26;
      if (i % 10 === 0) await sleep(5);
    }
  });

  for (let round = 0; round < soak(1, 3); round++) {
    await waitFor('capture to produce some changes', async () => (await checksum(env.targetDb, 'items', 'id')).count > 200 * (round + 1), 60_000);
    capture.kill('SIGKILL');
    await once(capture, 'exit');
    await sleep(300);
    capture = spawnCli(['capture', '--config', env.configFile]);
  }
  await sleep(1000);
  writing = false;
  await writer;
  assert.ok(committed > 1000, `committed ${committed} changes`);

  await waitFor('target to converge after the kills', async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'items', 'id'), checksum(env.targetDb, 'items', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  }, 120_000, 500);

  // SIGTERM: drains and exits cleanly with code 0.
  capture.kill('SIGTERM');
  const [code] = await once(capture, 'exit');
  assert.equal(code, 0, 'capture exits 0 on SIGTERM');
});
