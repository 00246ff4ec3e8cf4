/**
 * Bounded sync runs (src/sync/) of a MariaDB source: position() is the binlog's end now
 * (SHOW MASTER STATUS in the source's 'file number/offset' notation), and a manual run ends with
 * the target holding what was written before it started; a later run picks up later writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sleep, startRuntime, waitFor } from '../../../test/helpers.js';
import { my, myEnv, sameRows } from './harness.js';
import { binlogLsn } from './mariadb-source.js';
import { position } from '../../../src/core/envelope.js';
import type { SyncRun } from '../../../src/sync/runs.js';

test('MariaDB source: manual bounded runs end at the binlog position asked at their start', async (t) => {
  const env = await myEnv(['items']);
  t.after(() => env.cleanup());
  // mode manual (allowed: the mariadb source has position()); set on the parsed config.
  env.config.pipelines[env.pipeline]!.mode = 'manual';
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50)) ENGINE=InnoDB`);
  await my(env.db, `INSERT INTO items SELECT seq, 0, 'a' FROM seq_1_to_200`);
  const { rt } = await startRuntime(env as never);
  await sleep(1500);
  const c = rt.sync.controllers.get(env.pipeline)!;
  assert.ok(c, 'a bounded pipeline has a controller');

  const [status] = await my(undefined, 'SHOW MASTER STATUS');
  const before = binlogLsn(String(status!.File), Number(status!.Position));
  const r1: SyncRun = await c.wait(c.trigger('manual', 'test').id)!;
  assert.equal(r1.outcome, 'succeeded', r1.error);
  assert.ok(/^[0-9A-F]+\/[0-9A-F]+$/.test(r1.sourceEnd!), `binlog notation: ${r1.sourceEnd}`);
  assert.ok(position(r1.sourceEnd!, 0) >= position(before, 0), `the run's end (${r1.sourceEnd}) is at or after the binlog position before it (${before})`);
  assert.ok(await sameRows(env as never, false), 'the target holds the rows written before the run');
  assert.equal(r1.counts.applied, 200);

  await my(env.db, `UPDATE items SET n = 1, label = 'b' WHERE id <= 30; DELETE FROM items WHERE id > 190`);
  await sleep(1000);
  assert.equal(await sameRows(env as never, false), false, 'nothing runs between runs');
  const r2 = await c.wait(c.trigger('manual', 'test').id)!;
  assert.equal(r2.outcome, 'succeeded', r2.error);
  await waitFor('the second run to have applied the writes', async () => sameRows(env as never, false), 5000, 200);
  assert.equal(r2.counts.applied, 40);
});
