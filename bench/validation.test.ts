/**
 * Smoke test of the benchmark harness (shape of the results and of BENCHMARKS.md), not of the speed:
 * `npm run bench` measures that.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { handWritten, recordPool, benchValidator, runValidationBench, validationTable, TARGET_PER_SEC } from './validation.js';
import { machine, updateBenchmarks, validationSection } from './index.js';

test('the validation bench runs and reports median, spread and baselines', () => {
  const r = runValidationBench({ iterations: 2000, runs: 3, warmupIterations: 500 });
  assert.equal(r.runs, 3);
  assert.equal(r.ruleCount, 10);
  assert.equal(r.fieldCount, 10);
  assert.equal(r.target, TARGET_PER_SEC);
  for (const f of [r.validator, r.validatorMixed, r.handWritten, r.jsonStringify]) {
    assert.equal(f.runs.length, 3);
    assert.ok(f.median > 0 && f.min <= f.median && f.median <= f.max);
    assert.ok(f.spreadPct >= 0);
  }
  assert.ok(r.ratioToHandWritten > 0 && r.ratioToStringify > 0);
  assert.equal(r.met, r.validator.median >= TARGET_PER_SEC);
  assert.ok(r.invalidSeen > 0, 'the mixed pool has invalid records');
  const table = validationTable(r);
  assert.match(table, /^\| Measurement \| Median validations\/s \|/);
  assert.equal(table.split('\n').length, 6);
});

test('benchmark records: the valid pool is valid for both the rules and the baseline; the mixed one is not', () => {
  const now = Date.now();
  const v = benchValidator();
  for (const r of recordPool(now, 0, 64)) {
    assert.equal(v.validate(r), undefined);
    assert.equal(handWritten(r), undefined);
  }
  const mixed = recordPool(now, 10, 64);
  const invalid = mixed.filter((r) => v.validate(r) !== undefined);
  assert.equal(invalid.length, 7); // rows 0, 10, … 60
  for (const r of invalid) assert.ok(handWritten(r), 'the baseline refuses what the rules refuse');
});

test('BENCHMARKS.md: a run replaces its own section and keeps the others', () => {
  const r = runValidationBench({ iterations: 500, runs: 1, warmupIterations: 100 });
  const section = validationSection(r, machine(), true);
  assert.match(section, /^## Validation rules/);
  assert.match(section, /Machine: \d+ CPUs? \(`nproc`\), .+, Node v\d+/);
  assert.match(section, /Reproduce: `npm run bench`/);
  const first = updateBenchmarks(undefined, 'validation', section);
  assert.match(first, /^# Benchmarks\n/);
  const withOther = `${first}\n<!-- bench:throughput:start -->\nother bench\n<!-- bench:throughput:end -->\n`;
  const again = updateBenchmarks(withOther, 'validation', '## Validation rules\nnew figures');
  assert.ok(again.includes('new figures') && !again.includes(section));
  assert.ok(again.includes('other bench'));
  assert.equal(again.match(/bench:validation:start/g)?.length, 1);
});
