import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../../connectors/index.js';
import { ConfigError, parseConfig } from '../core/config/load.js';

const config = (extra: string, source = 'postgres') => `version: 1
pipelines:
  orders:
    source:
      type: ${source}
      connection: { database: shop }
${source === 'postgres' ? '      slot: s_orders\n      publication: p_orders\n' : ''}    target:
      type: postgres
      connection: { database: shop_copy }
    tables:
      - source: public.orders
${extra}`;

function problems(text: string): { path: string; message: string; line: number }[] {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('accepted');
}

test('sync mode defaults to realtime; scheduled with cron, windows and time zone is accepted', () => {
  assert.equal(parseConfig(config(''), 'test.yaml', {}).pipelines.orders!.mode, 'realtime');
  const p = parseConfig(config(`    mode: scheduled\n    schedule: "0 30 2 * * *"\n    timezone: Europe/Berlin\n    windows: ["Mon-Fri 01:00-05:00"]\n    maxRunDurationMs: 60000\n`), 'test.yaml', {}).pipelines.orders!;
  assert.equal(p.mode, 'scheduled');
  assert.equal(p.timezone, 'Europe/Berlin');
  // Scheduled verification (src/verify/service.ts): a cron in the pipeline's time zone.
  const v = parseConfig(config(`    timezone: Europe/Berlin\n    verify: { cron: "0 0 3 * * *" }\n`), 'test.yaml', {}).pipelines.orders!.verify;
  assert.deepEqual(v, { cron: '0 0 3 * * *', repair: false, rangeRows: 10_000 });
});

test('bad sync settings are refused naming the field', () => {
  const cases: [string, string, RegExp][] = [
    ['    mode: scheduled\n    schedule: "61 * * * * *"\n', 'pipelines.orders.schedule', /second: 61/],
    ['    mode: scheduled\n', 'pipelines.orders.schedule', /mode scheduled needs a schedule/],
    ['    schedule: "* * * * * *"\n', 'pipelines.orders.schedule', /is for mode scheduled/],
    ['    windows: ["Mon-Fri 1am-5am"]\n', 'pipelines.orders.windows[0]', /not HH:MM/],
    ['    timezone: Mars/Olympus\n', 'pipelines.orders.timezone', /unknown time zone/],
    ['    mode: manual\n    windows: ["01:00-05:00"]\n', 'pipelines.orders.windows', /windows are for modes realtime and scheduled/],
    ['    maxRunDurationMs: 60000\n', 'pipelines.orders.maxRunDurationMs', /for modes scheduled and manual/],
    ['    verify: { cron: "61 * * * * *" }\n', 'pipelines.orders.verify.cron', /second: 61/],
    ['    verify: { cron: "0 0 3 * * *", every: 5 }\n', 'pipelines.orders.verify.every', /unknown key 'every'/],
  ];
  for (const [extra, path, message] of cases) {
    const ps = problems(config(extra));
    assert.ok(ps.some((p) => p.path === path && message.test(p.message)), `${extra.trim()}: ${JSON.stringify(ps)}`);
    assert.ok(ps.every((p) => p.line > 0), 'each problem has its line');
  }
});

test('scheduled and manual modes are refused on a source without position()', async () => {
  const { z } = await import('zod');
  const { registerSource } = await import('../core/registry.js');
  registerSource({
    type: 'nopos-test', description: 'a source without position() (test)',
    spec: z.object({ type: z.literal('nopos-test'), connection: z.object({ database: z.string() }) }).strict(),
    create: () => { throw new Error('not used'); }, streamId: () => 'x', monitor: () => { throw new Error('not used'); },
  });
  for (const mode of ['scheduled', 'manual']) {
    const ps = problems(config(`    mode: ${mode}\n${mode === 'scheduled' ? '    schedule: "* * * * * *"\n' : ''}`, 'nopos-test'));
    assert.ok(ps.some((p) => p.path === 'pipelines.orders.mode' && /needs a source that can tell its current position/.test(p.message)), JSON.stringify(ps));
  }
  assert.equal(parseConfig(config('', 'nopos-test'), 'test.yaml', {}).pipelines.orders!.mode, 'realtime');
});
