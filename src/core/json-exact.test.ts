import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseJsonExact, stringifyJsonExact } from './json-exact.js';

test('parseJsonExact: integers beyond 2^53 as exact bigints, the rest as JSON.parse', () => {
  assert.deepEqual(parseJsonExact('{"a":9223372036854775807,"b":-9223372036854775808,"c":9007199254740991,"d":1.5e300,"e":"12345678901234567890","f":[12345678901234567890.5,-0,1E2]}'), {
    a: 9223372036854775807n, b: -9223372036854775808n, c: 9007199254740991, d: 1.5e300, e: '12345678901234567890', f: [12345678901234567890.5, -0, 100],
  });
  assert.deepEqual(parseJsonExact('{"s":"a \\" 99999999999999999999 \\\\","n":99999999999999999999}'), { s: 'a " 99999999999999999999 \\', n: 99999999999999999999n });
  // A text already holding the mark is parsed plainly (no string becomes a bigint).
  assert.deepEqual(parseJsonExact('{"s":"\\u0000syncline-int:1","n":99999999999999999999}'), { s: '\u0000syncline-int:1', n: 1e20 });
  assert.throws(() => parseJsonExact('{"a":99999999999999999999'), SyntaxError);
  assert.equal(stringifyJsonExact({ a: 9223372036854775807n, b: [1, 'x'] }), '{"a":9223372036854775807,"b":[1,"x"]}');
});
