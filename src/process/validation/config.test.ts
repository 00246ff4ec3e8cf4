/**
 * Validation rules in the config file: refused at load (or, for custom functions, at start) with
 * FILE:LINE:COL; the pipeline object gets compiled validators; dead letters carry the violations.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../../../connectors/index.js';
import { ConfigError, loadConfig, parseConfig, type ConfigProblem } from '../../core/config/load.js';
import type { KafkaClient, OutMessage } from '../../core/kafka.js';
import { DeadLetters } from '../../sink/dead-letters.js';
import type { SinkRecord } from '../../sink/sink.js';
import { ValidationError, validateRules } from './index.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/validators.mjs', import.meta.url));
const EXAMPLE = fileURLToPath(new URL('../../../configs/data-sync-config.yaml', import.meta.url));

/** A valid config; `validate` is inserted under the table (8 spaces in), `pipelineExtra` under the pipeline. */
const config = (validate: string, pipelineExtra = '') => `version: 1
pipelines:
  users-sync:
    source:
      type: postgres
      connection: { database: shop }
      slot: syncline_users
      publication: syncline_users
    target:
      type: postgres
      connection: { database: shop_copy }
${pipelineExtra}    tables:
      - source: public.users
        columns: { mail: email }
${validate}`;
// Lines: 1 version … 12 tables, 13 - source, 14 columns, 15 onwards: `validate` (without pipelineExtra).

