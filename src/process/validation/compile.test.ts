import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { Row } from '../../core/envelope.js';
import { compileTable, type CompileOptions, type FieldRules, type TableValidateConfig, type TableValidator } from './compile.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/validators.mjs', import.meta.url));
const NOW = Date.UTC(2026, 10, 25, 12, 0, 0); // 2026-11-25T12:00:00Z

function compile(spec: TableValidateConfig, opts: Partial<CompileOptions> = {}): TableValidator {
  const r = compileTable(spec, { table: 'public.t', hasModule: false, ...opts });
  assert.deepEqual(r.problems, []);
  return r.validator!;
}

const field = (rules: FieldRules, opts: Partial<CompileOptions> = {}) => compile({ fields: { f: rules } }, opts);

/** Rule names violated by `value` in field f (empty: valid). */
function violated(v: TableValidator, value: Row[string] | undefined, columnTypes?: Record<string, string>): string[] {
  const row: Row = value === undefined ? {} : { f: value };
  return (v.validate(row, columnTypes, undefined, NOW)?.violations ?? []).map((x) => x.rule);
}

test('required: present passes, null and absent fail; other rules skip null', () => {
  const v = field({ required: true, minLength: 3 });
  assert.deepEqual(violated(v, 'abc'), []);
  assert.deepEqual(violated(v, ''), ['minLength']); // empty text is present
  assert.deepEqual(violated(v, null), ['required']);
  assert.deepEqual(violated(v, undefined), ['required']);
  assert.deepEqual(violated(field({ minLength: 3 }), null), []);
});

test('type: each type accepts its canonical values and refuses others', () => {
  const cases: [FieldRules['type'], Row[string][], Row[string][], Record<string, string>?][] = [
    ['string', ['x', ''], [1, true, 1n]],
    ['number', [1, 1.5, -0, 12n, NaN, '12.50'], ['12.50x', true, [1]], { f: 'numeric(12,2)' }],
    ['integer', [1, -7, 12n, '42.00'], [1.5, '42.10', 'x'], { f: 'numeric(12,2)' }],
    ['boolean', [true, false], ['true', 1, 0n]],
    ['date', ['2024-02-29', '0044-03-15 BC', 'infinity'], ['2023-02-29', '2024-01-01T00:00:00.000000', 20240101]],
    ['datetime', ['2024-01-31T23:59:59.123456Z', '2024-01-31T23:59:59.123456', '-infinity'], ['2024-01-31', '2024-01-31T24:00:01.000000Z', 'soon']],
    ['uuid', ['0b7c6b2e-8f5d-4b0e-9c1a-2f3d4e5f6a7b'], ['0b7c6b2e8f5d4b0e9c1a2f3d4e5f6a7b', 'x']],
    ['object', ['{"tier": 1}'], ['[1,2]', '"x"', 'not json'], { f: 'jsonb' }],
    ['array', [['a', 'b'], [], '[1, 2]'], ['{"a":1}', 'x'], { f: 'jsonb' }],
  ];
  for (const [type, good, bad, ct] of cases) {
    const v = field({ type });
    for (const g of good) assert.deepEqual(violated(v, g, ct), [], `${type} accepts ${String(g)}`);
    for (const b of bad) assert.deepEqual(violated(v, b, ct), ['type'], `${type} refuses ${String(b)}`);
  }
});

test("type number: a numeric column's decimal text is a number, a text column's is not (without coerce)", () => {
  const v = field({ type: 'number' });
  assert.deepEqual(violated(v, '12.50', { f: 'numeric(12,2)' }), []);
  assert.deepEqual(violated(v, '12.50', { f: 'text' }), ['type']);
  assert.deepEqual(violated(v, '12.50'), ['type']); // column types unknown: text is text
  // A json column's object text is an object; a text column's is text.
  assert.deepEqual(violated(field({ type: 'object' }), '{"a":1}', { f: 'text' }), ['type']);
  assert.deepEqual(violated(field({ type: 'object' }), '{"a":1}'), []);
});

test('type violation message says what was expected and skips the field\'s other rules', () => {
  const v = field({ type: 'integer', min: 0, enum: [1, 2] });
  const out = v.validate({ f: 'abc' }, undefined, undefined, NOW)!;
  assert.deepEqual(out.violations, [{ field: 'f', rule: 'type', message: 'must be an integer, got text', value: 'abc' }]);
});

