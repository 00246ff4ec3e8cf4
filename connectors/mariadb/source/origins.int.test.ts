/**
 * Two-way tags read back (../origins.ts): a MariaDB sink given an origin registers its names in
 * syncline_origins and writes with their server ids; the source finds those names for the
 * transactions' GTID server ids. Seen in the change topic: a re-published row (changed and changed
 * back) arrives as one update of the row as it is, a decided delete carries the exact commit time the
 * sink was given, a user's delete is timed at the end of its binlog second.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { startRuntime, waitFor } from '../../../test/helpers.js';
import { positionToBigInt, type Row } from '../../../src/core/envelope.js';
import type { SinkRecord } from '../../../src/sink/sink.js';
import { MariadbSink } from '../sink.js';
import { ORIGINS_TABLE, originServerId } from '../origins.js';
import { changes, my, myEnv, MY } from './harness.js';

const log = pino({ level: 'silent' });

function upsert(table: string, key: Row, values: Row): SinkRecord {
  return { table, op: 'upsert', key, values: { ...key, ...values }, keep: [], position: '0000000000000001:00000000', hash: null, sourceTsMs: Date.now(), origin: { topic: 't', partition: 0, offset: '1' } };
}

test('a tagged sink write, a re-published row and a decided delete, as the source reads them back', async (t) => {
  const env = await myEnv(['items'], { snapshot: 'never' });
  const origin = `syncline:${env.prefix}:peer`;
  const sink = new MariadbSink({ type: 'mariadb', connection: { ...MY, database: env.db, ssl: false, sslVerify: true }, poolSize: 2, autoCreate: false, autoEvolve: false, lockTimeoutS: 10 }, { pipeline: 'peer', log, origin });
  t.after(async () => {
    await sink.close();
    await env.cleanup();
  });
  await my(env.db, `CREATE TABLE items (id BIGINT PRIMARY KEY, n INT NOT NULL, label VARCHAR(50), at DATETIME(6) NOT NULL DEFAULT '2024-05-05 10:00:59.500000')`);
  await startRuntime(env as never);
  const table = `${env.db}.items`;
  // snapshot: never streams from the binlog's end at the moment capture starts streaming, which
  // can be after start() returned: probe rows (negative ids) until one is in the topic (a fixed
  // wait was too short on a loaded machine: the writes before it were never read).
  let probe = 0;
  await waitFor('a probe row in the topic', async () => {
    await my(env.db, `INSERT INTO items (id, n, label) VALUES (${--probe}, 0, 'probe')`);
    return (await changes(env, 'items')).length >= 1;
  }, 60_000, 1000);
  await my(env.db, `INSERT INTO items (id, n, label) VALUES (1, 7, 'user')`);
  await sink.writeBatch([upsert(table, { id: 2n }, { n: 1, label: 'sink' })]);
  await sink.republish(table, [{ id: 1n }], 'update');
  const decidedAt = 1_700_000_000_123;
  await sink.republishDelete(table, [{ key: { id: 2n }, guard: {} }], decidedAt);
  await my(env.db, `DELETE FROM items WHERE id = 1`);

  const all = await waitFor('five changes in the topic', async () => {
    const c = (await changes(env, 'items')).filter((e) => ((e.after?.id ?? e.before?.id) as bigint) > 0n);
    return c.length >= 5 ? c : null;
  }, 60_000);
  // The topic's partitions hold the keys apart: binlog order is commit position, then index.
  all.sort((x, y) => (positionToBigInt(x.source.commitPos) < positionToBigInt(y.source.commitPos) ? -1 : positionToBigInt(x.source.commitPos) > positionToBigInt(y.source.commitPos) ? 1 : x.source.idx - y.source.idx));
  assert.deepEqual(all.map((e) => `${e.op}${String(e.after?.id ?? e.before?.id)}`), ['c1', 'c2', 'u1', 'd2', 'd1']);
  const [, , republished, decided, userDelete] = all;
  assert.deepEqual(republished!.after, republished!.before, 're-published: one update, the row as it is');
  assert.deepEqual(republished!.after, { id: 1n, n: 7, label: 'user', at: '2024-05-05T10:00:59.500000' });
  assert.equal(decided!.source.tsMs, decidedAt, "the decided delete's commit time, to the millisecond");
  assert.equal(userDelete!.source.tsMs % 1000, 999, "a user's delete: the end of its binlog second");

  const names = await my(env.db, `SELECT server_id, origin FROM ${ORIGINS_TABLE} ORDER BY origin`);
  assert.deepEqual(names.map((r) => String(r.origin)), [`${origin}/republish-update:0`, `${origin}/republish:0`, `${origin}:0`]);
  for (const r of names) assert.equal(Number(r.server_id), originServerId(String(r.origin)), 'first probe: no collision');
});
