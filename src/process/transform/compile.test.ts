import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { TransformStep } from '../../core/config/schema.js';
import { transformStepSpec } from '../../core/config/schema.js';
import { errorCode } from '../../core/errors.js';
import { checkTableTransforms, compileTransforms, convertZone, parseJsonPath, type Change, type ChangeOp } from './compile.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/transforms.mjs', import.meta.url));

const chain = (steps: unknown[]) => {
  const parsed = steps.map((s) => transformStepSpec.parse(s)) as TransformStep[];
  const r = compileTransforms(parsed, { table: 'public.orders', key: ['id'] });
  assert.deepEqual(r.problems, []);
  return r.transform!;
};
const change = (op: ChangeOp, after: Record<string, unknown> | null, before: Record<string, unknown> | null = null, keep: string[] = []): Change => ({
  op, key: { id: 1n }, before: before as Change['before'], after: after as Change['after'], keep,
});
const runSync = (steps: unknown[], c: Change) => {
  const out = chain(steps).run(c, {});
  assert.ok(Array.isArray(out), 'synchronous without custom steps');
  return out;
};
const brief = (cs: Change[]) => cs.map((c) => (c.after ? `${c.op}:${JSON.stringify(c.after, (_k, v) => (typeof v === 'bigint' ? Number(v) : v))}` : `delete:${String(c.key.id)}`));

const WHERE = { where: "status != 'draft' and region = 'eu'" };

test('where: inserts and snapshot rows pass or are dropped; null does not pass', () => {
  assert.equal(runSync([WHERE], change('insert', { id: 1n, status: 'paid', region: 'eu' })).length, 1);
  assert.equal(runSync([WHERE], change('snapshot', { id: 1n, status: 'draft', region: 'eu' })).length, 0);
  assert.equal(runSync([WHERE], change('insert', { id: 1n, status: null, region: 'eu' })).length, 0);
  // _op: the operation
  assert.equal(runSync([{ where: "_op = 'snapshot'" }], change('snapshot', { id: 1n })).length, 1);
  assert.equal(runSync([{ where: "_op = 'snapshot'" }], change('insert', { id: 1n })).length, 0);
});

test('where: an update moving in upserts; moving out deletes (full old row), keep drops it; never in: dropped', () => {
  const inRow = { id: 1n, status: 'paid', region: 'eu' };
  const outRow = { id: 1n, status: 'draft', region: 'eu' };
  assert.deepEqual(brief(runSync([WHERE], change('update', { ...inRow }, { ...outRow }))), ['update:{"id":1,"status":"paid","region":"eu"}']);
  assert.deepEqual(brief(runSync([WHERE], change('update', { ...outRow }, { ...inRow }))), ['delete:1']);
  assert.deepEqual(brief(runSync([{ ...WHERE, onLeave: 'keep' }], change('update', { ...outRow }, { ...inRow }))), []);
  // Old row known and outside too: the target never had it.
  assert.deepEqual(brief(runSync([WHERE], change('update', { ...outRow }, { ...outRow, region: 'us' }))), []);
});

test('where without the old row (REPLICA IDENTITY DEFAULT): an update that does not pass deletes (a no-op when never in)', () => {
  assert.deepEqual(brief(runSync([WHERE], change('update', { id: 1n, status: 'draft', region: 'eu' }, null))), ['delete:1']);
  // Only the key as old row: not a full row, same answer.
  assert.deepEqual(brief(runSync([WHERE], change('update', { id: 1n, status: 'draft', region: 'eu' }, { id: 1n }))), ['delete:1']);
  assert.deepEqual(brief(runSync([{ ...WHERE, onLeave: 'keep' }], change('update', { id: 1n, status: 'draft', region: 'eu' }, null))), []);
});

