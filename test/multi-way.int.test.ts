/**
 * Multi-way sync on the real stack (docs/conflicts.md, Multi-way sync; ADR 0040): three PostgreSQL
 * databases A, B, C in a mesh, a pipeline each way between every two (six pipelines, peers pairwise,
 * latest-timestamp on updated_at); the second pipeline leaving each database follows the first, so
 * each database has one capture. The same keys edited on all three at once with known times: the
 * latest wins everywhere, a tie goes to the same row everywhere, a later delete removes the row
 * everywhere, an earlier one loses to a later edit everywhere, and every capture left out what the
 * other pipelines wrote into its database; a delete and an older row carried in one batch (the shape
 * the storm's failures had). A short storm of random edits from all three sides (the full one is
 * `npm run storm -- --sides 3`): equal at the end, and each capture carried no more than its side's
 * changes and the decisions re-published there (no loop).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, settledWhen, sql, startRuntime, testEnv, waitFor, type TestPipeline } from './helpers.js';
import { runStorm, stormText } from './storm/harness.js';

const DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;
const SIDES = ['A', 'B', 'C'] as const;

async function mesh(t: TestContext) {
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const lower = (x: string) => x.toLowerCase();
  const pipelines: TestPipeline[] = SIDES.flatMap((from, i) => {
    const others = SIDES.filter((x) => x !== from);
    return others.map((to, k) => ({
      name: `${lower(from)}-to-${lower(to)}`,
      tables: [{ source: 'public.items' }],
      conflict,
      peer: `${lower(to)}-to-${lower(from)}`,
      between: [i, SIDES.indexOf(to)] as [number, number],
      ...(k > 0 ? { follows: `${lower(from)}-to-${lower(others[0]!)}` } : {}),
    }));
  });
  const env = await testEnv(pipelines, { databases: 3 });
  t.after(() => env.cleanup());
  const [A, B, C] = env.dbs as [string, string, string];
  for (const d of [A, B, C]) await sql(d, DDL);
  await sql(A, `insert into items (id, name, qty) select g, 'item ' || g, g from generate_series(1, 20) g`);
  const { rt } = await startRuntime(env);
  const sums = () => Promise.all([A, B, C].map((d) => checksum(d, 'items', 'id')));
  const same = async () => {
    const s = await sums();
    return s.every((x) => x.md5 === s[0]!.md5 && x.count === s[0]!.count);
  };
  const settled = settledWhen(rt, same);
  await waitFor('B and C hold the snapshot of A', same);
  const row = async (d: string, id: number) => (await sql(d, 'select name, updated_at from items where id = $1', [id])).rows[0] as { name: string } | undefined;
  const rowText = async (id: number) => (await Promise.all([A, B, C].map((d) => row(d, id)))).map((r) => r?.name ?? 'none').join(' | ');
  return { A, B, C, rt, settled, row, rowText };
}

test('A, B, C edit the same keys at once: the latest write wins on all three, a tie the same row, a later delete everywhere, an earlier one nowhere', async (t) => {
  const { A, B, C, rt, settled, rowText } = await mesh(t);
  const base = Date.now() + 60_000; // later than every row's updated_at: these edits are the newest
  const at = (ms: number) => new Date(base + ms).toISOString();
  const put = (d: string, id: number, name: string, ms: number) => sql(d, 'update items set name = $2, updated_at = $3 where id = $1', [id, name, at(ms)]);
  await Promise.all([
    // 1: three edits, C's is the latest.
    put(A, 1, 'A 1', 10), put(B, 1, 'B 1', 20), put(C, 1, 'C 1', 30),
    // 2: A and C at the same time (a tie: the greater content hash wins, the same on every node), B earlier.
    put(A, 2, 'A 2', 40), put(B, 2, 'B 2', 5), put(C, 2, 'C 2', 40),
    // 3: edits on A and B (times ahead of now), deleted on C (timed by its commit, now): the delete
    // is the earliest of the three, B's edit the latest; it survives everywhere.
    put(A, 3, 'A 3', 10), put(B, 3, 'B 3', 50), sql(C, 'delete from items where id = 3'),
    // 4: an edit on A with a time in the past, deleted on B and C: the delete is later and wins everywhere.
    sql(A, `update items set name = 'A 4', updated_at = now() - interval '1 hour' where id = 4`), sql(B, 'delete from items where id = 4'), sql(C, 'delete from items where id = 4'),
    // 5: inserted on all three with different times: the latest (A's) everywhere.
    sql(A, 'insert into items values (100, $1, 1, $2)', ['A 100', at(90)]), sql(B, 'insert into items values (100, $1, 1, $2)', ['B 100', at(70)]), sql(C, 'insert into items values (100, $1, 1, $2)', ['C 100', at(80)]),
  ]);
  await waitFor('A, B and C agree and nothing moves', settled, 120000).catch(async (err: Error) => {
    const rows = await Promise.all([1, 2, 3, 4, 100].map(async (id) => `${id}: ${await rowText(id)}`));
    const stats = rt.pipelines.map((p) => `${p.name} ${JSON.stringify({ ...p.applier!.stats, captured: p.capture?.stats.changes, echo: p.capture?.stats.echoSkipped })}`);
    throw new Error(`${err.message}; rows (A | B | C): ${rows.join('; ')}; ${stats.join('; ')}`);
  });
  assert.equal(await rowText(1), 'C 1 | C 1 | C 1');
  const tie = await rowText(2);
  assert.ok(tie === 'A 2 | A 2 | A 2' || tie === 'C 2 | C 2 | C 2', `one of the tied rows on every side: ${tie}`);
  assert.equal(await rowText(3), 'B 3 | B 3 | B 3', 'the later edit outlives the earlier delete');
  assert.equal(await rowText(4), 'none | none | none', 'the later delete removes the row everywhere');
  assert.equal(await rowText(100), 'A 100 | A 100 | A 100');
  // No echo: each capture left out what the two pipelines writing into its database wrote there.
  for (const p of rt.pipelines.filter((x) => x.capture)) {
    t.diagnostic(`${p.name}: captured ${p.capture!.stats.changes}, echo skipped ${p.capture!.stats.echoSkipped}`);
    assert.ok(p.capture!.stats.echoSkipped > 0, `${p.name}'s capture skipped the writes syncline made into its database`);
  }
  for (const p of rt.pipelines) assert.equal(p.applier!.stats.deadLettered, 0, `${p.name}: nothing dead-lettered`);
});

test('a later delete and an older row carried in one batch: the row loses to the delete there, and the delete reaches the node that took a newer row meanwhile', async (t) => {
  const { A, B, C, rt, settled, rowText } = await mesh(t);
  // B's changes wait in Kafka for A and C; A's for B.
  for (const p of ['b-to-a', 'b-to-c', 'a-to-b']) rt.pausePipeline(p, 'test');
  const t1 = (await sql(A, `update items set name = 'A new', updated_at = clock_timestamp() where id = 7 returning updated_at`)).rows[0]!.updated_at as Date;
  await waitFor('C holds A new', async () => (await rowText(7)) === 'A new | item 7 | A new');
  // On B: a delete (timed by its commit, after A's edit), then the key inserted again with a time just before A's edit.
  await sql(B, 'delete from items where id = 7');
  await sql(B, `insert into items values (7, 'B old', 1, $1::timestamptz - interval '1 millisecond')`, [t1]);
  rt.resumePipeline('a-to-b', 'test');
  await waitFor('B takes A new (later than its own row)', async () => (await rowText(7)) === 'A new | A new | A new');
  // B's delete and its older row reach A and C together: the delete is the latest version of the key.
  rt.resumePipeline('b-to-a', 'test');
  rt.resumePipeline('b-to-c', 'test');
  await waitFor('A, B and C agree and nothing moves', settled, 120000).catch(async (err: Error) => {
    throw new Error(`${err.message}; rows (A | B | C): ${await rowText(7)}`);
  });
  // Before: A and C wrote the older row right after the delete, and relayed nothing; B kept A new.
  assert.equal(await rowText(7), 'none | none | none', 'the delete, the latest version, wins on every node');
  for (const p of rt.pipelines) assert.equal(p.applier!.stats.deadLettered, 0, `${p.name}: nothing dead-lettered`);
});

test('storm on three databases (short; `npm run storm -- --sides 3` is the full one): random updates, upserts and deletes on A, B and C end equal, with no loop', async (t) => {
  const r = await runStorm({ sides: 3, seconds: 15, rate: 60, rows: 300, keys: 400, clients: 2, settleMs: 120000, log: (l) => t.diagnostic(l) });
  t.diagnostic(stormText(r));
  assert.equal(r.differingCount, 0, `keys that differ: ${r.differing.join('; ')}`);
  assert.notEqual(r.convergedAfterS, null, 'A, B and C agreed and nothing was applied for 3 s');
  for (const [n, p] of Object.entries(r.pipelines)) assert.equal(p.deadLettered, 0, `${n}: nothing dead-lettered`);
  assert.ok(r.transactions.A! + r.transactions.B! + r.transactions.C! > 1500, `${r.transactions.A! + r.transactions.B! + r.transactions.C!} transactions`);
  // No loop: each database's capture carried only its own side's changes, the snapshot and the
  // decisions the pipelines writing into it re-published there; anything more would be an echo
  // (the settle check above already saw nothing move for 3 s).
  for (const side of ['A', 'B', 'C']) {
    const x = side.toLowerCase();
    const [name, own] = Object.entries(r.pipelines).find(([n, p]) => n.startsWith(`${x}-to-`) && p.captured !== null)!;
    const republishedInto = Object.entries(r.pipelines).filter(([n]) => n.endsWith(`-to-${x}`)).reduce((n, [, p]) => n + p.republished, 0);
    const bound = r.transactions[side]! + republishedInto + 300 + 10;
    assert.ok(own.captured! <= bound, `${name} captured ${own.captured} changes for ${r.transactions[side]} of ${side}'s transactions, ${republishedInto} re-published into ${side} and 300 snapshot rows`);
  }
});
