/**
 * `syncline verify` on a running PostgreSQL → PostgreSQL pipeline (src/verify/) during a write
 * storm: an in-sync pair reports nothing; divergences made directly on the target (a row updated,
 * one deleted, one inserted, a numeric column rewritten with an equivalent rendering, one with a
 * genuinely different value) are each found and nothing else; `--repair` re-syncs them through the
 * pipeline and a second verify (the CLI) is clean. The target renames a column and types it
 * differently (numeric vs numeric(12,2)).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { sleep, spawnCli, sql, startRuntime, testEnv, waitFor, withClient } from './helpers.js';
import { openClients } from '../src/cli/clients.js';
import { verifyPipeline } from '../src/verify/run.js';

const SRC = `create table items (id bigint primary key, seq bigint not null, price numeric(12,2) not null, label text, at timestamptz not null default now())`;
const DST = `create table items (id bigint primary key, seq bigint not null, amount numeric not null, label text, at timestamptz not null)`;
const N = 2500;

async function sums(db: string): Promise<string> {
  const r = await sql(db, 'select count(*)::text as n, coalesce(sum(seq), 0)::text as s from items');
  return `${r.rows[0].n}/${r.rows[0].s}`;
}

test('verify finds exactly the divergences injected on the target during a write storm, and --repair fixes them', async (t) => {
  const env = await testEnv([{ name: 'vf', tables: [{ source: 'public.items', columns: { price: 'amount' } }], conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  await withClient(env.sourceDb, (c) => c.query(SRC));
  await withClient(env.targetDb, (c) => c.query(DST));
  await sql(env.sourceDb, `insert into items (id, seq, price, label) select g, 0, 1.50, 'row ' || g from generate_series(1, $1::int) g`, [N]);
  const { rt } = await startRuntime(env);
  await waitFor('the snapshot to reach the target', async () => (await sums(env.targetDb)) === (await sums(env.sourceDb)), 60_000, 500);

  // The storm: updates of keys 1..1000 only (the divergences are made above them), and inserts/deletes of 5000+.
  let storming = true;
  let writes = 0;
  const storm = withClient(env.sourceDb, async (c) => {
    let next = 5000;
    while (storming) {
      await c.query('begin');
      await c.query('update items set seq = seq + 1, label = md5(random()::text) where id = any($1::bigint[])', [Array.from({ length: 20 }, () => 1 + Math.floor(Math.random() * 1000))]);
      await c.query(`insert into items (id, seq, price, label) values ($1, 1, 9.99, 'new')`, [next++]);
      if (next % 3 === 0) await c.query('delete from items where id = $1', [next - 2]);
      await c.query('commit');
      writes++;
      await sleep(5);
    }
  });
  const clients = await openClients(env.config);
  t.after(() => clients.close());
  const deps = { kafka: clients.kafka, redis: clients.redis, log: clients.log };
  try {
    await sleep(500);
    // A key the storm keeps changing through every re-check round is reported unsettled (settled:
    // false), never as settled: only storm keys (1..1000, 5000+) may be, and they are not the injected ones.
    type Diff = Awaited<ReturnType<typeof verifyPipeline>>['tables'][0]['diffs'][0];
    const stormKey = (d: Diff) => Number(d.key.id) <= 1000 || Number(d.key.id) >= 5000;
    const settledOf = (ds: Diff[]) => {
      for (const d of ds.filter((x) => !x.settled)) assert.ok(stormKey(d), `only a storm key may stay unsettled: ${JSON.stringify(d)}`);
      return ds.filter((d) => d.settled).map((d) => `${d.kind} ${d.key.id}${d.columns ? ' ' + d.columns.join(',') : ''}`).sort();
    };
    // 1. In sync under the storm: nothing reported (but a storm key still changing, unsettled).
    const clean = await verifyPipeline(env.config, { pipeline: 'vf', rangeRows: 500 }, deps);
    assert.equal(clean.tables.length, 1);
    assert.ok(clean.tables[0]!.ranges >= 6, `several ranges checksummed (${clean.tables[0]!.ranges})`);
    assert.deepEqual(settledOf(clean.tables[0]!.diffs), [], `an in-sync pair reports nothing settled: ${JSON.stringify(clean.tables[0]!.diffs)}`);
    assert.equal(clean.mismatches, clean.tables[0]!.diffs.length);

    // 2. Divergences made directly on the target.
    await withClient(env.targetDb, async (c) => {
      await c.query(`update items set label = 'tampered' where id = 2001`);
      await c.query('delete from items where id = 2002');
      await c.query(`insert into items (id, seq, amount, label, at) values (99999, 7, 1, 'extra', now())`);
      await c.query(`update items set amount = 1.5000 where id = 2003`); // 1.50 written as 1.5000: the same number
      await c.query(`update items set amount = 2.5 where id = 2004`);
    });
    // Through the runtime's verify service (what the schedule and the API call): the gauge is set.
    const state = await rt.verifier!.run('vf', { pipeline: 'vf', rangeRows: 500 }, 'api');
    assert.equal(state.status, 'done', state.error);
    const found = state.result!;
    const reported = found.tables[0]!.diffs.length;
    assert.match(await rt.metrics.registry.getSingleMetricAsString('syncline_verify_mismatches'), new RegExp(`syncline_verify_mismatches\\{pipeline="vf",table="public.items"\\} ${reported}\\b`));
    assert.deepEqual(settledOf(found.tables[0]!.diffs), ['different 2001 label', 'different 2004 amount', 'extra 99999', 'missing 2002']);

    // 3. Repair through the pipeline, then verify again (the CLI): clean.
    const repaired = await verifyPipeline(env.config, { pipeline: 'vf', rangeRows: 500, repair: true }, deps);
    assert.equal(repaired.repair?.status, 'done', JSON.stringify(repaired.repair));
    assert.deepEqual(settledOf(repaired.tables[0]!.diffs), ['different 2001 label', 'different 2004 amount', 'extra 99999', 'missing 2002']);
    assert.equal(repaired.repair?.keys, repaired.tables[0]!.diffs.length, 'every reported key repaired');
    const rows = await sql(env.targetDb, 'select id::text, amount::text, label from items where id in (2001, 2002, 2004, 99999) order by id');
    assert.deepEqual(rows.rows.map((r: { id: string; amount: string; label: string }) => `${r.id} ${r.amount} ${r.label}`), ['2001 1.50 row 2001', '2002 1.50 row 2002', '2004 1.50 row 2004']);
    // The storm ends here: the verifications after the repair are to find a pair at rest clean (a key the
    // storm kept changing would be reported unsettled, as above).
    storming = false;
    await storm;
    const cli = spawnCli(['verify', '--pipeline', 'vf', '-c', env.configFile, '--json']);
    let out = '';
    cli.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    const after = await rt.verifier!.run('vf', { pipeline: 'vf', rangeRows: 500 }, 'api');
    assert.equal(after.result?.mismatches, 0, JSON.stringify(after.result?.tables[0]?.diffs));
    assert.match(await rt.metrics.registry.getSingleMetricAsString('syncline_verify_mismatches'), /syncline_verify_mismatches\{pipeline="vf",table="public.items"\} 0/);
    const [code] = (await once(cli, 'exit')) as [number];
    assert.equal(code, 0, `verify after the repair exits 0: ${out} ${(cli as unknown as { stderrTail: () => string }).stderrTail()}`);
    const again = JSON.parse(out) as { mismatches: number };
    assert.equal(again.mismatches, 0, out);
  } finally {
    storming = false;
    await storm;
  }
  assert.ok(writes > 20, `the storm wrote (${writes} transactions)`);
});