test('where on deletes: dropped only when false on what is known', () => {
  assert.deepEqual(brief(runSync([WHERE], change('delete', null, null))), ['delete:1'], 'columns unknown: applied');
  assert.deepEqual(brief(runSync([WHERE], change('delete', null, { id: 1n, status: 'draft', region: 'eu' }))), [], 'the old row did not pass');
  assert.deepEqual(brief(runSync([WHERE], change('delete', null, { id: 1n, status: 'paid', region: 'eu' }))), ['delete:1']);
  assert.deepEqual(brief(runSync([{ where: "_op != 'delete'" }], change('delete', null, null))), [], 'soft-delete archive: deletes never reach the target');
  assert.deepEqual(brief(runSync([{ ...WHERE, onLeave: 'keep' }], change('delete', null, { id: 1n, status: 'draft', region: 'eu' }))), ['delete:1'], 'keep: a row that left is still on the target');
});

test('where reading an unsent TOASTed column: the old row fills it, else the change is refused', () => {
  const c = change('update', { id: 1n, region: 'eu' }, null, ['status']);
  assert.throws(() => runSync([WHERE], c), (e: Error) => errorCode(e) === 'TRANSFORM_VALUE_UNKNOWN' && /status was not sent/.test(e.message) && /step 1 \(where\)/.test(e.message));
  const filled = runSync([WHERE], change('update', { id: 1n, region: 'eu' }, { id: 1n, status: 'paid', region: 'eu' }, ['status']));
  assert.deepEqual(brief(filled), ['update:{"id":1,"region":"eu","status":"paid"}']);
  assert.deepEqual(filled[0]!.keep, []);
  // A chain without a filter: the same (a cast of the unsent column reads it from the old row).
  const cast = runSync([{ cast: { n: 'integer' } }], change('update', { id: 1n }, { id: 1n, n: '7' }, ['n']));
  assert.deepEqual(brief(cast), ['update:{"id":1,"n":7}']);
  assert.throws(() => runSync([{ cast: { n: 'integer' } }], change('update', { id: 1n }, null, ['n'])), /column n was not sent/);
});

test('include, exclude, compute, set, cast, extract, map, timezone', () => {
  const row = () => ({ id: 1n, status: '2', secret: 'x', price: '10.50', qty: 3, age: '42', payload: '{"sku":"A-1","dims":{"w":2},"tags":["a","b"]}', at: '2024-06-01T12:00:00.123456Z' });
  assert.deepEqual(Object.keys(runSync([{ include: ['status'] }], change('insert', row()))[0]!.after!), ['id', 'status'], 'key columns are always kept');
  assert.deepEqual(Object.keys(runSync([{ exclude: ['secret', 'payload'] }], change('insert', row()))[0]!.after!), ['id', 'status', 'price', 'qty', 'age', 'at']);
  const c = runSync(
    [
      { compute: { total: 'price * qty', big: 'qty > 2', label: "coalesce(missing, 'none')" } },
      { set: { origin: 'eu-shop', version: 2 } },
      { cast: { age: 'integer', qty: 'string' } },
      { extract: { sku: "payload->>'sku'", w: "payload->'dims'->>'w'", dims: "payload->'dims'", tag: "payload->'tags'->>1", none: "payload->>'nope'" } },
      { map: { status: { values: { '1': 'new', '2': 'paid' } } } },
      { timezone: { columns: ['at'], to: 'Europe/Berlin' } },
    ],
    change('insert', row()),
  )[0]!.after!;
  assert.equal(c.total, '31.5');
  assert.equal(c.big, true);
  assert.equal(c.label, 'none');
  assert.equal(c.origin, 'eu-shop');
  assert.equal(c.version, 2);
  assert.equal(c.age, 42);
  assert.equal(c.qty, '3');
  assert.equal(c.sku, 'A-1');
  assert.equal(c.w, '2');
  assert.equal(c.dims, '{"w":2}');
  assert.equal(c.tag, 'b');
  assert.equal(c.none, null);
  assert.equal(c.status, 'paid');
  assert.equal(c.at, '2024-06-01T14:00:00.123456');
});

