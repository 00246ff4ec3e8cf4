/** Unit tests of the HTTP source's pure parts: JSONPath subset, pagination, values, token bucket, spec, auth. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePath, pathIssue } from './jsonpath.js';
import { firstPage, nextLink, pager } from './pages.js';
import { canonicalValue, sinceValue } from './values.js';
import { authHeaders, TokenBucket } from './client.js';
import { httpSourceSpec } from './spec.js';
import { parseJsonExact } from '../../../src/core/json-exact.js';

test('JSONPath subset: members, quoted members, indexes, [*] as the last step; errors name the place', () => {
  const doc = { data: { items: [{ id: 1 }, { id: 2 }], 'odd key': 'x' }, results: [3, 4] };
  assert.deepEqual(compilePath('$.data.items')(doc), [{ id: 1 }, { id: 2 }]);
  assert.deepEqual(compilePath('$.results[*]')(doc), [3, 4]);
  assert.equal(compilePath("$.data['odd key']")(doc), 'x');
  assert.equal(compilePath('$["data"].items[1].id')(doc), 2);
  assert.equal(compilePath('$.data.items[-1].id')(doc), 2);
  assert.equal(compilePath('$')(doc), doc);
  assert.equal(compilePath('$.data.nothing.deeper')(doc), undefined);
  assert.equal(compilePath('$.results.length')(doc), undefined, 'no member of an array');
  assert.equal(compilePath('$.toString')({}), undefined, 'own members only');
  assert.match(pathIssue('data.items')!, /does not start with \$/);
  assert.match(pathIssue('$.items[*].id')!, /\[\*\] may only be the last step/);
  assert.match(pathIssue('$..id')!, /a name must follow '\.'/);
  assert.match(pathIssue('$.items[?(@.x)]')!, /expected \[n\], \[\*\] or \['name'\] at character 8/);
});

test('pagination: cursor, page, offset, link, none', () => {
  const c = pager({ type: 'cursor', param: 'cursor', path: '$.next' });
  const p0 = firstPage('http://a/x?keep=1', { limit: '2' }, { type: 'cursor', param: 'cursor', path: '$.next' });
  assert.equal(p0.url, 'http://a/x?keep=1&limit=2');
  assert.deepEqual(c(p0, { next: 'abc' }, 2, null), { url: 'http://a/x?keep=1&limit=2&cursor=abc', page: 1 });
  assert.equal(c(p0, { next: null }, 2, null), null);
  assert.equal(c(p0, {}, 2, null), null);
  assert.throws(() => c(p0, { next: { a: 1 } }, 2, null), /not a string or number/);

  const pg = { type: 'page', param: 'page', start: 1, sizeParam: 'per_page', size: 10 } as const;
  const q0 = firstPage('http://a/x', {}, pg);
  assert.equal(q0.url, 'http://a/x?page=1&per_page=10');
  assert.equal(pager(pg)(q0, null, 10, null)!.url, 'http://a/x?page=2&per_page=10');
  assert.equal(pager(pg)(q0, null, 9, null), null, 'a short page is the last');
  assert.equal(pager({ type: 'page', param: 'p', start: 0 })({ url: 'http://a/?p=0', page: 0 }, null, 0, null), null, 'without size: an empty page ends');

  const off = { type: 'offset', param: 'offset', limitParam: 'limit', limit: 5 } as const;
  const o0 = firstPage('http://a/x', {}, off);
  assert.equal(o0.url, 'http://a/x?offset=0&limit=5');
  const o1 = pager(off)(o0, null, 5, null)!;
  assert.equal(o1.url, 'http://a/x?offset=5&limit=5');
  assert.equal(pager(off)(o1, null, 4, null), null);

  assert.equal(nextLink('<https://a/x?p=2>; rel="next", <https://a/x?p=9>; rel="last"', 'https://a/x'), 'https://a/x?p=2');
  assert.equal(nextLink('</x?p=3>; rel=next', 'https://a/x?p=2'), 'https://a/x?p=3', 'relative, unquoted');
  assert.equal(nextLink('<https://a/x?p=1>; rel="prev first"', 'https://a/x'), null);
  assert.equal(nextLink(null, 'https://a/x'), null);
  assert.equal(pager({ type: 'none' })(o0, null, 5, null), null);
});

test('values: each column type, and what does not fit names the column', () => {
  assert.equal(canonicalValue('n', 'long', 12), 12n);
  assert.equal(canonicalValue('n', 'long', '9223372036854775807'), 9223372036854775807n);
  assert.throws(() => canonicalValue('n', 'long', 1.5), /column n \(long\): 1.5 is not an integer value/);
  assert.throws(() => canonicalValue('n', 'long', '9223372036854775808'), /not an integer/);
  assert.equal(canonicalValue('n', 'int', -5), -5);
  assert.throws(() => canonicalValue('n', 'int', 2 ** 31), /not an integer/);
  assert.equal(canonicalValue('p', 'decimal', 12.5), '12.5');
  assert.equal(canonicalValue('p', 'decimal', '0.000000000000000000001'), '0.000000000000000000001');
  assert.throws(() => canonicalValue('p', 'decimal', 'twelve'), /column p \(decimal\): "twelve" is not a decimal value/);
  assert.equal(canonicalValue('d', 'double', 0.1), 0.1);
  assert.equal(canonicalValue('b', 'bool', false), false);
  assert.throws(() => canonicalValue('b', 'bool', 'yes'), /not a bool/);
  assert.equal(canonicalValue('s', 'string', 7), '7');
  assert.throws(() => canonicalValue('s', 'string', { a: 1 }), /not a string/);
  assert.equal(canonicalValue('t', 'timestamptz', '2026-12-05T10:00:00.5+01:00'), '2026-12-05T09:00:00.500000Z');
  assert.equal(canonicalValue('t', 'timestamptz', '2026-12-05T10:00:00Z'), '2026-12-05T10:00:00.000000Z');
  assert.throws(() => canonicalValue('t', 'timestamptz', 'yesterday'), /column t \(timestamptz\)/);
  assert.equal(canonicalValue('d', 'date', '2026-02-28'), '2026-02-28');
  assert.throws(() => canonicalValue('d', 'date', '2026-02-30'), /not a date/);
  assert.equal(canonicalValue('j', 'json', { a: [1, 'x'] }), '{"a":[1,"x"]}');
  assert.equal(canonicalValue('x', 'long', undefined), null);
  assert.equal(canonicalValue('x', 'long', null), null);
});

test('incremental parameter: watermark minus overlap in each format', () => {
  const wm = '2026-12-05T10:00:05.123456Z';
  assert.equal(sinceValue('timestamp', wm, 5000, 'iso'), '2026-12-05T10:00:00.123Z');
  assert.equal(sinceValue('timestamp', wm, 0, 'epoch-ms'), String(Date.UTC(2026, 11, 5, 10, 0, 5, 123)));
  assert.equal(sinceValue('timestamp', wm, 123, 'epoch-s'), String(Date.UTC(2026, 11, 5, 10, 0, 5) / 1000));
  assert.equal(sinceValue('version', '1000', 10, 'iso'), '990');
});

test('token bucket: rate and burst', () => {
  let now = 0;
  const b = new TokenBucket(10, 2, () => now);
  assert.equal(b.reserve(), 0);
  assert.equal(b.reserve(), 0, 'burst of 2');
  assert.equal(b.reserve(), 100, 'then one every 100 ms');
  now = 1000;
  assert.equal(b.reserve(), 0, 'refilled, at most the burst');
  assert.equal(b.reserve(), 0);
  assert.equal(b.reserve(), 100);
});

test('auth from the environment only; a missing variable is named, its value never', () => {
  assert.deepEqual(authHeaders({ bearer: { env: 'T' } }, { T: 's3cret' }, 'p'), { authorization: 'Bearer s3cret' });
  assert.deepEqual(authHeaders({ basic: { userEnv: 'U', passwordEnv: 'P' } }, { U: 'u', P: 'p:w' }, 'p'), { authorization: 'Basic ' + Buffer.from('u:p:w').toString('base64') });
  assert.deepEqual(authHeaders({ header: { name: 'X-Api-Key', env: 'K' } }, { K: 'k' }, 'p'), { 'x-api-key': 'k' });
  assert.throws(() => authHeaders({ bearer: { env: 'NOPE' } }, {}, 'p1'), (err: Error & { kind?: string }) => err.kind === 'fatal' && /pipeline p1: source.auth needs the environment variable NOPE/.test(err.message));
});

test('spec: strict, clear errors for the tracking settings and the paths', () => {
  const ok = { type: 'http', endpoints: { 'api.items': { url: 'http://a/items', columns: { id: { type: 'long' } }, key: ['id'] } } };
  const parsed = httpSourceSpec.parse(ok);
  assert.equal(parsed.endpoints['api.items']!.mode, 'hash');
  assert.equal(parsed.endpoints['api.items']!.pagination.type, 'none');
  const issues = (v: unknown) => {
    const r = httpSourceSpec.safeParse(v);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  const ep = (e: Record<string, unknown>) => ({ type: 'http', endpoints: { 'api.items': { url: 'http://a/items', columns: { id: { type: 'long' }, at: { type: 'string' } }, key: ['id'], ...e } } });
  assert.deepEqual(issues(ep({ key: ['nope'] })), ['endpoints.api.items.key.0: key column \'nope\' is not in columns (have: id, at)']);
  assert.deepEqual(issues(ep({ mode: 'timestamp', column: 'at', since: { param: 's' } })), ["endpoints.api.items.column: mode timestamp needs a timestamptz tracking column; 'at' is string"]);
  assert.deepEqual(issues(ep({ mode: 'version', column: 'id' })), ['endpoints.api.items.since: mode version needs since.param (the query parameter of the incremental listing)']);
  assert.match(issues(ep({ recordsPath: 'data' })).join(), /recordsPath: 'data' does not start with \$/);
  assert.match(issues(ep({ pagination: { type: 'cursor', path: '$..x' } })).join(), /pagination.path/);
  assert.match(issues(ep({ pagination: { type: 'pages' } })).join(), /pagination.type/);
  assert.match(issues({ ...ok, auth: { bearer: { env: 'A' }, header: { name: 'x', env: 'B' } } }).join(), /give one of bearer, basic, header/);
  assert.match(issues({ ...ok, auth: { bearer: { token: 'x' } } }).join(), /auth.bearer/);
  assert.match(issues({ ...ok, extra: 1 }).join(), /extra/);
});

test('an integer beyond 2^53 in an API answer keeps every digit (parsed exactly, not through a double)', () => {
  const body = parseJsonExact('{"items":[{"id":9223372036854775807,"n":-9007199254740993,"doc":{"big":12345678901234567890}}]}') as { items: Record<string, unknown>[] };
  const rec = body.items[0]!;
  assert.equal(canonicalValue('id', 'long', rec.id), 9223372036854775807n);
  assert.equal(canonicalValue('n', 'decimal', rec.n), '-9007199254740993');
  assert.equal(canonicalValue('n', 'string', rec.n), '-9007199254740993');
  assert.equal(canonicalValue('doc', 'json', rec.doc), '{"big":12345678901234567890}');
  assert.throws(() => canonicalValue('id', 'int', rec.id), /column id \(int\): .* is not an integer value/);
});