test('coerce: clean conversions replace the value and are recorded; others are violations', () => {
  const cases: [NonNullable<FieldRules['type']>, Row[string], Row[string]][] = [
    ['integer', '42', 42],
    ['integer', '-7', -7],
    ['integer', '42.0', 42],
    ['integer', '90071992547409930', 90071992547409930n],
    ['number', '42', 42],
    ['number', '-0.125', -0.125],
    ['number', '1e3', 1000],
    ['boolean', 'true', true],
    ['boolean', 'F', false],
    ['boolean', 'yes', true],
    ['boolean', 1, true],
    ['boolean', 0, false],
    ['string', 42, '42'],
    ['string', 12n, '12'],
    ['string', true, 'true'],
  ];
  for (const [type, from, to] of cases) {
    const v = field({ type, coerce: true });
    const row: Row = { f: from };
    const out = v.validate(row, undefined, undefined, NOW);
    assert.ok(out, `${type} ${String(from)}`);
    assert.deepEqual(out.violations, []);
    assert.deepEqual(out.coerced, [{ field: 'f', from: typeof from, to: type }]);
    assert.deepEqual(row.f, to, `${String(from)} → ${type}`);
  }
  const refused: [NonNullable<FieldRules['type']>, Row[string]][] = [
    ['integer', '4.5'],
    ['integer', '42abc'],
    ['integer', 4.5],
    ['number', '12345678901234567890'], // more digits than a double keeps
    ['number', ' 42'],
    ['number', 'NaN'],
    ['boolean', 'maybe'],
    ['boolean', 2],
    ['string', [1]],
  ];
  for (const [type, from] of refused) {
    const row: Row = { f: from };
    const out = field({ type, coerce: true }).validate(row, undefined, undefined, NOW)!;
    assert.deepEqual(out.violations.map((x) => x.rule), ['type'], `${type} refuses ${String(from)}`);
    assert.match(out.violations[0]!.message, /does not convert/);
    assert.deepEqual(row.f, from, 'value unchanged');
  }
  // A value of the right type is not coerced, and a valid record returns nothing.
  assert.equal(field({ type: 'integer', coerce: true }).validate({ f: 7 }, undefined, undefined, NOW), undefined);
  // Coerced values then meet the other rules.
  assert.deepEqual(violated(field({ type: 'integer', coerce: true, max: 10 }), '42'), ['max']);
});

test('format: email, phone (E.164), url, uri, uuid, hostname, ipv4, ipv6 accept and reject', () => {
  const cases: [NonNullable<FieldRules['format']>, string[], string[]][] = [
    ['email', ['user12@example.com', 'new12@example.com', 'a.b+tag@sub.example.org'], ['user12@', 'user at example.com', '@example.com', 'a@b@c.com']],
    ['phone', ['+14155550123', '+33612345678', '+49'], ['14155550123', '+0123456', '+1 415 555 0123', '+1234567890123456']],
    ['url', ['https://example.com/a?b=c', 'http://shop.example.org:8080/x'], ['example.com', 'https://', 'mailto:a@b.c', 'http://localhost/x']],
    ['uri', ['mailto:a@b.c', 'urn:isbn:0451450523', 'https://x.y/z'], ['not a uri', '/relative/path']],
    ['uuid', ['0b7c6b2e-8f5d-4b0e-9c1a-2f3d4e5f6a7b'], ['0b7c6b2e-8f5d-4b0e-9c1a', 'zzzzzzzz-8f5d-4b0e-9c1a-2f3d4e5f6a7b']],
    ['hostname', ['db-1.example.com', 'localhost'], ['-bad-.com', 'under_score.com']],
    ['ipv4', ['192.168.0.1', '8.8.8.8'], ['256.1.1.1', '1.2.3']],
    ['ipv6', ['::1', '2001:db8::8a2e:370:7334'], ['2001:db8::g', '1.2.3.4']],
  ];
  for (const [format, good, bad] of cases) {
    const v = field({ format });
    for (const g of good) assert.deepEqual(violated(v, g), [], `${format} accepts ${g}`);
    for (const b of bad) assert.deepEqual(violated(v, b), ['format'], `${format} refuses ${b}`);
  }
  const out = field({ format: 'phone' }).validate({ f: '555-0123' }, undefined, undefined, NOW)!;
  assert.match(out.violations[0]!.message, /E\.164/);
});