test('step errors name the table and the step and are poison', () => {
  const bad = (steps: unknown[], row: Record<string, unknown>, re: RegExp) =>
    assert.throws(() => runSync(steps, change('insert', { id: 1n, ...row })), (e: Error) => errorCode(e) === 'TRANSFORM_FAILED' && re.test(e.message) && e.message.startsWith('public.orders step'));
  bad([{ cast: { age: 'integer' } }], { age: 'old' }, /step 1 \(cast\): column age: text 'old' does not convert to integer/);
  bad([{ extract: { sku: "payload->>'sku'" } }], { payload: '{bad' }, /column payload does not hold valid JSON/);
  bad([{ map: { s: { values: { a: 'b' }, otherwise: 'invalid' } } }], { s: 'z' }, /column s: text 'z' is not in the value map/);
  bad([{ where: 'a > 1' }], { a: 'x' }, /cannot compare text with number/);
  // A key column the config does not name (the primary key): refused when the change shows it.
  const noKey = compileTransforms([{ exclude: ['id'] }], { table: 'public.orders' }).transform!;
  assert.throws(() => noKey.run(change('insert', { id: 1n }), {}), /public\.orders step 1 \(exclude\): id is a key column and cannot be dropped/);
  // map otherwise null / keep
  assert.equal(runSync([{ map: { s: { values: { a: 'b' }, otherwise: 'null' } } }], change('insert', { id: 1n, s: 'z' }))[0]!.after!.s, null);
  assert.equal(runSync([{ map: { s: { values: { a: 'b' } } } }], change('insert', { id: 1n, s: 'z' }))[0]!.after!.s, 'z');
});

