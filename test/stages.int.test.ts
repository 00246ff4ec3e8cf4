/**
 * The stages as separate OS processes (`syncline capture`, `syncline process`, `syncline sink`)
 * converge and drain on SIGTERM with exit code 0; an idle slot does not retain WAL (heartbeats);
 * `syncline config validate` refuses a malformed file with its line number.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { checksum, spawnCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const DDL = `create table events (id bigint primary key, kind text not null, payload jsonb, updated_at timestamptz not null default clock_timestamp())`;

async function exitCode(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  const [code] = await once(p, 'exit');
  return code as number | null;
}

test('capture, process and sink as separate processes converge, and each drains on SIGTERM with exit 0', async (t) => {
  const env = await testEnv([{ name: 'events-sync', tables: [{ source: 'public.events' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into events (id, kind, payload) select g, 'seed', jsonb_build_object('g', g) from generate_series(1, 300) g`);

  const procs = ['capture', 'process', 'sink'].map((stage) => spawnCli([stage, '--config', env.configFile]));
  t.after(() => procs.forEach((p) => p.exitCode === null && p.kill('SIGKILL')));
  for (let i = 0; i < 20; i++) {
    await sql(env.sourceDb, `insert into events (id, kind) select g, 'live' from generate_series(1000 + $1::int * 50, 1049 + $1::int * 50) g`, [i]);
    await sql(env.sourceDb, `update events set kind = 'changed', updated_at = clock_timestamp() where id % 7 = $1::int % 7`, [i]);
    await sql(env.sourceDb, `delete from events where id = $1::int * 11`, [i + 1]);
  }
  await waitFor('the separate stages to converge', async () => {
    for (const p of procs) if (p.exitCode !== null) throw new Error(`a stage exited with ${p.exitCode}: ${(p as ChildProcess & { stderrTail(): string }).stderrTail()}`);
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'events', 'id'), checksum(env.targetDb, 'events', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  }, 120_000, 500);

  for (const p of procs) p.kill('SIGTERM');
  const codes = await Promise.all(procs.map(exitCode));
  assert.deepEqual(codes, [0, 0, 0], 'every stage exits 0 after SIGTERM');
});

test('an idle slot keeps up with the server through heartbeats (no WAL retained)', async (t) => {
  const env = await testEnv([{ name: 'quiet-sync', tables: [{ source: 'public.quiet' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
  t.after(() => env.cleanup());
  await sql(env.sourceDb, `create table quiet (id int primary key)`);
  await sql(env.sourceDb, `create table noisy (id serial primary key, filler text)`); // not captured
  await sql(env.targetDb, `create table quiet (id int primary key)`);
  await startRuntime(env, ['capture']);
  const slot = env.slot('quiet-sync');
  await waitFor('slot to stream', async () => (await sql('postgres', `select active from pg_replication_slots where slot_name = $1`, [slot])).rows[0]?.active === true);

  // Other activity in the database produces WAL that the slot must not hold on to.
  for (let i = 0; i < 20; i++) await sql(env.sourceDb, `insert into noisy (filler) select repeat('x', 1000) from generate_series(1, 200)`);
  const walAfter = (await sql(env.sourceDb, `select pg_current_wal_lsn()::text as lsn`)).rows[0].lsn as string;
  await waitFor('the idle slot to confirm past the other activity', async () => {
    const r = await sql('postgres', `select confirmed_flush_lsn >= $2::pg_lsn as caught_up from pg_replication_slots where slot_name = $1`, [slot, walAfter]);
    return r.rows[0]?.caught_up === true;
  }, 60_000, 500);
});

test('`syncline config validate` refuses a malformed config with file and line, exit code 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-cfg-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    ['version: 1', 'pipelines:', '  users-sync:', '    source:', '      type: postgres', '      connection: { database: src }', '      slot: s1', '      publication: p1', '    target:', '      type: postgres', '      connection: { database: dst }', '    tabels:', '      - source: public.users', ''].join('\n'),
  );
  const p = spawnCli(['config', 'validate', file]);
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const code = await exitCode(p);
  assert.equal(code, 1);
  assert.match(out, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:12:5: pipelines\\.users-sync(\\.tabels)?: unknown key 'tabels'`));
  assert.match(out, /did you mean 'tables'/);

  const good = spawnCli(['config', 'validate', 'configs/data-sync-config.yaml']);
  let okOut = '';
  good.stdout?.on('data', (d: Buffer) => (okOut += d.toString()));
  assert.equal(await exitCode(good), 0);
  assert.match(okOut, /OK: .*3 pipelines: users-sync, orders-sync, inventory-to-mariadb/);
});
