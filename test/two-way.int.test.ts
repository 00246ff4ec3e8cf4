/**
 * Two-way sync on the real stack: database A ⇄ database B, each captured, latest-timestamp on both
 * pipelines. Several clients edit both sides at once (the same keys too); at the end both tables
 * are identical, syncline's own writes were never echoed back (the captures skipped them: counted),
 * and nothing keeps moving once the clients stop (no ping-pong). Then the cases where a delete meets
 * a row the other side re-created or inserted meanwhile (each order set with locks), a row inserted
 * on the target between the conflict read and the write, and a short storm (test/storm/harness.ts).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, settledWhen, sleep, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { runStorm, stormText } from './storm/harness.js';

/** Rows of `items` that differ between the two databases (id: A's row | B's row), for failure messages. */
async function differences(A: string, B: string): Promise<string> {
  const rows = async (db: string) => new Map((await sql(db, 'select * from items')).rows.map((r) => [r.id as number, JSON.stringify(r)]));
  const [a, b] = await Promise.all([rows(A), rows(B)]);
  const ids = [...new Set([...a.keys(), ...b.keys()])].filter((id) => a.get(id) !== b.get(id)).sort((x, y) => x - y);
  return ids.slice(0, 10).map((id) => `${id}: ${a.get(id) ?? 'none'} | ${b.get(id) ?? 'none'}`).join('; ') + (ids.length > 10 ? ` (${ids.length} in all)` : '');
}

const DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;

/** A ⇄ B with latest-timestamp both ways, `rows` items in A, running, B holding A's snapshot. */
async function twoWay(t: TestContext, rows: number) {
  const conflict = { strategy: 'latest-timestamp', field: 'updated_at' };
  const env = await testEnv([
    { name: 'a-to-b', tables: [{ source: 'public.items' }], conflict, peer: 'b-to-a' },
    { name: 'b-to-a', tables: [{ source: 'public.items' }], conflict, peer: 'a-to-b', reverse: true },
  ]);
  t.after(() => env.cleanup());
  const A = env.sourceDb;
  const B = env.targetDb;
  await sql(A, DDL);
  await sql(B, DDL);
  await sql(A, `insert into items (id, name, qty) select g, 'item ' || g, g from generate_series(1, $1::int) g`, [rows]);
  const { rt } = await startRuntime(env);
  const h = (n: string) => rt.pipelines.find((p) => p.name === n)!;
  const same = async () => {
    const [a, b] = await Promise.all([checksum(A, 'items', 'id'), checksum(B, 'items', 'id')]);
    return a.md5 === b.md5 && a.count === b.count;
  };
  await waitFor('B has the snapshot of A', same);
  // Identical is not converged: in the delete cases the sides pass through a moment where both hold
  // the row (a→b wrote A's insert into B, b→a has not carried B's delete yet).
  const settled = settledWhen(rt, same);
  return { A, B, h, same, settled };
}

