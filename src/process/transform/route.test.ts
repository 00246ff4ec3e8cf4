import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeSpec, type RouteConfig } from '../../core/config/schema.js';
import { errorCode } from '../../core/errors.js';
import '../../../connectors/index.js';
import { ConfigError, parseConfig } from '../../core/config/load.js';
import { compileRoute } from './route.js';
import type { Change, ChangeOp } from './compile.js';

const compiled = (r: unknown) => {
  const c = compileRoute(routeSpec.parse(r) as RouteConfig, { table: 'public.orders' });
  assert.deepEqual(c.problems, []);
  return c.route!;
};
const BY = compiled({ by: 'region', to: { eu: 'public.orders_eu', us: 'public.orders_us' } });
const change = (op: ChangeOp, after: Record<string, unknown> | null, before: Record<string, unknown> | null = null): Change => ({
  op, key: { id: 1 }, before: before as Change['before'], after: after as Change['after'], keep: [],
});
const brief = (out: { table: string; change: Change }[]) => out.map((o) => `${o.change.after ? 'upsert' : 'delete'} ${o.table}`);

test('route by/to: inserts and snapshot rows to their route; unmatched is poison with the values', () => {
  assert.deepEqual(brief(BY.route([change('insert', { id: 1, region: 'eu' })], {})), ['upsert public.orders_eu']);
  assert.deepEqual(brief(BY.route([change('snapshot', { id: 1, region: 'us' })], {})), ['upsert public.orders_us']);
  assert.deepEqual(BY.tables, ['public.orders_eu', 'public.orders_us']);
  assert.throws(() => BY.route([change('insert', { id: 1, region: 'xx' })], {}), (e: Error) => errorCode(e) === 'ROUTE_UNMATCHED' && /matches no route of by "region" \(to: eu, us\).*region='xx'/.test(e.message));
  assert.throws(() => BY.route([change('insert', { id: 1, region: null })], {}), (e: Error) => errorCode(e) === 'ROUTE_UNMATCHED');
  assert.throws(() => BY.route([change('insert', { id: 1, place: 'eu' })], {}), (e: Error) => errorCode(e) === 'ROUTE_COLUMN_UNKNOWN' && /reads region, which the row does not have \(columns: id, place\)/.test(e.message));
  const withDefault = compiled({ by: 'region', to: { eu: 'public.orders_eu' }, default: 'public.orders_rest' });
  assert.deepEqual(brief(withDefault.route([change('insert', { id: 1, region: 'xx' })], {})), ['upsert public.orders_rest']);
  // Values as text: 1 and '1' pick the same table.
  const byNumber = compiled({ by: 'zone', to: { '1': 'public.z1' } });
  assert.deepEqual(brief(byNumber.route([change('insert', { id: 1, zone: 1 })], {})), ['upsert public.z1']);
  assert.deepEqual(brief(byNumber.route([change('insert', { id: 1, zone: 1n })], {})), ['upsert public.z1']);
  // A numeric column's value (a decimal string) by its exact number, when the column types say numeric.
  assert.deepEqual(brief(byNumber.route([change('insert', { id: 1, zone: '1.00' })], { columnTypes: { zone: 'numeric(6,2)' } })), ['upsert public.z1']);
  assert.deepEqual(brief(byNumber.route([change('delete', null, { id: 1, zone: '1.00' })], { columnTypes: { zone: 'numeric(6,2)' } })), ['delete public.z1']);
});

test('route: an update that moves deletes from the old route (full old row) or from every other route (no old row)', () => {
  // Full old row: the old route only.
  assert.deepEqual(brief(BY.route([change('update', { id: 1, region: 'us' }, { id: 1, region: 'eu' })], {})), ['delete public.orders_eu', 'upsert public.orders_us']);
  // Same route: no delete.
  assert.deepEqual(brief(BY.route([change('update', { id: 1, region: 'us' }, { id: 1, region: 'us' })], {})), ['upsert public.orders_us']);
  // Old row matched nothing (it was dead-lettered): no delete.
  assert.deepEqual(brief(BY.route([change('update', { id: 1, region: 'us' }, { id: 1, region: 'xx' })], {})), ['upsert public.orders_us']);
  // No old row (REPLICA IDENTITY DEFAULT): every other route.
  const three = compiled({ cases: [{ when: 'weight >= 10', table: 'public.heavy' }, { when: "region = 'eu'", table: 'public.eu' }], default: 'public.other' });
  assert.deepEqual(brief(three.route([change('update', { id: 1, region: 'eu', weight: 30 })], {})), ['delete public.eu', 'delete public.other', 'upsert public.heavy']);
  // A route that reads only the key needs no old row.
  const byKey = compiled({ cases: [{ when: 'id < 100', table: 'public.low' }], default: 'public.high' });
  assert.deepEqual(brief(byKey.route([change('update', { id: 1, v: 2 })], {})), ['upsert public.low']);
});

