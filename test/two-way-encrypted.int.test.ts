/**
 * Two-way sync with field encryption on the real stack: A ⇄ B, latest-timestamp on both pipelines,
 * the timestamp field (and name) encrypted by both, both targets `decrypt: true`. The peer pipelines
 * compare the decrypted times; a delete decided for the peer is guarded by the time as the target
 * stores it (its plaintext, also for a row the same batch wrote a moment before).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { checksum, sleep, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';

const DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;

async function differences(A: string, B: string): Promise<string> {
  const rows = async (db: string) => new Map((await sql(db, 'select * from items')).rows.map((r) => [r.id as number, JSON.stringify(r)]));
  const [a, b] = await Promise.all([rows(A), rows(B)]);
  const ids = [...new Set([...a.keys(), ...b.keys()])].filter((id) => a.get(id) !== b.get(id)).sort((x, y) => x - y);
  return ids.slice(0, 10).map((id) => `${id}: ${a.get(id) ?? 'none'} | ${b.get(id) ?? 'none'}`).join('; ');
}

test('encrypted timestamp (decrypting targets): deletes meet updates, and an update and delete of a key in one transaction', async (t) => {
  const keysEnv = `SYNCLINE_TEST_KEYS_${randomBytes(4).toString('hex').toUpperCase()}`;
  process.env[keysEnv] = `k1=${randomBytes(32).toString('hex')}`;
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const table = { source: 'public.items', encrypt: ['updated_at', 'name'] };
  const env = await testEnv([
    { name: 'a-to-b', tables: [table], conflict, peer: 'b-to-a', target: { decrypt: true } },
    { name: 'b-to-a', tables: [table], conflict, peer: 'a-to-b', reverse: true, target: { decrypt: true } },
  ], { extra: { encryption: { activeKey: 'k1', keysEnv } } });
  t.after(() => env.cleanup());
  const A = env.sourceDb;
  const B = env.targetDb;
  await sql(A, DDL);
  await sql(B, DDL);
  await sql(A, `insert into items (id, name, qty) select g, 'item ' || g, g from generate_series(1, 30) g`);
  const { rt } = await startRuntime(env);
  const h = (n: string) => rt.pipelines.find((p) => p.name === n)!;
  const same = async () => {
    const [a, b] = await Promise.all([checksum(A, 'items', 'id'), checksum(B, 'items', 'id')]);
    return a.md5 === b.md5 && a.count === b.count;
  };
  await waitFor('B has the snapshot of A', same);
  // On 20 rows: 1-10 B updates then A deletes (deleted on both); 11-20 A deletes then B
  // updates (kept on both). The peer pipelines compare the decrypted times.
  await withClient(A, (a) => withClient(B, async (b) => {
    await b.query('begin');
    await b.query(`update items set name = 'B kept?', qty = qty + 1, updated_at = clock_timestamp() where id between 1 and 10`);
    await b.query(`select id from items where id between 11 and 20 for update`);
    await sleep(5);
    await a.query(`delete from items where id between 1 and 20`);
    await sleep(5);
    await b.query(`update items set name = 'B wins', qty = qty + 1, updated_at = clock_timestamp() where id between 11 and 20`);
    await b.query('commit');
  }));
  // A row updated and deleted in one transaction on A: a→b plans the update, then decides the delete
  // for the peer, guarded by the time the update wrote into B (its plaintext, B decrypts).
  await withClient(A, async (a) => {
    await a.query('begin');
    await a.query(`update items set name = 'A last', updated_at = clock_timestamp() where id between 21 and 25`);
    await a.query(`delete from items where id between 21 and 25`);
    await a.query('commit');
  });
  await waitFor('A and B identical', same, 60000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}`);
  });
  const ids = async (db: string) => (await sql(db, 'select id from items order by id')).rows.map((r) => r.id as number);
  const expected = [...Array.from({ length: 10 }, (_, i) => 11 + i), ...Array.from({ length: 5 }, (_, i) => 26 + i)];
  assert.deepEqual(await ids(A), expected, 'A: 1-10 and 21-25 deleted');
  assert.deepEqual(await ids(B), expected, 'B: the same');
  assert.equal((await sql(A, `select count(*)::int as n from items where name = 'B wins'`)).rows[0].n, 10, "A holds B's later updates in plaintext");
  const sAB = h('a-to-b').applier!.stats;
  const sBA = h('b-to-a').applier!.stats;
  t.diagnostic(`conflicts a→b=${sAB.conflicts} b→a=${sBA.conflicts}; republished a→b=${sAB.republished} b→a=${sBA.republished}`);
  assert.ok(sAB.conflicts >= 10 && sBA.conflicts >= 10, 'the pairs met as conflicts on both sides');
  assert.equal(sAB.deadLettered + sBA.deadLettered, 0, 'nothing dead-lettered');
});