test('A ⇄ B: simultaneous edits on both sides converge, no echo, no ping-pong', async (t) => {
  const { A, B, h, same, settled } = await twoWay(t, 200);

  // Four clients per side for 8 s: updates of random keys (hot keys 1-10 on both sides at once),
  // a few inserts on each side (disjoint ids) and deletes.
  let userChangesA = 0;
  let userChangesB = 0;
  const until = Date.now() + 8000;
  const client = (db: string, side: 'A' | 'B', n: number) =>
    withClient(db, async (c) => {
      let i = 0;
      while (Date.now() < until) {
        i++;
        const hot = i % 3 === 0;
        const id = hot ? 1 + ((i * 7 + n) % 10) : 11 + Math.floor(Math.random() * 190);
        if (i % 25 === 0) {
          const newId = (side === 'A' ? 1000 : 2000) + n * 100 + i / 25;
          await c.query(`insert into items (id, name, qty) values ($1, $2, 0) on conflict do nothing`, [newId, `${side} new ${newId}`]);
        } else if (i % 40 === 0 && !hot) {
          await c.query(`delete from items where id = $1`, [id]);
        } else {
          await c.query(`update items set name = $2, qty = qty + 1, updated_at = clock_timestamp() where id = $1`, [id, `${side}${n}-${i}`]);
        }
        if (side === 'A') userChangesA++;
        else userChangesB++;
        await sleep(5);
      }
    });
  await Promise.all([0, 1, 2, 3].flatMap((n) => [client(A, 'A', n), client(B, 'B', n)]));

  // Converged: identical row sets on both sides, and it stays so.
  await waitFor("A and B identical and settled", settled, 120000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}`);
  });
  const applied = () => h('a-to-b').applier!.stats.applied + h('b-to-a').applier!.stats.applied;
  const before = applied();
  await sleep(4000);
  assert.equal(applied(), before, 'no writes after convergence (no ping-pong)');
  const [a, b] = await Promise.all([checksum(A, 'items', 'id'), checksum(B, 'items', 'id')]);
  assert.equal(a.md5, b.md5, 'still identical');

  // No echo: every write syncline made into one side was skipped by that side's capture, and what
  // each capture read is the users' changes on its side plus the rows re-published after a conflict
  // kept the target's version — never syncline's own writes.
  const capAB = h('a-to-b').capture!.stats;
  const capBA = h('b-to-a').capture!.stats;
  const sAB = h('a-to-b').applier!.stats;
  const sBA = h('b-to-a').applier!.stats;
  t.diagnostic(`user changes A=${userChangesA} B=${userChangesB}; captured A=${capAB.changes} (echo skipped ${capAB.echoSkipped}) B=${capBA.changes} (echo skipped ${capBA.echoSkipped}); applied a→b=${sAB.applied} b→a=${sBA.applied}; conflicts a→b=${sAB.conflicts} b→a=${sBA.conflicts}`);
  // Each processor reads its own source's change topics only (a shared topic once let B's
  // end-of-snapshot marker sweep the rows a→b had just written).
  assert.ok(sAB.received <= capAB.changes && sBA.received <= capBA.changes, `a→b received ${sAB.received} of A's ${capAB.changes} changes, b→a ${sBA.received} of B's ${capBA.changes}`);
  assert.ok(capAB.echoSkipped > 0 && capBA.echoSkipped > 0, 'both captures skipped the peer writes');
  const snapshot = 200;
  // A's capture: its snapshot, the users' changes on A (a key change counts twice at most), and the
  // rows b→a re-published (kept by a conflict) and the deletes it made as decisions for the peer.
  // Anything more would be an echo.
  assert.ok(capAB.changes <= snapshot + userChangesA + sBA.republished, `A's capture read ${capAB.changes} changes for ${userChangesA} user changes and ${sBA.republished} re-published rows and deletes`);
  assert.ok(capBA.changes <= snapshot + userChangesB + sAB.republished + 400, `B's capture read ${capBA.changes} changes for ${userChangesB} user changes and ${sAB.republished} re-published rows and deletes`);
  assert.ok(sAB.conflicts + sBA.conflicts > 0, 'simultaneous edits of the hot keys were seen as conflicts');
  assert.equal(sAB.deadLettered + sBA.deadLettered, 0, 'nothing dead-lettered');
});

