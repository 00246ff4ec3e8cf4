/**
 * A 02:30 daily schedule in Europe/Berlin driven by an injected (moving) clock across the DST
 * changes of 2026, on the real stack: on the spring day (29 March, 02:00 → 03:00) the run fires
 * once at 03:00 CEST (01:00 UTC); on the autumn day (25 October, 03:00 → 02:00) it fires once, at the
 * first 02:30 (CEST, 00:30 UTC), and the next fire is the following day, not an hour later.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checksum, sql, testEnv, waitFor } from './helpers.js';
import { Runtime } from '../src/runtime.js';

const DDL = `create table days (id int primary key, v text)`;

for (const c of [
  { day: 'spring (gap)', clock: '2026-03-29T00:59:57Z', fire: '2026-03-29T01:00:00.000Z', next: '2026-03-30T00:30:00.000Z' },
  { day: 'autumn (repeat)', clock: '2026-10-25T00:29:57Z', fire: '2026-10-25T00:30:00.000Z', next: '2026-10-26T01:30:00.000Z' },
]) {
  test(`cron 02:30 Europe/Berlin on the ${c.day} day: one run, at ${c.fire}`, async (t) => {
    const env = await testEnv([{ name: 'days-dst', tables: [{ source: 'public.days' }], conflict: { strategy: 'source-wins' }, sync: { mode: 'scheduled', schedule: '0 30 2 * * *', timezone: 'Europe/Berlin' } }]);
    t.after(() => env.cleanup());
    await sql(env.sourceDb, DDL);
    await sql(env.targetDb, DDL);
    await sql(env.sourceDb, `insert into days select g, 'x' from generate_series(1, 10) g`);
    const offset = Date.parse(c.clock) - Date.now();
    const rt = new Runtime(env.config, new Set(['capture', 'process', 'sink']));
    rt.sync.now = () => new Date(Date.now() + offset);
    env.runtimes.push(rt);
    (await rt.start()).done.catch(() => undefined);
    const ctl = rt.sync.controllers.get('days-dst')!;
    assert.equal(ctl.nextAt?.toISOString(), c.fire, 'armed for the DST-adjusted fire');
    const run = await waitFor('the run', async () => ctl.recent.find((r) => r.outcome !== 'running'), 120_000, 100);
    assert.equal(run.outcome, 'succeeded', run.error);
    assert.equal(run.fire, c.fire);
    assert.equal(ctl.recent.length, 1, 'one run that day');
    assert.equal(ctl.nextAt?.toISOString(), c.next, 'the next fire is the following day');
    assert.deepEqual(await checksum(env.targetDb, 'days', 'id'), await checksum(env.sourceDb, 'days', 'id'));
  });
}
