/**
 * The first start of a pipeline with 60 tables (one partition each) on the warm shared broker
 * converges. Capture and the processor of the one pipeline start side by side and both need the
 * pipeline's change topics and its dead-letter topic: before topic creation was made one in-flight
 * creation per topic that waits for every partition's leader, this start failed every time with
 * `cannot create topics <prefix>.dlq.<pipeline>: This server does not host this topic-partition`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { checksum, spawnCli, sql, testEnv, waitFor } from './helpers.js';

const TABLES = 60;
const names = Array.from({ length: TABLES }, (_, i) => `t${String(i).padStart(2, '0')}`);
const ddl = (t: string) => `create table ${t} (id int primary key, v text not null)`;

test(`first start of a pipeline with ${TABLES} tables (one partition each) on the warm broker converges`, async (t) => {
  const env = await testEnv([{ name: 'wide-sync', tables: names.map((n) => ({ source: `public.${n}` })), conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  // One partition per change topic, as in the report (every table's topic is created at start).
  const doc = JSON.parse(JSON.stringify({ ...env.config, kafka: { ...env.config.kafka, partitions: 1 } }));
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));
  for (const db of [env.sourceDb, env.targetDb]) await sql(db, names.map(ddl).join(';\n'));
  await sql(env.sourceDb, names.map((n) => `insert into ${n} select g, 'seed' from generate_series(1, 20) g`).join(';\n'));

  const p = spawnCli(['start', '--config', env.configFile]);
  t.after(() => void (p.exitCode === null && p.kill('SIGKILL')));
  const tail = () => (p as ChildProcess & { stderrTail(): string }).stderrTail();
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-8000)));

  // Changes made while the pipeline starts are streamed after the snapshot.
  await sql(env.sourceDb, names.map((n) => `update ${n} set v = 'changed' where id % 3 = 0; insert into ${n} values (100, 'live')`).join(';\n'));
  await waitFor(`all ${TABLES} tables to converge`, async () => {
    if (p.exitCode !== null) return 'exited'; // fails below, with its output
    for (const n of names) {
      const [s, d] = await Promise.all([checksum(env.sourceDb, n, 'id'), checksum(env.targetDb, n, 'id')]);
      if (s.md5 !== d.md5 || s.count !== d.count) return false;
    }
    return true;
  }, 240_000, 1000);
  assert.equal(p.exitCode, null, `syncline start exited: ${tail()}${out}`);
  p.kill('SIGTERM');
  const [code] = p.exitCode !== null ? [p.exitCode] : await once(p, 'exit');
  assert.equal(code, 0, `clean exit after SIGTERM: ${tail()}`);
  assert.doesNotMatch(out, /"level":50/, 'no error logged');
});