test('route: a delete goes to the old row\'s route, else (key only, or unmatched) to every route table', () => {
  assert.deepEqual(brief(BY.route([change('delete', null, { id: 1, region: 'us' })], {})), ['delete public.orders_us']);
  // REPLICA IDENTITY DEFAULT: the old row is the key, the other columns null.
  assert.deepEqual(brief(BY.route([change('delete', null, { id: 1, region: null })], {})), ['delete public.orders_eu', 'delete public.orders_us']);
  assert.deepEqual(brief(BY.route([change('delete', null, null)], {})), ['delete public.orders_eu', 'delete public.orders_us']);
  assert.deepEqual(brief(BY.route([change('delete', null, { id: 1, region: 'xx' })], {})), ['delete public.orders_eu', 'delete public.orders_us']);
  // _op reads as 'delete'.
  const byOp = compiled({ cases: [{ when: "_op = 'delete'", table: 'public.graveyard' }], default: 'public.live' });
  assert.deepEqual(brief(byOp.route([change('delete', null, { id: 1, v: 1 })], {})), ['delete public.graveyard']);
  assert.deepEqual(brief(byOp.route([change('insert', { id: 1, v: 1 })], {})), ['upsert public.live']);
});

const config = (route: string, extra = '') => `version: 1
pipelines:
  p:
    source: { type: postgres, connection: { database: a }, slot: s, publication: s }
    target: { type: postgres, connection: { database: b } }
    tables:
      - source: public.orders
${extra}        route: ${route}
`;
const problems = (text: string) => {
  try {
    parseConfig(text, 'test.yaml', {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems.map((p) => `${p.line}:${p.path}: ${p.message}`);
  }
  assert.fail('accepted');
};

test('route: load-time errors name the config path', () => {
  const ok = parseConfig(config('{ by: region, to: { eu: public.orders_eu } }', "        transform: [{ exclude: [region] }, { set: { region: eu } }]\n"), 'test.yaml', {});
  assert.deepEqual(ok.pipelines.p!.tables[0]!.route, { by: 'region', to: { eu: 'public.orders_eu' } });
  assert.deepEqual(problems(config("{ by: 'region =', to: { eu: public.orders_eu } }")), [
    `8:pipelines.p.tables[0].route.by: table public.orders, route: expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end (at character 9 of "region =")`,
  ]);
  assert.deepEqual(problems(config("{ cases: [{ when: \"region = 'eu'\", table: public.eu }, { when: 'amount +', table: public.x }] }")), [
    `8:pipelines.p.tables[0].route.cases[1].when: table public.orders, route: expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end (at character 9 of "amount +")`,
  ]);
  assert.deepEqual(problems(config('{ by: region }')), ['8:pipelines.p.tables[0].route.to: `by` needs `to`: value → target table']);
  assert.deepEqual(problems(config('{ default: public.x }')), ['8:pipelines.p.tables[0].route: a route needs `by` (with `to`) or `cases`']);
  assert.match(problems(config('{ by: region, to: { eu: "bad..name" } }'))[0]!, /^8:pipelines\.p\.tables\[0\]\.route\.to\.eu: missing name after the dot/);
  assert.match(problems(config('{ by: region, to: { eu: orders_eu } }'))[0]!, /^8:pipelines\.p\.tables\[0\]\.route\.to\.eu: 'orders_eu' has no schema/);
  assert.deepEqual(problems(config('{ by: region, to: { eu: public.orders_eu } }', '        target: public.x\n        encrypt: [notes]\n')), [
    '8:pipelines.p.tables[0].target: table public.orders: a routed table has no single target: the route picks it (use route.default for rows no route matches)',
    '9:pipelines.p.tables[0].encrypt: encrypt needs the top-level encryption section (encryption: { activeKey: <key id> }, keys in SYNCLINE_ENCRYPTION_KEYS or encryption.keysFile)',
    '9:pipelines.p.tables[0].encrypt: table public.orders: field encryption of a routed table is not supported yet (its keys are per target table)',
  ]);
  assert.deepEqual(problems(config('{ by: region, to: { eu: public.orders_eu } }', '        transform: [{ exclude: [region] }]\n')), [
    '9:pipelines.p.tables[0].route.by: table public.orders, route: reads region, which a transform step drops (exclude) before routing',
  ]);
  assert.deepEqual(problems(config("{ cases: [{ when: \"region = 'eu'\", table: public.eu }] }", '        transform: [{ include: [amount] }]\n')), [
    '9:pipelines.p.tables[0].route.cases: table public.orders, route: reads region, which a transform step drops (include does not list it) before routing',
  ]);
});
