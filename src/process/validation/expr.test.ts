import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Row } from '../../core/envelope.js';
import { compileCheck, EvalFailure, ExprError } from './expr.js';

const run = (check: string, row: Row, columnTypes?: Record<string, string>, numeric: string[] = []) => compileCheck(check, new Set(numeric)).test(row, { columnTypes });

test('comparisons of numbers, text, booleans and timestamps', () => {
  assert.equal(run('a < b', { a: 1, b: 2 }), true);
  assert.equal(run('a >= b', { a: 1, b: 2 }), false);
  assert.equal(run('a = b', { a: 'x', b: 'x' }), true);
  assert.equal(run('a != b', { a: 'x', b: 'y' }), true);
  assert.equal(run('a <> b', { a: 'x', b: 'x' }), false);
  assert.equal(run('a == true', { a: true }), true);
  assert.equal(run("status = 'shipped'", { status: 'shipped' }), true);
  assert.equal(run("name = 'it''s'", { name: "it's" }), true);
  // Timestamps by time: canonical strings, a literal date, another offset, BC.
  assert.equal(run('shipped_at >= ordered_at', { shipped_at: '2024-01-02T00:00:00.000000Z', ordered_at: '2024-01-01T23:59:59.999999Z' }), true);
  assert.equal(run("ordered_at >= '2024-01-01'", { ordered_at: '2023-12-31T23:59:59.000000Z' }), false);
  assert.equal(run("t = '2024-01-01T02:00:00+02:00'", { t: '2024-01-01T00:00:00.000000Z' }), true);
  assert.equal(run("d > '0001-01-01 BC'", { d: '0001-01-01' }), true);
  assert.equal(run('d < e', { d: '10000-01-01', e: 'infinity' }), true);
});

test('numbers are exact across int, int8 and numeric decimal text', () => {
  const ct = { total: 'numeric(12,2)', price: 'numeric(10,2)' };
  assert.equal(run('total = 9.99 + 9.99 + 9.99', { total: '29.97' }, ct), true);
  assert.equal(run('0.1 + 0.2 = 0.3', {}), true);
  assert.equal(run('total = qty * price', { total: '29.97', qty: 3, price: '9.99' }, ct), true);
  assert.equal(run('big > 9007199254740992', { big: 9007199254740993n }), true);
  assert.equal(run('total = 30', { total: '30.00' }, ct), true); // numeric column: 30.00 = 30
  assert.equal(run('total = 30', { total: '30.00' }, undefined, ['total']), true); // declared type number
  assert.equal(run('total > 2', { total: '10' }), true); // text compared with a number reads as one
  assert.equal(run('a / b = 2.5', { a: 5, b: 2 }), true);
  assert.equal(run('a / b > 0.3333', { a: 1, b: 3 }), true);
  assert.equal(run('a % b = 1', { a: 7, b: 3 }), true);
  assert.equal(run('-a = 0 - a', { a: '1.5' }, { a: 'numeric' }), true);
  assert.equal(run('a / 0 = 1', { a: 1 }), null, 'division by zero is unknown');
});

test('functions: sum, len, abs, coalesce', () => {
  assert.equal(run('total = sum(lines)', { total: '29.97', lines: ['9.99', '9.99', '9.99'] }, { total: 'numeric' }), true);
  assert.equal(run('sum(lines) = 6', { lines: [1, 2, null, 3] }), true, 'null items are skipped');
  assert.equal(run('sum(lines) = 0', { lines: [] }), true);
  assert.equal(run('len(name) = 3', { name: 'a😀b' }), true);
  assert.equal(run('len(tags) >= 2', { tags: ['a', 'b'] }), true);
  assert.equal(run('abs(delta) <= 1', { delta: -1 }), true);
  assert.equal(run('abs(delta) <= 1', { delta: '-1.01' }, { delta: 'numeric' }), false);
  assert.equal(run('coalesce(shipped_at, updated_at) >= ordered_at', { shipped_at: null, updated_at: '2024-01-02', ordered_at: '2024-01-01' }), true);
  assert.equal(run('SUM(lines) = 1', { lines: [1] }), true, 'function names are case-insensitive');
});