test('pattern: unicode regular expression on the text (numbers in their decimal form)', () => {
  const v = field({ pattern: '^[A-Z]{2}$' });
  assert.deepEqual(violated(v, 'FR'), []);
  assert.deepEqual(violated(v, 'fr'), ['pattern']);
  assert.deepEqual(violated(v, 'FRA'), ['pattern']);
  assert.deepEqual(violated(field({ pattern: '^\\d{5}$' }), 75001), []);
  assert.deepEqual(violated(field({ pattern: '^\\p{Lu}' }), 'Émile'), []);
  assert.equal(field({ pattern: '^[A-Z]{2}$' }).validate({ f: 'x' }, undefined, undefined, NOW)!.violations[0]!.message, 'must match /^[A-Z]{2}$/');
});

test('min/max: numbers, int8 and numeric decimal text compare exactly', () => {
  const v = field({ min: 0, max: 100.5 });
  for (const ok of [0, 100.5, 0n, 100n, '0.00', '100.50', '100.4999999999999999999999']) assert.deepEqual(violated(v, ok), [], `accepts ${String(ok)}`);
  for (const bad of [-1, -1n, '-0.01', '-0.0000000000000000000001']) assert.deepEqual(violated(v, bad), ['min'], `refuses ${String(bad)}`);
  for (const bad of [100.51, 101n, '100.51', '100.5000000000000000000001', 'Infinity']) assert.deepEqual(violated(v, bad), ['max'], `refuses ${String(bad)}`);
  assert.deepEqual(violated(v, NaN), ['min', 'max']);
  // Beyond double precision: 2^53 + 1 as int8 and as numeric text.
  const big = field({ max: 9007199254740992 });
  assert.deepEqual(violated(big, 9007199254740993n), ['max']);
  assert.deepEqual(violated(big, '9007199254740993'), ['max']);
  assert.deepEqual(violated(big, '9007199254740992.000'), []);
  assert.deepEqual(violated(v, 'abc'), ['min', 'max']);
  assert.equal(v.validate({ f: -2 }, undefined, undefined, NOW)!.violations[0]!.message, 'must be >= 0');
});

test('min/max: absolute dates and date-times', () => {
  const d = field({ type: 'date', min: '2020-01-01', max: '2020-12-31' });
  assert.deepEqual(violated(d, '2020-01-01'), []);
  assert.deepEqual(violated(d, '2020-12-31'), []);
  assert.deepEqual(violated(d, '2019-12-31'), ['min']);
  assert.deepEqual(violated(d, '2021-01-01'), ['max']);
  assert.deepEqual(violated(d, '2020-06-01 BC'), ['min']);
  const t = field({ type: 'datetime', min: '2024-01-01T00:00:00Z', max: '2024-01-01T12:00:00+02:00' });
  assert.deepEqual(violated(t, '2024-01-01T00:00:00.000000Z'), []);
  assert.deepEqual(violated(t, '2024-01-01T10:00:00.000000Z'), []);
  assert.deepEqual(violated(t, '2024-01-01T10:00:00.000001Z'), ['max']);
  assert.deepEqual(violated(t, '2023-12-31T23:59:59.999999Z'), ['min']);
  assert.deepEqual(violated(t, 'infinity'), ['max']);
  assert.equal(t.validate({ f: '2023-12-31T23:59:59.999999Z' }, undefined, undefined, NOW)!.violations[0]!.message, 'must not be before 2024-01-01T00:00:00Z');
});

test('min/max: relative bounds resolve against the validation time', () => {
  // NOW = 2026-11-25T12:00:00Z
  const t = field({ type: 'datetime', min: '-P1Y', max: 'PT12H' });
  assert.deepEqual(violated(t, '2025-11-25T12:00:00.000000Z'), []);
  assert.deepEqual(violated(t, '2025-11-25T11:59:59.999999Z'), ['min']);
  assert.deepEqual(violated(t, '2026-11-26T00:00:00.000000Z'), []);
  assert.deepEqual(violated(t, '2026-11-26T00:00:00.000001Z'), ['max']);
  const msg = t.validate({ f: '2020-01-01T00:00:00.000000Z' }, undefined, undefined, NOW)!.violations[0]!.message;
  assert.equal(msg, 'must not be before -P1Y (2025-11-25T12:00:00Z)');
  // The same record later: the bound moved.
  assert.deepEqual(t.validate({ f: '2025-11-25T12:00:00.000000Z' }, undefined, undefined, NOW + 1)?.violations.map((x) => x.rule), ['min']);
  // A date compares with the day of a relative bound.
  const d = field({ type: 'date', min: '-P30D', max: 'now' });
  assert.deepEqual(violated(d, '2026-10-26'), []);
  assert.deepEqual(violated(d, '2026-10-25'), ['min']);
  assert.deepEqual(violated(d, '2026-11-25'), []);
  assert.deepEqual(violated(d, '2026-11-26'), ['max']);
  // Calendar months: 2026-03-31 − P1M = 2026-02-28.
  const m = field({ type: 'date', min: '-P1M' });
  assert.deepEqual(m.validate({ f: '2026-02-28' }, undefined, undefined, Date.UTC(2026, 2, 31, 8))?.violations ?? [], []);
  assert.deepEqual(m.validate({ f: '2026-02-27' }, undefined, undefined, Date.UTC(2026, 2, 31, 8))?.violations.map((x) => x.rule), ['min']);
  // Default validation time is now.
  const recent = new Date(Date.now() - 3_600_000).toISOString().replace('Z', '000Z');
  assert.equal(field({ type: 'datetime', min: '-PT2H' }).validate({ f: recent }), undefined);
});