test('A deletes rows while B updates them: both sides agree on the later change (deleted or kept)', async (t) => {
  const { A, B, h, same, settled } = await twoWay(t, 60);

  // B's transaction holds the rows while A's delete commits, so neither side has the other's change
  // when it writes its own, and each pipeline meets the other's version:
  //  1-25: B updates, then A deletes (the delete is later: deleted on both);
  //  26-50: A deletes, then B updates (the update is later: the row lives on both).
  await withClient(A, (a) => withClient(B, async (b) => {
    await b.query('begin');
    await b.query(`update items set name = 'B kept?', qty = qty + 1, updated_at = clock_timestamp() where id between 1 and 25`);
    await b.query(`select id from items where id between 26 and 50 for update`);
    await sleep(5);
    await a.query(`delete from items where id between 1 and 50`);
    await sleep(5);
    await b.query(`update items set name = 'B wins', qty = qty + 1, updated_at = clock_timestamp() where id between 26 and 50`);
    await b.query('commit');
  }));

  await waitFor("A and B identical and settled", settled, 60000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}`);
  });
  const ids = async (db: string) => (await sql(db, 'select id from items order by id')).rows.map((r) => r.id as number);
  const expected = Array.from({ length: 35 }, (_, i) => 26 + i);
  assert.deepEqual(await ids(A), expected, 'A: rows 1-25 deleted, 26-60 present');
  assert.deepEqual(await ids(B), expected, 'B: the same');
  assert.equal((await sql(A, `select count(*)::int as n from items where name = 'B wins'`)).rows[0].n, 25, "A holds B's later updates");
  const applied = () => h('a-to-b').applier!.stats.applied + h('b-to-a').applier!.stats.applied;
  const before = applied();
  await sleep(3000);
  assert.equal(applied(), before, 'no writes after convergence (no ping-pong)');
  assert.ok(await same(), 'still identical');
  const sAB = h('a-to-b').applier!.stats;
  const sBA = h('b-to-a').applier!.stats;
  t.diagnostic(`conflicts a→b=${sAB.conflicts} b→a=${sBA.conflicts}; applied a→b=${sAB.applied} b→a=${sBA.applied}`);
  assert.ok(sAB.conflicts >= 50 && sBA.conflicts >= 50, 'every pair of changes met as a conflict on both sides');
});

test('a row kept over an update is not written back where that side deleted it later: the later delete wins on both', async (t) => {
  const { A, B, h, settled } = await twoWay(t, 10);
  const X = 5;
  const at = async (db: string) => (await sql(db, `select id from items where id = $1`, [X])).rowCount;
  // Locks set the order: b→a meets B's update while A's newer one is committed (it keeps A's row
  // and re-publishes it, kept over an update), and a→b meets that re-published row only after B
  // deleted the row, later than both updates.
  await withClient(A, (a) => withClient(B, async (b) => {
    await a.query('begin');
    await a.query(`select id from items where id = $1 for update`, [X]); // b→a's locked read of X waits
    await sql(B, `update items set name = 'B first', updated_at = clock_timestamp() where id = $1`, [X]);
    await b.query('begin');
    await b.query(`select id from items where id = $1 for update`, [X]); // a→b's locked read of X waits
    const captured = h('a-to-b').capture!.stats.changes;
    await a.query(`update items set name = 'A second', updated_at = clock_timestamp() where id = $1`, [X]);
    await a.query('commit');
    // A's capture reads A's update and the row b→a re-published.
    await waitFor("A's update and b→a's re-published row captured", async () => h('a-to-b').capture!.stats.changes >= captured + 2, 30000);
    await b.query(`delete from items where id = $1`, [X]);
    await b.query('commit');
  }));
  await waitFor("B's delete, the latest change, gone through on both and A and B settled", async () => (await at(A)) === 0 && (await at(B)) === 0 && (await settled()), 60000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}; row ${X} on A: ${await at(A)}, on B: ${await at(B)}`);
  });
  assert.equal(await at(A), 0, "A: B's delete, the latest change, removed the row");
  assert.equal(await at(B), 0, 'B: the row was not written back over its delete');
  const sAB = h('a-to-b').applier!.stats;
  const sBA = h('b-to-a').applier!.stats;
  t.diagnostic(`conflicts a→b=${sAB.conflicts} b→a=${sBA.conflicts}; applied a→b=${sAB.applied} b→a=${sBA.applied}`);
  assert.ok(sBA.conflicts >= 1, "b→a met A's newer row as a conflict");
  assert.ok(sAB.conflicts >= 2, "a→b deferred both A's update and the re-published row to B's delete");
  const applied = () => sAB.applied + sBA.applied;
  const before = applied();
  await sleep(3000);
  assert.equal(applied(), before, 'no writes after convergence');
});

/**
 * A delete of a key whose version state already says "deleted" is a change like any other: the other
 * side may have re-created the row since (issue 17). Each step waits until it arrived on the other
 * side; `first` is the side that inserts and deletes, `second` the side that re-inserts.
 */
for (const [first, second] of [['A', 'B'], ['B', 'A']] as const) {
  test(`insert on ${first}, delete on ${first}, re-insert on ${second}, delete on ${first}: the row is gone on both`, async (t) => {
    const { A, B, settled } = await twoWay(t, 10);
    const db = { A, B };
    const X = 2001;
    const has = async (side: 'A' | 'B') => (await sql(db[side], `select 1 from items where id = $1`, [X])).rowCount === 1;
    const arrived = (what: string, cond: () => Promise<boolean>) => waitFor(what, cond, 60000);
    await sql(db[first], `insert into items (id, name, qty) values ($1, 'first', 1)`, [X]);
    await arrived(`the insert on ${first} reached ${second}`, () => has(second));
    await sql(db[first], `delete from items where id = $1`, [X]);
    await arrived(`the delete on ${first} reached ${second}`, async () => !(await has(second)));
    await sql(db[second], `insert into items (id, name, qty) values ($1, 'again', 2)`, [X]);
    await arrived(`the re-insert on ${second} reached ${first}`, () => has(first));
    await sql(db[first], `delete from items where id = $1`, [X]);
    await arrived(`the second delete on ${first} reached ${second}`, async () => !(await has(second))).catch(async (err) => {
      throw new Error(`${(err as Error).message}; ${second} still holds ${JSON.stringify((await sql(db[second], `select * from items where id = $1`, [X])).rows)}`);
    });
    await waitFor("A and B identical and settled", settled, 30000);
  });
}