function problemsOf(text: string, file = 'rules.yaml'): ConfigProblem[] {
  try {
    parseConfig(text, file, {});
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('config was accepted');
}

const brief = (ps: ConfigProblem[]) => ps.map((p) => `${p.line}:${p.col} ${p.path}: ${p.message}`);

test("valid rules load; the example config's rules compile", () => {
  const c = parseConfig(
    config(`        validate:
          fields:
            email: { required: true, format: email }
            balance: { type: number, min: 0 }
          rules:
            - name: positive
              check: balance >= 0
`),
    'ok.yaml',
    {},
  );
  const t = c.pipelines['users-sync']!.tables[0]!;
  assert.equal(t.validate?.fields?.email?.format, 'email');
  assert.equal(t.validate?.rules?.[0]?.check, 'balance >= 0');
  const example = loadConfig(EXAMPLE, {});
  assert.ok(example.pipelines['users-sync']!.tables[0]!.validate, 'the example shows validation rules');
});

test('an unknown rule key is refused at its line, with a suggestion', () => {
  const ps = problemsOf(
    config(`        validate:
          fields:
            email: { required: true, fromat: email }
`),
  );
  assert.deepEqual(brief(ps), ["17:38 pipelines.users-sync.tables[0].validate.fields.email.fromat: unknown key 'fromat' (did you mean 'format'?)"]);
});

test('unknown types, formats and bad option types are refused at their value', () => {
  const ps = problemsOf(
    config(`        validate:
          fields:
            email:
              format: mail
            age:
              type: int
              minLength: -1
`),
  );
  assert.deepEqual(brief(ps), [
    "18:23 pipelines.users-sync.tables[0].validate.fields.email.format: must be one of 'email', 'phone', 'url', 'uri', 'uuid', 'hostname', 'ipv4', 'ipv6', got string \"mail\" (did you mean 'email'?)",
    "20:21 pipelines.users-sync.tables[0].validate.fields.age.type: must be one of 'string', 'number', 'integer', 'boolean', 'date', 'datetime', 'uuid', 'object', 'array', got string \"int\"",
    '21:26 pipelines.users-sync.tables[0].validate.fields.age.minLength: must be >= 0, got number -1',
  ]);
});

test('a bad regex, an unreadable bound, min > max and an unparsable check are refused at load with their line', () => {
  const ps = problemsOf(
    config(`        validate:
          fields:
            email:
              pattern: "([a-z]+"
            balance:
              min: 100
              max: 10
            created_at:
              type: datetime
              min: last year
            mail: { required: true }
          rules:
            - name: shipped_after_ordered
              check: shipped_at >= ordered_at and
              message: shipped before it was ordered
            - name: ok
              check: "coalesce(a, b) > 0"
            - name: shipped_after_ordered
              check: a > 0
            - name: custom_needs_module
              check: a = 1
`),
  );
  assert.deepEqual(brief(ps), [
    '18:24 pipelines.users-sync.tables[0].validate.fields.email.pattern: invalid regular expression: /([a-z]+/u: Unterminated group',
    '20:20 pipelines.users-sync.tables[0].validate.fields.balance.min: min 100 is greater than max 10',
    "24:20 pipelines.users-sync.tables[0].validate.fields.created_at.min: cannot read 'last year': expected a number, a date ('2024-01-31'), a date-time ('2024-01-31T12:00:00Z'), a duration relative to now (-P1Y, P30D, -PT12H) or now",
    "25:13 pipelines.users-sync.tables[0].validate.fields.mail: 'mail' is a source column renamed to 'email' (columns); validation runs on the mapped record: write 'email'",
    "28:22 pipelines.users-sync.tables[0].validate.rules[0].check: cannot parse check at character 29 (shipped_at >= ordered_at and⟨here⟩): expected a value (a field, a number, 'text', true, false, null, a function or '('), found the end",
    "32:21 pipelines.users-sync.tables[0].validate.rules[2].name: rule name 'shipped_after_ordered' is already used by rules[0]",
  ]);
  // The whole message, as `syncline config validate` prints it.
  try {
    parseConfig(config(`        validate:\n          fields:\n            email: { pattern: "[" }\n`), 'configs/sync.yaml', {});
    assert.fail('accepted');
  } catch (err) {
    assert.equal(
      (err as Error).message,
      'invalid config configs/sync.yaml (1 problem):\nconfigs/sync.yaml:17:31: pipelines.users-sync.tables[0].validate.fields.email.pattern: invalid regular expression: /[/u: Unterminated character class',
    );
  }
});

test('a custom function without a pipeline module is refused at load', () => {
  const ps = problemsOf(config(`        validate:\n          fields:\n            sku: { custom: isSku }\n`));
  assert.deepEqual(brief(ps), ["17:28 pipelines.users-sync.tables[0].validate.fields.sku.custom: custom function 'isSku' needs the pipeline's validation.module (the ES module that exports it)"]);
});

/** Writes the config next to a copy of the fixture module; returns the file. */
function withModule(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-rules-'));
  copyFileSync(FIXTURE, join(dir, 'validators.mjs'));
  const file = join(dir, 'sync.yaml');
  writeFileSync(file, text);
  return file;
}

const MODULE = (module: string) => `    validation:\n      module: ${module}\n      mask: [email]\n`;
// With MODULE: 12 validation, 13 module, 14 mask, 15 tables, 16 - source, 17 columns, 18 validate.

test('validateRules loads the module relative to the config file and compiles custom functions', async () => {
  const file = withModule(config(`        validate:\n          fields:\n            sku: { custom: isSku }\n            email: { format: email }\n`, MODULE('./validators.mjs')));
  const validators = await validateRules(loadConfig(file, {}));
  const v = validators.get('users-sync')!.forTable('public.users')!;
  assert.equal(v.validate({ sku: 'SKU-1', email: 'a@b.co' }), undefined);
  assert.deepEqual(v.validate({ sku: 'nope', email: 'x' })!.violations, [
    { field: 'sku', rule: 'custom', message: "failed custom check 'isSku'", value: 'nope' },
    { field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' },
  ]);
});

test('validateRules: unknown, non-function and async custom functions are refused with FILE:LINE:COL', async () => {
  const file = withModule(
    config(
      `        validate:
          fields:
            sku: { custom: isSKU }
            n: { custom: notAFunction }
            x:
              custom: slowCheck
`,
      MODULE('./validators.mjs'),
    ),
  );
  const c = loadConfig(file, {});
  await assert.rejects(validateRules(c), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.kind, 'fatal');
    assert.deepEqual(
      err.problems.map((p) => `${p.file === file}:${p.line}:${p.col} ${p.path}: ${p.message}`),
      [
        "true:20:28 pipelines.users-sync.tables[0].validate.fields.sku.custom: unknown custom function 'isSKU': module ./validators.mjs exports discountWithinPrice, explodes, isEven, isSku, slowCheck (did you mean 'isSku'?)",
        "true:21:26 pipelines.users-sync.tables[0].validate.fields.n.custom: 'notAFunction' exported by module ./validators.mjs is a number, not a function",
        "true:23:23 pipelines.users-sync.tables[0].validate.fields.x.custom: custom function 'slowCheck' must be synchronous: return true, false or a message, not a Promise",
      ],
    );
    assert.match(err.message, new RegExp(`^invalid config ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(3 problems\\):\n`));
    return true;
  });
});