test('minLength/maxLength: code points of text, items of arrays', () => {
  const v = field({ minLength: 2, maxLength: 3 });
  assert.deepEqual(violated(v, 'ab'), []);
  assert.deepEqual(violated(v, 'abc'), []);
  assert.deepEqual(violated(v, 'a'), ['minLength']);
  assert.deepEqual(violated(v, 'abcd'), ['maxLength']);
  assert.deepEqual(violated(v, '😀😀😀'), []); // 6 UTF-16 units, 3 characters
  assert.deepEqual(violated(v, '😀'), ['minLength']);
  assert.deepEqual(violated(v, ['a', 'b']), []);
  assert.deepEqual(violated(v, ['a', 'b', 'c', 'd']), ['maxLength']);
  assert.equal(v.validate({ f: 'a' }, undefined, undefined, NOW)!.violations[0]!.message, 'must be at least 2 characters long');
});

test('enum: text, numbers (exact, any representation) and booleans', () => {
  const s = field({ enum: ['active', 'vip'] });
  assert.deepEqual(violated(s, 'vip'), []);
  assert.deepEqual(violated(s, 'VIP'), ['enum']);
  assert.equal(s.validate({ f: 'gone' }, undefined, undefined, NOW)!.violations[0]!.message, 'must be one of: active, vip');
  const n = field({ type: 'number', enum: [1, 2.5] });
  assert.deepEqual(violated(n, 1), []);
  assert.deepEqual(violated(n, 1n), []);
  assert.deepEqual(violated(n, '2.50', { f: 'numeric(4,2)' }), []);
  assert.deepEqual(violated(n, 2), ['enum']);
  assert.deepEqual(violated(field({ enum: [true] }), false), ['enum']);
});

test('every violated rule is listed, in field order then cross-field rules', () => {
  const v = compile({
    fields: { email: { required: true, format: 'email', maxLength: 5 }, status: { enum: ['a'] }, n: { required: true } },
    rules: [{ name: 'n_positive', check: 'n > 0', message: 'n must be positive' }],
  });
  const out = v.validate({ email: 'not-an-email', status: 'b', n: -1 }, undefined, undefined, NOW)!;
  assert.deepEqual(
    out.violations.map((x) => `${x.field}:${x.rule}`),
    ['email:format', 'email:maxLength', 'status:enum', 'n:n_positive'],
  );
  assert.equal(v.ruleCount, 6);
});

test('cross-field rules: pass, fail with the message and the values read, null passes', () => {
  const v = compile({
    fields: {},
    rules: [
      { name: 'shipped_after_ordered', check: 'shipped_at >= ordered_at', message: 'shipped before it was ordered' },
      { name: 'total_is_sum', check: 'total = sum(lines)' },
    ],
  });
  const ct = { total: 'numeric(12,2)', lines: 'numeric(10,2)[]' };
  const ok: Row = { ordered_at: '2024-01-01T10:00:00.000000Z', shipped_at: '2024-01-02T09:00:00.000000Z', total: '29.97', lines: ['9.99', '9.99', '9.99'] };
  assert.equal(v.validate(ok, ct, undefined, NOW), undefined);
  assert.equal(v.validate({ ...ok, shipped_at: null }, ct, undefined, NOW), undefined, 'not shipped yet: unknown passes');
  const out = v.validate({ ...ok, shipped_at: '2023-12-31T10:00:00.000000Z', total: '30.00' }, ct, undefined, NOW)!;
  assert.deepEqual(out.violations, [
    { field: 'shipped_at,ordered_at', rule: 'shipped_after_ordered', message: 'shipped before it was ordered', value: { shipped_at: '2023-12-31T10:00:00.000000Z', ordered_at: '2024-01-01T10:00:00.000000Z' } },
    { field: 'total,lines', rule: 'total_is_sum', message: 'check failed: total = sum(lines)', value: { total: '30.00', lines: ['9.99', '9.99', '9.99'] } },
  ]);
});