test('null propagates like SQL: a check fails only when false', () => {
  assert.equal(run('a > 1', { a: null }), null);
  assert.equal(run('a > 1', {}), null, 'an absent field is null');
  assert.equal(run('a > 1 and b', { a: null, b: false }), false);
  assert.equal(run('a > 1 or b', { a: null, b: true }), true);
  assert.equal(run('a > 1 or b', { a: null, b: false }), null);
  assert.equal(run('not (a > 1)', { a: null }), null);
  assert.equal(run('a + 1 = 2', { a: null }), null);
  assert.equal(run('a is null', { a: null }), true);
  assert.equal(run('a IS NOT NULL', { a: 0 }), true);
  assert.equal(run("status != 'shipped' or shipped_at is not null", { status: 'new', shipped_at: null }), true);
  assert.equal(run("status != 'shipped' or shipped_at is not null", { status: 'shipped', shipped_at: null }), false);
});

test('logic: and, or, not, &&, ||, ! and precedence', () => {
  assert.equal(run('a = 1 or b = 1 and c = 1', { a: 1, b: 0, c: 0 }), true, 'and binds tighter');
  assert.equal(run('(a = 1 or b = 1) and c = 1', { a: 1, b: 0, c: 0 }), false);
  assert.equal(run('!(a = 1) && b = 2 || false', { a: 0, b: 2 }), true);
  assert.equal(run('NOT a AND TRUE', { a: false }), true);
  assert.equal(run('a + b * 2 = 7', { a: 1, b: 3 }), true);
  assert.equal(run('(a + b) * 2 = 8', { a: 1, b: 3 }), true);
});

test('evaluation errors name the kinds (and values unless masked)', () => {
  const err = (check: string, row: Row) => {
    try {
      run(check, row);
    } catch (e) {
      assert.ok(e instanceof EvalFailure);
      return [e.message, e.safeMessage];
    }
    assert.fail('no error');
  };
  assert.deepEqual(err('status > 3', { status: 'open' }), ["cannot compare text 'open' with number 3", 'cannot compare text with number']);
  assert.deepEqual(err('name + 1 > 0', { name: 'bob' }), ["'+': text 'bob' is not a number", "'+': text is not a number"]);
  assert.deepEqual(err('sum(total) > 0', { total: 5 }), ['sum() needs an array, got number 5', 'sum() needs an array, got number']);
  assert.deepEqual(err('flag and true', { flag: 'yes' }), ["'and' needs true or false, got text 'yes'", "'and' needs true or false, got text"]);
  assert.deepEqual(err('tags = tags', { tags: ['a'] }), ['cannot compare array with array', 'cannot compare array with array']);
});

test('syntax errors say where and what was expected', () => {
  const err = (check: string) => {
    try {
      compileCheck(check);
    } catch (e) {
      assert.ok(e instanceof ExprError);
      return `${e.pos}: ${e.message}`;
    }
    assert.fail(`accepted: ${check}`);
  };
  assert.equal(err(''), '0: empty expression');
  assert.equal(err('a >='), "4: expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end");
  assert.equal(err('a > b c'), "6: unexpected 'c' (expected an operator or the end)");
  assert.equal(err('(a > b'), "6: expected ')', found the end");
  assert.equal(err("a = 'open"), "4: unterminated text literal (a quote inside is written twice: 'it''s')");
  assert.equal(err('a = "open"'), "4: text literals are written in single quotes: 'like this'");
  assert.equal(err('a < b < c'), "6: comparisons do not chain: write 'a < b and b < c'");
  assert.equal(err('a is 1'), "5: expected 'null' after 'is', found '1'");
  assert.equal(err('a = eval(b)'), "4: unknown function 'eval' (functions: sum(array), len(text or array), abs(number), coalesce(a, b, …))");
  assert.equal(err('sum(a, b) > 1'), '0: sum() takes 1 argument: sum(array)');
  assert.equal(err('a + 1'), '2: a check must be a condition (a comparison, and/or/not, is null), not a value');
  assert.equal(err("a and 'x'"), "6: 'and' needs a condition (a comparison, and/or/not, is null), not a value");
  assert.equal(err('(a > 1) + 1 > 0'), "3: '+' needs a value, not a condition");
  assert.equal(err('a ; b'), "2: unexpected character ';'");
  assert.equal(err('a = 1x'), "5: unexpected 'x' after the number 1");
  assert.equal(err('and = 1'), "0: unexpected 'and' (expected a value)");
});

test('field references are collected in order', () => {
  assert.deepEqual(compileCheck('shipped_at >= ordered_at and total = sum(lines) and shipped_at is not null').refs, ['shipped_at', 'ordered_at', 'total', 'lines']);
});