test('validateRules: a module that does not exist is refused at the module line', async () => {
  const file = withModule(config(`        validate:\n          fields:\n            sku: { custom: isSku }\n`, MODULE('./missing.mjs')));
  await assert.rejects(validateRules(loadConfig(file, {})), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.problems.length, 1);
    const p = err.problems[0]!;
    assert.deepEqual([p.line, p.col, p.path], [13, 15, 'pipelines.users-sync.validation.module']);
    assert.match(p.message, /^cannot load validation module .*missing\.mjs: file not found$/);
    return true;
  });
});

test('PipelineValidator.check: coercions recorded on the record, violations thrown as ValidationError', async () => {
  const c = parseConfig(config(`        validate:\n          fields:\n            age: { type: integer, coerce: true, max: 150 }\n            email: { format: email, sensitive: true }\n`), 'x.yaml', {});
  const pv = (await validateRules(c)).get('users-sync')!;
  const rules = pv.forTable('public.users')!;
  const record = (values: SinkRecord['values'], op: SinkRecord['op'] = 'upsert'): SinkRecord => ({
    table: 'public.users', op, key: { id: 1 }, values, keep: [], position: '0000000000000001:00000000', hash: null, sourceTsMs: 0,
    columnTypes: { id: 'int8', age: 'text', email: 'text' }, origin: { topic: 't', partition: 0, offset: '5' },
  });
  const ok = record({ id: 1, age: '42', email: 'a@b.co' });
  pv.check(rules, ok);
  assert.deepEqual(ok.coerced, [{ field: 'age', from: 'string', to: 'integer' }]);
  assert.equal(ok.values!.age, 42);
  assert.deepEqual(ok.key, { id: 1 });
  const bad = record({ id: 1, age: '200', email: 'nope' });
  assert.throws(() => pv.check(rules, bad), (err: unknown) => {
    assert.ok(err instanceof ValidationError);
    assert.equal(err.kind, 'poison');
    assert.equal(err.code, 'VALIDATION_FAILED');
    assert.equal(err.message, 'public.users key [1]: 2 rules violated: age max: must be <= 150; email format: must be a valid email address');
    assert.deepEqual(err.violations, [
      { field: 'age', rule: 'max', message: 'must be <= 150', value: 200 },
      { field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' },
    ]);
    assert.deepEqual(err.counterKeys(), ['public.users.age.max', 'public.users.email.format']);
    pv.countInvalid(err);
    return true;
  });
  pv.check(rules, record(null, 'delete')); // deletes are not validated
  assert.deepEqual({ ...pv.stats, failures: Object.fromEntries(pv.stats.failures) }, {
    validated: 2, invalid: 1, coerced: 1, failures: { 'public.users.age.max': 1, 'public.users.email.format': 1 },
  });
});

test('a dead letter of a ValidationError carries the violations header', async () => {
  const sent: OutMessage[] = [];
  const kafka = { ensureTopics: async () => undefined, send: async (m: OutMessage[]) => void sent.push(...m) } as unknown as KafkaClient;
  const dlq = new DeadLetters(kafka, 'p', 'users-sync');
  const err = new ValidationError('public.users', [{ field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' }], '00:01');
  await dlq.send([{ kind: 'invalid', error: err, key: Buffer.from('k'), value: Buffer.from('v'), attempts: 1, table: err.table, position: err.position }]);
  const h = sent[0]!.headers as Record<string, string>;
  assert.equal(h['syncline.dlq.kind'], 'invalid');
  assert.equal(h['syncline.error.code'], 'VALIDATION_FAILED');
  assert.equal(h['syncline.table'], 'public.users');
  assert.deepEqual(JSON.parse(h['syncline.violations']!), [{ field: 'email', rule: 'format', message: 'must be a valid email address', value: '***' }]);
  await dlq.send([{ kind: 'failed', error: new Error('x'), key: null, value: null, attempts: 1 }]);
  assert.equal((sent[1]!.headers as Record<string, string>)['syncline.violations'], undefined);
});