test('cross-field rules see coerced values; a rule reading a field of the wrong type is skipped', () => {
  const v = compile({ fields: { qty: { type: 'integer', coerce: true } }, rules: [{ name: 'positive', check: 'qty > 0' }] });
  assert.deepEqual(v.validate({ qty: '5' }, undefined, undefined, NOW)!.violations, []);
  assert.deepEqual(v.validate({ qty: '-5' }, undefined, undefined, NOW)!.violations.map((x) => x.rule), ['positive']);
  assert.deepEqual(v.validate({ qty: 'many' }, undefined, undefined, NOW)!.violations.map((x) => x.rule), ['type']);
});

test('a rule that cannot be evaluated fails with the reason', () => {
  const v = compile({ rules: [{ name: 'r', check: 'status > 3', message: 'bad status' }] });
  const out = v.validate({ status: 'open' }, undefined, undefined, NOW)!;
  assert.equal(out.violations[0]!.message, "bad status (cannot evaluate: cannot compare text 'open' with number 3)");
});

test('unchanged TOASTed columns (keep) are neither required nor read by rules', () => {
  const v = compile({ fields: { body: { required: true, minLength: 1 } }, rules: [{ name: 'r', check: 'len(body) < len(title)' }] });
  assert.equal(v.validate({ title: 'x' }, undefined, ['body'], NOW), undefined);
  assert.deepEqual(v.validate({ title: 'x' }, undefined, [], NOW)!.violations.map((x) => x.rule), ['required']);
});