test('an insert that reaches a side after that side deleted the key later: the delete wins on both', async (t) => {
  const { A, B, h, settled } = await twoWay(t, 10);
  const X = 3001;
  const has = async (db: string) => (await sql(db, `select 1 from items where id = $1`, [X])).rowCount === 1;
  // Table locks set the order: b→a cannot apply B's insert (older) until A inserted the key itself
  // (newer); a→b cannot apply A's insert until B deleted the key (the latest change of all). A's
  // insert reaches B as an insert of a row B lacks: only b→a, which carries B's delete and finds A's
  // row older, knows it must go, on A and on B.
  await withClient(A, (a) => withClient(B, async (b) => {
    await a.query('begin');
    await a.query('lock table items in exclusive mode');
    const capturedB = h('b-to-a').capture!.stats.changes;
    await sql(B, `insert into items (id, name, qty) values ($1, 'B first', 1)`, [X]);
    await waitFor("B's insert captured", async () => h('b-to-a').capture!.stats.changes > capturedB, 30000);
    await a.query(`insert into items (id, name, qty) values ($1, 'A second', 2)`, [X]);
    await b.query('begin');
    await b.query('lock table items in exclusive mode');
    const capturedA = h('a-to-b').capture!.stats.changes;
    await a.query('commit');
    await waitFor("A's insert captured", async () => h('a-to-b').capture!.stats.changes > capturedA, 30000);
    await b.query(`delete from items where id = $1`, [X]);
    await b.query('commit');
  }));
  await waitFor("B's delete, the latest change, gone through on both and A and B settled", async () => !(await has(A)) && !(await has(B)) && (await settled()), 60000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}; row ${X} on A: ${await has(A)}, on B: ${await has(B)}`);
  });
  assert.equal(await has(A), false, "A: B's delete, the latest change, removed A's row");
  assert.equal(await has(B), false, "B: A's older insert did not outlive B's delete");
});

test('an insert the target made between the conflict read and the write is not overwritten: the newer row wins on both', async (t) => {
  const { A, B, h, settled } = await twoWay(t, 10);
  const X = 4001;
  // a→b's write of X into B pauses in a trigger after its conflict read found no row; meanwhile B
  // inserts X itself (newer) and commits. The paused upsert then meets B's row.
  await sql(B, `create function slow_syncline() returns trigger language plpgsql as $$
    begin if new.id = ${X} and pg_replication_origin_session_is_setup() then perform pg_sleep(1.5); end if; return new; end $$`);
  await sql(B, `create trigger slow_syncline before insert on items for each row execute function slow_syncline()`);
  await sql(A, `insert into items (id, name, qty) values ($1, 'A older', 1)`, [X]);
  await waitFor("a→b's write of A's insert paused in B's trigger", async () =>
    (await sql('postgres', `select 1 from pg_stat_activity where datname = $1 and wait_event = 'PgSleep'`, [B])).rowCount! > 0, 30000);
  await sql(B, `insert into items (id, name, qty) values ($1, 'B newer', 2)`, [X]);
  const name = async (db: string) => (await sql(db, `select name from items where id = $1`, [X])).rows[0]?.name;
  await sleep(2500); // the paused write goes on
  assert.equal(await name(B), 'B newer', "the paused upsert did not take B's row as if it had been checked");
  await waitFor('A and B identical and settled', settled, 60000).catch(async (err) => {
    throw new Error(`${(err as Error).message}; rows that differ: ${await differences(A, B)}`);
  });
  const sAB = h('a-to-b').applier!.stats;
  t.diagnostic(`a→b: applied ${sAB.applied}, conflicts ${sAB.conflicts}, retries ${sAB.retries}`);
  assert.equal(await name(B), 'B newer', "B keeps its own newer row");
  assert.equal(await name(A), 'B newer', "A holds B's newer row");
});

test('storm (short; `npm run storm` is the full one): random updates, upserts and deletes on both sides end with A = B', async (t) => {
  const r = await runStorm({ seconds: 15, rate: 100, rows: 300, keys: 400, clients: 3, settleMs: 120000, log: (l) => t.diagnostic(l) });
  t.diagnostic(stormText(r));
  assert.equal(r.differingCount, 0, `keys that differ: ${r.differing.join('; ')}`);
  assert.notEqual(r.convergedAfterS, null, 'A and B agreed and stayed so');
  for (const [n, p] of Object.entries(r.pipelines)) assert.equal(p.deadLettered, 0, `${n}: nothing dead-lettered`);
  assert.ok(r.transactions.A + r.transactions.B > 1500, `${r.transactions.A + r.transactions.B} transactions`);
});