test('load-time problems name the step and what is wrong', () => {
  const problems = checkTableTransforms(
    [
      { where: "status = 'x' and" },
      { compute: { t: 'a +* b' } },
      { extract: { s: "payload->>'a'->'b'" } },
      { timezone: { columns: ['at'], to: 'Mars/Base' } },
      { exclude: ['id'] },
    ],
    { table: 'public.orders', key: ['id'] },
  );
  assert.deepEqual(
    problems.map((p) => [p.path.join('.'), p.message.replace(/ \(at character.*$/, '')]),
    [
      ['0.where', "table public.orders, step 1 (where): expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end"],
      ['1.compute.t', "table public.orders, step 2 (compute), column t: expected a value (a field, a number, 'text', true, false, null, a function or '('), found '*'"],
      ['2.extract.s', 'table public.orders, step 3 (extract), column s: ->> gives text: it can only be the last step'],
      ['3.timezone.to', "table public.orders, step 4 (timezone): unknown time zone 'Mars/Base' (an IANA name such as Europe/Berlin or UTC)"],
      ['4.exclude', 'table public.orders, step 5 (exclude): id is a key column of public.orders and cannot be dropped'],
    ],
  );
  assert.deepEqual(
    checkTableTransforms([{ where: "email != ''" }, { cast: { v: 'integer' } }], { table: 'public.users', encrypted: ['email'] }).map((p) => p.message),
    ["table public.users, step 1 (where): reads email, an encrypted column (steps see its ciphertext; it is decrypted only by the target)"],
  );
  // One kind per step, onLeave only with where.
  assert.match(transformStepSpec.safeParse({ where: 'a = 1', include: ['a'] }).error!.issues[0]!.message, /a step does one thing; this one has where and include/);
  assert.match(transformStepSpec.safeParse({}).error!.issues[0]!.message, /a step needs one of: where, include/);
  assert.match(transformStepSpec.safeParse({ include: ['a'], onLeave: 'keep' }).error!.issues[0]!.message, /onLeave goes with where/);
});

test('json paths and time zones', () => {
  assert.deepEqual(parseJsonPath("payload -> 'a' -> 0 ->> 'it''s'"), { column: 'payload', steps: ['a', 0, "it's"], text: true });
  assert.throws(() => parseJsonPath('payload'), /expected -> or ->> after the column payload/);
  // Instants to Berlin wall time (winter/summer), wall time in New York to Berlin, infinity kept.
  assert.equal(convertZone('2024-01-15T12:00:00.000001Z', 'UTC', 'Europe/Berlin'), '2024-01-15T13:00:00.000001');
  assert.equal(convertZone('2024-07-15T12:00:00.000000Z', 'UTC', 'Europe/Berlin'), '2024-07-15T14:00:00.000000');
  assert.equal(convertZone('2024-07-15T08:00:00.000000', 'America/New_York', 'Europe/Berlin'), '2024-07-15T14:00:00.000000');
  assert.equal(convertZone('2024-07-15T08:00:00.000000', 'UTC', 'UTC'), '2024-07-15T08:00:00.000000');
  assert.equal(convertZone('infinity', 'UTC', 'Europe/Berlin'), 'infinity');
  assert.equal(convertZone('not a time', 'UTC', 'Europe/Berlin'), undefined);
  // Values sharing a second reuse the last conversion, only when the zones and the offset are the same too.
  assert.equal(convertZone('2024-07-15T12:00:00.5Z', 'UTC', 'Europe/Berlin'), '2024-07-15T14:00:00.500000');
  assert.equal(convertZone('2024-07-15T12:00:00.25Z', 'UTC', 'Europe/Berlin'), '2024-07-15T14:00:00.250000');
  assert.equal(convertZone('2024-07-15T12:00:00.25+02:00', 'UTC', 'Europe/Berlin'), '2024-07-15T12:00:00.250000');
  assert.equal(convertZone('2024-07-15T12:00:00.25+02:00', 'UTC', 'Asia/Kolkata'), '2024-07-15T15:30:00.250000');
  assert.equal(convertZone('2024-07-15T12:00:00', 'UTC', 'Asia/Kolkata'), '2024-07-15T17:30:00.000000');
  assert.equal(convertZone('2024-07-15T12:00:00', 'America/New_York', 'Asia/Kolkata'), '2024-07-15T21:30:00.000000');
  assert.equal(convertZone('2024-07-15T12:00:00.1234567', 'America/New_York', 'Asia/Kolkata'), undefined, 'seven digits: not a timestamp');
  assert.equal(convertZone('2024-07-15T12:00:00x', 'America/New_York', 'Asia/Kolkata'), undefined);
  // The wall time is written by arithmetic: the same as Intl's for leap days, years before 1970 and below 1000, the year 9999.
  const intl = (iso: string, zone: string) => {
    const p = Object.fromEntries(new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
    return `${p.year!.padStart(4, '0')}-${p.month}-${p.day}T${p.hour}:${p.minute}:${p.second}`;
  };
  for (const iso of ['2024-02-29T23:59:59Z', '1969-12-31T23:00:00Z', '1900-03-01T00:00:00Z', '0150-06-30T12:34:56Z', '9999-12-31T20:00:00Z', '2000-02-29T00:00:00Z']) {
    for (const zone of ['UTC', 'Asia/Kolkata', 'America/Los_Angeles']) assert.equal(convertZone(iso, 'UTC', zone), `${intl(iso, zone)}.000000`, `${iso} in ${zone}`);
  }
});

test('column types follow the steps', () => {
  const t = chain([{ exclude: ['secret'] }, { cast: { age: 'integer' } }, { extract: { sku: "payload->>'sku'" } }, { set: { origin: 'x' } }, { timezone: { columns: ['at'], to: 'UTC' } }]);
  const input = Object.freeze({ id: 'bigint', secret: 'text', age: 'text', payload: 'jsonb', at: 'timestamp with time zone' });
  const out = t.types(input);
  assert.deepEqual(out, { id: 'bigint', age: 'bigint', payload: 'jsonb', at: 'timestamp without time zone', sku: 'text', origin: 'text' });
  assert.equal(t.types(input), out, 'cached per input');
});

test('custom transform in a worker: a result, a split, a throw, a loop and a promise that never settles', async () => {
  const custom = (fn = 'transform', timeoutMs = 300) => {
    const r = compileTransforms([transformStepSpec.parse({ custom: { module: FIXTURE, function: fn, timeoutMs } }) as TransformStep, transformStepSpec.parse({ set: { after: 1 } }) as TransformStep], { table: 'public.orders' });
    return r.transform!;
  };
  const t = custom();
  await t.ready();
  try {
    const ok = await t.run(change('insert', { id: 1n, note: 'hi', data: Buffer.from('ab') }), {});
    assert.deepEqual(ok.map((c) => c.after!.note), ['HI!']);
    assert.ok(Buffer.isBuffer(ok[0]!.after!.data), 'bytes come back as a Buffer');
    assert.equal(ok[0]!.after!.after, 1, 'steps after the custom one run on its result');
    assert.deepEqual(await t.run(change('insert', { id: 1n, note: 'drop' }), {}), []);
    await assert.rejects(Promise.resolve(t.run(change('insert', { id: 1n, note: 'throw' }), {})), (e: Error) => errorCode(e) === 'TRANSFORM_FAILED' && /threw: Error: refused note/.test(e.message) && /step 1 \(custom\)/.test(e.message));
    await assert.rejects(Promise.resolve(t.run(change('insert', { id: 1n, note: 'loop' }), {})), (e: Error) => errorCode(e) === 'TRANSFORM_TIMEOUT' && /took longer than 300 ms/.test(e.message));
    await assert.rejects(Promise.resolve(t.run(change('insert', { id: 1n, note: 'hang' }), {})), (e: Error) => errorCode(e) === 'TRANSFORM_TIMEOUT');
    // After the timeouts: a new worker, the same function.
    assert.deepEqual((await t.run(change('insert', { id: 1n, note: 'again' }), {})).map((c) => c.after!.note), ['AGAIN!']);
    assert.equal(t.runners[0]!.starts, 3);
  } finally {
    await t.close();
  }
  const split = custom('twice');
  try {
    const out = await split.run(change('insert', { id: 1n, note: 'x' }), {});
    assert.deepEqual(out.map((c) => c.key.id), [1n, 1001n]);
  } finally {
    await split.close();
  }
  const missing = custom('notAFunction');
  await assert.rejects(missing.ready(), /notAFunction is not a function exported by the module \(it exports transform, twice\)/);
  await missing.close();
});

test('the config loader reports transform problems with file, line, pipeline, table and step; custom modules become absolute', async () => {
  await import('../../../connectors/index.js');
  const { parseConfig, ConfigError } = await import('../../core/config/load.js');
  const text = (steps: string) => `version: 1
pipelines:
  orders-sync:
    source: { type: postgres, connection: { database: shop }, slot: s1, publication: p1 }
    target: { type: postgres, connection: { database: copy } }
    tables:
      - source: public.orders
        key: [id]
        transform:
${steps}`;
  try {
    parseConfig(text(`          - where: "status = "
          - { cast: { age: int } }
          - { custom: { module: ./nowhere.mjs } }
          - { where: "a = 1", exclude: [b] }
          - { exclude: [id] }`), '/tmp/t/config.yaml', {});
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    const lines = err.problems.map((p) => `${p.line} ${p.path}: ${p.message}`);
    assert.deepEqual(lines, [
      "10 pipelines.orders-sync.tables[0].transform[0].where: table public.orders, step 1 (where): expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end (at character 10 of \"status = \")",
      `11 pipelines.orders-sync.tables[0].transform[1].cast.age: must be one of 'string', 'number', 'integer', 'boolean', got string "int"`,
      '12 pipelines.orders-sync.tables[0].transform[2].custom.module: table public.orders, step 3 (custom): module file not found: /tmp/t/nowhere.mjs',
      '13 pipelines.orders-sync.tables[0].transform[3]: a step does one thing; this one has where and exclude: write them as separate steps',
      '14 pipelines.orders-sync.tables[0].transform[4].exclude: table public.orders, step 5 (exclude): id is a key column of public.orders and cannot be dropped',
    ]);
  }
  const ok = parseConfig(text(`          - { custom: { module: ./transforms.mjs } }`), fileURLToPath(new URL('../../../test/fixtures/config.yaml', import.meta.url)), {});
  assert.equal(ok.pipelines['orders-sync']!.tables[0]!.transform![0]!.custom!.module, FIXTURE);
});