test('masking: sensitive fields and pipeline mask show *** (also in cross-field values and reasons)', () => {
  const v = compile(
    {
      fields: { email: { format: 'email', sensitive: true }, ssn: { pattern: '^\\d{9}$' }, name: { maxLength: 2 } },
      rules: [{ name: 'r', check: 'ssn > 5', message: 'ssn rule' }],
    },
    { mask: ['ssn'] },
  );
  const out = v.validate({ email: 'secret@@x', ssn: 'abc-12', name: 'visible' }, undefined, undefined, NOW)!;
  assert.deepEqual(out.violations, [
    { field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' },
    { field: 'ssn', rule: 'pattern', message: 'must match /^\\d{9}$/', value: '***' },
    { field: 'name', rule: 'maxLength', message: 'must be at most 2 characters long', value: 'visible' },
    { field: 'ssn', rule: 'r', message: 'ssn rule (cannot evaluate: cannot compare text with number)', value: { ssn: '***' } },
  ]);
  assert.ok(!JSON.stringify(out).includes('secret@@x') && !JSON.stringify(out).includes('abc-12'));
});

test('custom functions: true passes, false and a message fail, a throw fails with the reason', async () => {
  const functions = { ...(await import(FIXTURE)) } as Record<string, unknown>;
  const v = compile(
    {
      fields: {
        sku: { custom: 'isSku' },
        n: { custom: 'isEven' },
        discount: { custom: 'discountWithinPrice' },
        x: { custom: 'explodes' },
      },
    },
    { hasModule: true, functions },
  );
  assert.deepEqual(v.validate({ sku: 'SKU-1', n: 2, discount: '5.00', price: '10.00' }, undefined, undefined, NOW), undefined);
  const out = v.validate({ sku: 'sku1', n: 3, discount: '15.00', price: '10.00', x: 1 }, undefined, undefined, NOW)!;
  assert.deepEqual(
    out.violations.map((x) => [x.field, x.rule, x.message]),
    [
      ['sku', 'custom', "failed custom check 'isSku'"],
      ['n', 'custom', '3 is odd'],
      ['discount', 'custom', 'discount exceeds the price'],
      ['x', 'custom', "custom function 'explodes' threw: boom"],
    ],
  );
  // Not called for null.
  assert.equal(v.validate({ sku: null, n: null, discount: null, x: null }, undefined, undefined, NOW), undefined);
  // On a masked field, a message written by the function (which may quote the value) is not shown.
  const m = compile({ fields: { n: { custom: 'isEven', sensitive: true }, x: { custom: 'explodes' } } }, { hasModule: true, functions, mask: ['x'] });
  assert.deepEqual(m.validate({ n: 12345677, x: 1 }, undefined, undefined, NOW)!.violations, [
    { field: 'n', rule: 'custom', message: "failed custom check 'isEven' (its message is not shown: masked field)", value: '***' },
    { field: 'x', rule: 'custom', message: "custom function 'explodes' threw (its message is not shown: masked field)", value: '***' },
  ]);
});

test('custom functions: unknown, not a function, async and without module are compile problems', async () => {
  const functions = { ...(await import(FIXTURE)) } as Record<string, unknown>;
  const problems = (fields: TableValidateConfig['fields'], hasModule = true) =>
    compileTable({ fields }, { table: 't', hasModule, functions: hasModule ? functions : undefined, suggest: (w, c) => c.find((x) => x.toLowerCase() === w.toLowerCase()) }).problems.map((p) => p.message);
  assert.match(problems({ a: { custom: 'issku' } })[0]!, /^unknown custom function 'issku': the validation module exports discountWithinPrice, explodes, isEven, isSku, slowCheck \(did you mean 'isSku'\?\)$/);
  assert.match(problems({ a: { custom: 'notAFunction' } })[0]!, /is a number, not a function/);
  assert.match(problems({ a: { custom: 'slowCheck' } })[0]!, /must be synchronous/);
  assert.match(problems({ a: { custom: 'isSku' } }, false)[0]!, /needs the pipeline's validation\.module/);
});

test('compile problems: paths and reasons', () => {
  const r = compileTable(
    {
      fields: {
        a: { pattern: '([a-z]', coerce: true },
        b: { type: 'date', min: 5, max: 'tomorrow' },
        c: { type: 'integer', min: 10, max: 1, enum: ['x'] },
        d: { type: 'date', coerce: true, minLength: 2 },
        e: { type: 'date', min: '2020-01-01T10:00:00Z' },
        f: { minLength: 5, maxLength: 1, format: 'email', type: 'boolean' },
        old_name: {},
      },
      rules: [
        { name: 'r1', check: 'a >= ' },
        { name: 'r1', check: 'a + 1' },
        { name: 'r3', check: "old_name = 'x' and foo(a)" },
        { name: 'r4', check: 'old_name > 1' },
      ],
    },
    { table: 't', hasModule: false, columns: { old_name: 'new_name' } },
  );
  const got = r.problems.map((p) => `${p.path.join('.')}: ${p.message}`);
  assert.equal(r.validator, undefined);
  assert.deepEqual(got, [
    'fields.a.coerce: coerce needs a type to convert to',
    'fields.a.pattern: invalid regular expression: /([a-z]/u: Unterminated group',
    "fields.b.min: a date field needs a date bound ('2024-01-31') or a relative one (-P1Y), not the number 5",
    "fields.b.max: cannot read 'tomorrow': expected a number, a date ('2024-01-31'), a date-time ('2024-01-31T12:00:00Z'), a duration relative to now (-P1Y, P30D, -PT12H) or now",
    'fields.c.min: min 10 is greater than max 1',
    "fields.c.enum.0: 'x' is text, but type is integer",
    'fields.d.coerce: coerce applies to types string, number, integer and boolean, not date',
    'fields.d.minLength: minLength applies to text and arrays, but type is date',
    "fields.e.min: a date field needs a date bound ('YYYY-MM-DD'), got the date-time '2020-01-01T10:00:00Z'",
    'fields.f.format: format applies to text, but type is boolean',
    'fields.f.minLength: minLength applies to text and arrays, but type is boolean',
    'fields.f.maxLength: maxLength applies to text and arrays, but type is boolean',
    'fields.f.minLength: minLength 5 is greater than maxLength 1',
    "fields.old_name: 'old_name' is a source column renamed to 'new_name' (columns); validation runs on the mapped record: write 'new_name'",
    "rules.0.check: cannot parse check at character 6 (a >= ⟨here⟩): expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end",
    "rules.1.name: rule name 'r1' is already used by rules[0]",
    'rules.1.check: cannot parse check at character 3 (a ⟨here⟩+ 1): a check must be a condition (a comparison, and/or/not, is null), not a value',
    "rules.2.check: cannot parse check at character 20 (old_name = 'x' and ⟨here⟩foo(a)): unknown function 'foo' (functions: sum(array), len(text or array), abs(number), coalesce(a, b, …))",
    "rules.3.check: 'old_name' is a source column renamed to 'new_name' (columns); validation runs on the mapped record: write 'new_name'",
  ]);
});
