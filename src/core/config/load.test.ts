import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import '../../../connectors/index.js';
import { ConfigError, interpolate, loadConfig, parseConfig, type ConfigProblem } from './load.js';
import { renderConfigDocs } from './docs.js';
import { twoWayWritersInto } from './schema.js';
import type { PgSinkConfig, PgSourceConfig } from '../../../connectors/postgres/spec.js';

const EXAMPLE = fileURLToPath(new URL('../../../configs/data-sync-config.yaml', import.meta.url));

/** A valid config; `lines` are appended to the users-sync pipeline (4 spaces in). Line numbers in comments. */
const valid = (extra = '') => `version: 1
pipelines:
  users-sync:
    source:
      type: postgres
      connection:
        database: shop
        password: \${DB_PASSWORD:-}
      slot: syncline_users
      publication: syncline_users
    target:
      type: postgres
      connection: { database: shop_copy }
    tables:
      - source: public.users
        key: [id]
${extra}`;
//     1 version, 2 pipelines, 3 users-sync, 4 source, 5 type, 6 connection, 7 database, 8 password,
//     9 slot, 10 publication, 11 target, 12 type, 13 connection, 14 tables, 15 - source, 16 key

/** Parses and returns the ConfigError's problems (fails if the text is accepted). */
function problemsOf(text: string, env: Record<string, string | undefined> = {}, file = 'test.yaml'): { err: ConfigError; problems: ConfigProblem[] } {
  try {
    parseConfig(text, file, env);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return { err, problems: err.problems };
  }
  assert.fail('config was accepted');
}

test('the example config loads, with defaults and interpolated values', () => {
  const config = loadConfig(EXAMPLE, {});
  assert.deepEqual(Object.keys(config.pipelines), ['users-sync', 'orders-sync', 'inventory-to-mariadb']);
  // source/target are typed by their connector (SynclineConfig only knows the registry's union).
  const source = config.pipelines['users-sync']!.source as PgSourceConfig;
  const target = config.pipelines['users-sync']!.target as PgSinkConfig;
  assert.equal(source.slot, 'syncline_users');
  assert.equal(source.connection.database, 'syncline_demo_source');
  assert.equal(source.connection.port, 5432); // `${..:-5432}` unquoted → number
  assert.equal(target.connection.database, 'syncline_demo_target');
  assert.deepEqual(config.pipelines['orders-sync']!.tables.map((t) => t.source), ['public.orders', 'public.order_items']);
  assert.deepEqual(config.pipelines['inventory-to-mariadb']!.tables[0]!.key, ['sku']);
  // The cross-system pipeline: its MariaDB database in the connection and in the table names.
  const maria = config.pipelines['inventory-to-mariadb']!.target as { type: string; connection: { host: string; port: number; database: string } };
  assert.equal(maria.type, 'mariadb');
  assert.deepEqual([maria.connection.host, maria.connection.port, maria.connection.database], ['127.0.0.1', 3306, 'syncline_demo_target']);
  assert.deepEqual(config.pipelines['inventory-to-mariadb']!.tables.map((t) => t.target), ['syncline_demo_target.inventory', 'syncline_demo_target.warehouses']);
  assert.equal(config.defaults.conflict.strategy, 'latest-timestamp');
  assert.equal(config.defaults.conflict.field, 'updated_at');
  assert.equal(config.topicPrefix, 'syncline');
});

test('the example config takes overrides from the environment', () => {
  const config = loadConfig(EXAMPLE, { SYNCLINE_SOURCE_DB: 'other_db', SYNCLINE_TOPIC_PREFIX: 'run42', PGPASSWORD: 'pw', SYNCLINE_SOURCE_PORT: '5433' });
  assert.equal(config.topicPrefix, 'run42');
  const source = (name: string) => config.pipelines[name]!.source as PgSourceConfig;
  assert.equal(source('orders-sync').connection.database, 'other_db'); // through the YAML alias
  assert.equal(source('users-sync').connection.port, 5433);
  assert.equal(source('users-sync').connection.password, 'pw');
});

test('top-level x- keys hold anchors and are ignored; merge keys work', () => {
  const text = `x-pg: &pg
  type: postgres
  connection: { database: shop }
${valid().replace('    source:\n      type: postgres\n', '    source:\n      <<: *pg\n')}`;
  const source = parseConfig(text, 'test.yaml', {}).pipelines['users-sync']!.source as PgSourceConfig;
  assert.equal(source.type, 'postgres');
  assert.equal(source.connection.database, 'shop');
});

test('an unknown key is reported at its own line, with a suggestion', () => {
  const { err, problems } = problemsOf(valid('    tabels: []\n'));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 17);
  assert.equal(problems[0]!.col, 5);
  assert.equal(problems[0]!.path, 'pipelines.users-sync.tabels');
  assert.match(problems[0]!.message, /unknown key 'tabels' \(did you mean 'tables'\?\)/);
  assert.match(err.message, /^test\.yaml:17:5: pipelines\.users-sync\.tabels: unknown key 'tabels'/m);
  assert.equal(err.code, 'CONFIG_INVALID');
  assert.equal(err.kind, 'fatal');
});

test('a wrong type is reported at the value', () => {
  const { err, problems } = problemsOf(valid().replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, port: abc }'));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 13);
  assert.equal(problems[0]!.path, 'pipelines.users-sync.target.connection.port');
  assert.equal(problems[0]!.col, 48);
  assert.equal(problems[0]!.message, 'expected integer, got string "abc"');
  assert.match(err.message, /^test\.yaml:13:48: pipelines\.users-sync\.target\.connection\.port: expected integer, got string "abc"$/m);
});

test('a missing required field is reported at its parent mapping', () => {
  const { problems } = problemsOf(valid().replace('      slot: syncline_users\n', ''));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 4); // `source:`
  assert.equal(problems[0]!.path, 'pipelines.users-sync.source.slot');
  assert.equal(problems[0]!.message, 'required');
});

test('a missing field of a list item is reported at the item', () => {
  const { problems } = problemsOf(valid().replace('      - source: public.users\n        key: [id]\n', '      - target: public.users\n'));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 15);
  assert.equal(problems[0]!.path, 'pipelines.users-sync.tables[0].source');
});

test('every problem is listed, in file order', () => {
  const text = valid('    tabels: []\n').replace('slot: syncline_users', 'slot: Bad-Slot').replace('version: 1', 'version: 2');
  const { err, problems } = problemsOf(text);
  assert.deepEqual(
    problems.map((p) => [p.line, p.path]),
    [
      [1, 'version'],
      [9, 'pipelines.users-sync.source.slot'],
      [17, 'pipelines.users-sync.tabels'],
    ],
  );
  assert.equal(err.message.split('\n').length, 4); // header + one line each
});

test('a YAML syntax error is reported with its line and column', () => {
  const text = 'version: 1\npipelines:\n  users-sync:\n    source: {type: postgres\n    target: x\n';
  const { err, problems } = problemsOf(text, {}, 'bad.yaml');
  assert.ok(problems.length >= 1);
  assert.equal(problems[0]!.line, 5);
  assert.match(problems[0]!.message, /^YAML syntax error: /);
  assert.match(err.message, /^bad\.yaml:5:\d+: YAML syntax error/m);
});

test('a duplicate key is a syntax error at the second occurrence', () => {
  const { problems } = problemsOf('version: 1\npipelines: {}\nversion: 1\n');
  assert.equal(problems[0]!.line, 3);
});

test('an unset environment variable is refused, naming it, the file and the line', () => {
  const { err, problems } = problemsOf(valid().replace('database: shop\n', 'database: ${SHOP_DB}\n'), {}, 'env.yaml');
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 7);
  assert.equal(problems[0]!.path, 'pipelines.users-sync.source.connection.database');
  assert.match(problems[0]!.message, /environment variable SHOP_DB is not set/);
  assert.match(err.message, /^env\.yaml:7:\d+: .*SHOP_DB/m);
  // Set, it is used; `$${` stays a literal.
  const config = parseConfig(valid().replace('database: shop\n', 'database: ${SHOP_DB}\n'), 'env.yaml', { SHOP_DB: 'shop_x' });
  assert.equal((config.pipelines['users-sync']!.source as PgSourceConfig).connection.database, 'shop_x');
});

test('interpolation syntax', () => {
  assert.equal(interpolate('${A}-${B:-dflt}-$${C}-$x', { A: 'a' }).value, 'a-dflt-${C}-$x');
  assert.equal(interpolate('${A:-d}', { A: '' }).value, 'd');
  assert.equal(interpolate('${A}', { A: '' }).value, '');
  assert.deepEqual(interpolate('${A', {}).errors.length, 1);
  assert.deepEqual(interpolate('${1A}', {}).errors.length, 1);
  assert.match(interpolate('${NOPE}', {}).errors[0]!, /NOPE is not set/);
});

test('an interpolated value is converted where a number is expected, a literal string is not', () => {
  const interpolated = valid().replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, port: "${PORT:-5433}", ssl: "${SSL:-true}" }');
  const target = parseConfig(interpolated, 'test.yaml', {}).pipelines['users-sync']!.target as PgSinkConfig;
  assert.equal(target.connection.port, 5433);
  assert.equal(target.connection.ssl, true);
  const { problems } = problemsOf(valid().replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, port: "5432" }'));
  assert.equal(problems[0]!.line, 13);
  assert.equal(problems[0]!.message, 'expected integer, got string "5432"');
  const { problems: notNumber } = problemsOf(valid().replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, port: "${PORT:-x}" }'));
  assert.equal(notNumber[0]!.message, 'expected integer, got string "x"');
});

test('an unquoted ${ inside a flow mapping is a syntax error, reported once', () => {
  const { problems } = problemsOf(valid().replace('connection: { database: shop_copy }', 'connection: { database: ${DB} }'));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 13);
});

test('a replication slot used by two pipelines is refused at the second', () => {
  const text = valid(`  orders-sync:
    source:
      type: postgres
      connection: { database: shop }
      slot: syncline_users
      publication: syncline_orders
    target: { type: postgres, connection: { database: shop_copy } }
    tables: [{ source: public.orders }]
`);
  const { problems } = problemsOf(text);
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.line, 21);
  assert.equal(problems[0]!.path, 'pipelines.orders-sync.source.slot');
  assert.match(problems[0]!.message, /replication slot 'syncline_users' is already used by pipeline 'users-sync' \(line 9\)/);
});

test('a duplicate publication, a table listed twice, custom conflict without module, a blank key column', () => {
  const text = valid(`      - source: public.users
        key: [' ']
        conflict: { strategy: custom }
  orders-sync:
    source: { type: postgres, connection: { database: shop }, slot: syncline_orders, publication: syncline_users }
    target: { type: postgres, connection: { database: shop_copy } }
    tables: [{ source: public.orders }]
`);
  const { problems } = problemsOf(text);
  assert.deepEqual(
    problems.map((p) => [p.line, p.path]),
    [
      [17, 'pipelines.users-sync.tables[1].source'],
      [18, 'pipelines.users-sync.tables[1].key[0]'],
      [19, 'pipelines.users-sync.tables[1].conflict.module'],
      [21, 'pipelines.orders-sync.source.publication'],
    ],
  );
});

test('a secret value never appears in an error message', () => {
  const secret = 'hunter2-very-secret';
  // A literal secret of the wrong type, and a secret from the environment next to other mistakes.
  const literal = valid().replace('password: ${DB_PASSWORD:-}', 'password: [hunter2-very-secret]').replace('slot: syncline_users', 'slot: BAD');
  const fromEnv = valid('    tabels: []\n').replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, password: 12345 }');
  for (const [text, env] of [
    [literal, {}],
    [fromEnv, { DB_PASSWORD: secret }],
    [valid().replace('password: ${DB_PASSWORD:-}', `password: { value: ${secret} }`), {}],
  ] as const) {
    const { err, problems } = problemsOf(text, env);
    assert.ok(!err.message.includes(secret), err.message);
    assert.ok(!err.message.includes('hunter2'), err.message);
    assert.ok(!err.message.includes('12345'), err.message);
    for (const p of problems) assert.ok(!p.message.includes(secret));
  }
  const { err } = problemsOf(valid().replace('connection: { database: shop_copy }', 'connection: { database: shop_copy, password: 12345 }'));
  assert.match(err.message, /password: expected string, got number \(secret, not shown\)/);
  // A syntax error on the password line shows no excerpt of the line.
  const { err: syntax } = problemsOf(valid().replace('password: ${DB_PASSWORD:-}', `password: "${secret}`));
  assert.ok(!syntax.message.includes(secret), syntax.message);
});

test('a missing file is a ConfigError naming the file', () => {
  assert.throws(() => loadConfig('/nonexistent/syncline.yaml', {}), (err: unknown) => err instanceof ConfigError && /^invalid config \/nonexistent\/syncline\.yaml[\s\S]*file not found/.test(err.message));
});

test('the generated reference documents every option of the example, with secrets flagged', () => {
  const md = renderConfigDocs();
  for (const path of ['topicPrefix', 'kafka.brokers', 'defaults.conflict.strategy', 'pipelines.<name>.tables[].key', 'pipelines.<name>.source.slot', 'pipelines.<name>.target.connection.database']) {
    assert.ok(md.includes(`| \`${path}\` |`), path);
  }
  assert.match(md, /\| `pipelines\.<name>\.source\.connection\.password` \| string \| no \|[^\n]*\| yes \|/);
});

test('pipelines reading different databases may not write one change topic (changeTopicPrefix separates them)', () => {
  const other = (prefix = '') => `  users-back:
    source: { type: postgres, connection: { database: shop_copy }, slot: syncline_back, publication: syncline_back }
    target: { type: postgres, connection: { database: shop } }
${prefix}    tables: [{ source: public.users }]
`;
  const { problems } = problemsOf(valid(other()));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.path, 'pipelines.users-back.tables[0].source');
  assert.equal(problems[0]!.line, 20);
  assert.match(problems[0]!.message, /change topic syncline\.cdc\.public\.users is already written by pipeline 'users-sync' from another database \(postgres:\/\/127\.0\.0\.1:5432\/shop; here postgres:\/\/127\.0\.0\.1:5432\/shop_copy\): set changeTopicPrefix/);
  const ok = parseConfig(valid(other('    changeTopicPrefix: shop-copy\n')), 'test.yaml', {});
  assert.equal(ok.pipelines['users-back']!.changeTopicPrefix, 'shop-copy');
  // Two pipelines of one database share its change topics: each captures (each change written twice,
  // harmless downstream: the second is stale), or one follows the other (one capture).
  parseConfig(valid(`  users-again:
    source: { type: postgres, connection: { database: shop }, slot: syncline_again, publication: syncline_again }
    target: { type: postgres, connection: { database: shop_other } }
    tables: [{ source: public.users }]
`), 'test.yaml', {});
  parseConfig(valid(`  users-again:
    follows: users-sync
    target: { type: postgres, connection: { database: shop_other } }
    tables: [{ source: public.users }]
`), 'test.yaml', {});
});

test('table names: quoted parts are read and kept in canonical form; a malformed one is refused at its line', () => {
  const config = parseConfig(valid(`      - source: '"Quoted"" . Schema"."Table"'
        target: '"public"."täble copy"'
      - source: public.Users
`), 'test.yaml', {});
  const tables = config.pipelines['users-sync']!.tables;
  assert.deepEqual(tables.map((t) => [t.source, t.target]), [['public.users', undefined], ['"Quoted"" . Schema".Table', 'public."täble copy"'], ['public.Users', undefined]]);
  const { problems } = problemsOf(valid(`      - source: public.my table
      - source: '"public"."users"'
`));
  assert.deepEqual(problems.map((p) => [p.line, p.path]), [[17, 'pipelines.users-sync.tables[1].source'], [18, 'pipelines.users-sync.tables[2].source']]);
  assert.match(problems[0]!.message, /'my table' must be quoted: it holds " "/);
  assert.match(problems[1]!.message, /table '"public"."users"' is listed twice in this pipeline \(first at line 15\)/);
});

test('names: _ and - in pipeline, slot and publication names; slots are PostgreSQL names (- as _) and may not meet there', () => {
  const ok = parseConfig(valid().replace('users-sync:', 'users_sync-2:').replace('slot: syncline_users', 'slot: sync-users_a').replace('publication: syncline_users', 'publication: pub-users_a'), 'test.yaml', {});
  const source = ok.pipelines['users_sync-2']!.source as PgSourceConfig;
  assert.equal(source.slot, 'sync_users_a');
  assert.equal(source.publication, 'pub-users_a');
  const { problems } = problemsOf(valid(`  orders-sync:
    source: { type: postgres, connection: { database: shop }, slot: syncline-users, publication: syncline_orders }
    target: { type: postgres, connection: { database: shop_copy } }
    tables: [{ source: public.orders }]
`));
  assert.equal(problems.length, 1);
  assert.equal(problems[0]!.path, 'pipelines.orders-sync.source.slot');
  assert.match(problems[0]!.message, /replication slot 'syncline-users' \(PostgreSQL slot syncline_users\) is already used by pipeline 'users-sync'/);
  const badName = problemsOf(valid().replace('users-sync:', 'Users.Sync:')).problems;
  assert.deepEqual(badName.map((p) => p.path), ['pipelines.Users.Sync']);
  assert.match(badName[0]!.message, /invalid name 'Users\.Sync'/);
  const badSlot = problemsOf(valid().replace('slot: syncline_users', 'slot: Slot')).problems;
  assert.deepEqual(badSlot.map((p) => p.path), ['pipelines.users-sync.source.slot']);
  assert.match(badSlot[0]!.message, /lower-case letters, digits, _ and -/);
});

test('change topics: names escaped for Kafka; a pair differing only in . versus _ and an over-long name are refused', () => {
  const { problems } = problemsOf(valid(`      - source: a.b_c
      - source: a_b.c
      - source: public."${'x'.repeat(63)}"
      - source: '"${'é'.repeat(31)}"."${'é'.repeat(31)}"'
`));
  assert.deepEqual(problems.map((p) => p.path), ['pipelines.users-sync.tables[2].source', 'pipelines.users-sync.tables[4].source']);
  assert.match(problems[0]!.message, /change topic syncline\.cdc\.a_b\.c of table a_b\.c differs from syncline\.cdc\.a\.b_c \(table a\.b_c\) only in '\.' versus '_'/);
  assert.match(problems[1]!.message, /would be 386 characters long \(Kafka allows 249\)/);
});

test('redis.keyPrefix holds no hash-tag braces', () => {
  const { problems } = problemsOf(valid().replace('version: 1\n', 'version: 1\nredis: { keyPrefix: "a{b}" }\n'));
  assert.equal(problems[0]!.path, 'redis.keyPrefix');
});

test('fan-out (follows): a follower takes the followed pipeline\'s source, prefix and keys; what cannot work is refused at its line', () => {
  const leader = `version: 1
pipelines:
  orders:
    changeTopicPrefix: shop
    source: { type: postgres, connection: { database: shop }, slot: s_orders, publication: s_orders }
    target: { type: postgres, connection: { database: shop_copy } }
    tables:
      - source: public.orders
        key: [id]
      - source: public.items
`;
  const config = parseConfig(`${leader}  orders-api:
    follows: orders
    target: { type: http, url: 'http://127.0.0.1:1/{table}/{key.id}' }
    conflict: { strategy: source-wins }
    tables:
      - source: public.orders
        transform: [{ exclude: [note] }]
`, 'test.yaml', {});
  const f = config.pipelines['orders-api']!;
  assert.equal(f.follows, 'orders');
  assert.deepEqual(f.source, config.pipelines.orders!.source, 'the source is the followed pipeline\'s');
  assert.equal(f.changeTopicPrefix, 'shop');
  assert.deepEqual(f.tables[0]!.key, ['id'], 'the key comes from the followed pipeline');

  const refused = (follower: string, extraLeader = '') => problemsOf(leader.replace('  orders:\n', `  orders:\n${extraLeader}`) + follower).problems;
  let p = refused(`  api:\n    follows: order\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`);
  assert.equal(p.length, 1, JSON.stringify(p));
  assert.equal(p[0]!.path, 'pipelines.api.follows');
  assert.equal(p[0]!.line, 12);
  assert.match(p[0]!.message, /no pipeline 'order' to follow \(have: orders\)/);
  p = refused(`  api:\n    follows: orders\n    source: { type: postgres, connection: { database: shop }, slot: s2, publication: s2 }\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`);
  assert.ok(p.some((x) => x.path === 'pipelines.api.source' && /has no source of its own .*: remove source/.test(x.message)), JSON.stringify(p));
  p = refused(`  api:\n    follows: orders\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.users }, { source: public.orders, key: [sku] }]\n`);
  assert.deepEqual(p.map((x) => x.path).sort(), ['pipelines.api.tables[0].source', 'pipelines.api.tables[1].key']);
  assert.match(p.find((x) => x.path.endsWith('[0].source'))!.message, /table public\.users is not captured by pipeline 'orders' \(it captures public\.orders, public\.items\)/);
  assert.match(p.find((x) => x.path.endsWith('[1].key'))!.message, /key \["sku"\] differs from \["id"\] in pipeline 'orders'/);
  p = refused(`  api:\n    follows: orders\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n  api2:\n    follows: api\n    target: { type: postgres, connection: { database: y } }\n    tables: [{ source: public.orders }]\n`);
  assert.ok(p.some((x) => x.path === 'pipelines.api2.follows' && /pipeline 'api' follows 'orders' itself: follow 'orders'/.test(x.message)), JSON.stringify(p));
  p = refused(`  api:\n    follows: orders\n    mode: manual\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`);
  assert.ok(p.some((x) => x.path === 'pipelines.api.mode' && /both run in mode realtime, got "manual"/.test(x.message)), JSON.stringify(p));
  p = refused(`  api:\n    follows: orders\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`, '    enabled: false\n');
  assert.ok(p.some((x) => x.path === 'pipelines.api.follows' && /pipeline 'orders' is disabled/.test(x.message)), JSON.stringify(p));
  p = refused(`  api:\n    follows: orders\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`, '    peer: back\n');
  assert.ok(p.some((x) => x.path === 'pipelines.api.follows' && /is two-way \(peer back\): its capture skips the changes two-way pipelines write into its source, so a one-way follower would miss them/.test(x.message)), JSON.stringify(p));
  p = refused(`  api:\n    follows: orders\n    peer: back\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`);
  assert.ok(p.some((x) => x.path === 'pipelines.api.peer' && /a two-way pipeline can follow only a two-way pipeline .*'orders' is one-way/.test(x.message)), JSON.stringify(p));
  // A problem in the followed pipeline's source is reported there once, not again for the follower.
  p = problemsOf(leader.replace('slot: s_orders', 'slot: 12') + `  api:\n    follows: orders\n    target: { type: postgres, connection: { database: x } }\n    tables: [{ source: public.orders }]\n`).problems;
  assert.deepEqual(p.map((x) => x.path), ['pipelines.orders.source.slot'], JSON.stringify(p));
});

test('redis.sentinel: nodes and the master name; not together with redis.cluster', () => {
  const c = parseConfig(valid().replace('pipelines:', "redis: { url: 'redis://:pw@x', sentinel: { nodes: ['127.0.0.1:26379', '127.0.0.1:26380'] } }\npipelines:"), 'test.yaml', {});
  assert.deepEqual(c.redis.sentinel, { nodes: ['127.0.0.1:26379', '127.0.0.1:26380'], name: 'mymaster' });
  const { problems } = problemsOf(valid().replace('pipelines:', "redis: { sentinel: { nodes: ['a:1'] }, cluster: { nodes: ['b:2'] } }\npipelines:"));
  assert.deepEqual(problems.map((p) => [p.path, p.line]), [['redis.sentinel', 2]]);
  assert.match(problems[0]!.message, /redis\.cluster and redis\.sentinel exclude each other/);
  assert.match(problemsOf(valid().replace('pipelines:', "redis: { sentinel: { nodes: ['nohost'] } }\npipelines:")).problems[0]!.message, /host:port/);
});

test('multi-way sync: the databases joined by two-way pipelines form a full mesh; each capture leaves out every pipeline writing into its source', () => {
  const pg = (db: string) => `{ type: postgres, connection: { host: h, database: ${db} }, slot: s_${db}, publication: p_${db} }`;
  const tgt = (db: string) => `{ type: postgres, connection: { host: h, database: ${db} } }`;
  const two = (from: string, to: string, extra = '') =>
    `  ${from}-${to}:\n    peer: ${to}-${from}\n${extra || `    source: ${pg(from)}\n    changeTopicPrefix: ${from}\n`}    target: ${tgt(to)}\n    tables: [{ source: public.items }]\n`;
  const follow = (leader: string) => `    follows: ${leader}\n`;
  // A mesh of three: the pipelines leaving a database follow one of them (one capture per database).
  const mesh = `version: 1\npipelines:\n${two('a', 'b')}${two('a', 'c', follow('a-b'))}${two('b', 'a')}${two('b', 'c', follow('b-a'))}${two('c', 'a')}${two('c', 'b', follow('c-a'))}`;
  const config = parseConfig(mesh, 'test.yaml', {});
  assert.deepEqual(twoWayWritersInto(config, 'a-b').sort(), ['b-a', 'c-a'], 'a-b captures database a: b-a and c-a write into it');
  assert.deepEqual(twoWayWritersInto(config, 'a-c').sort(), ['b-a', 'c-a'], 'the follower reads the same capture');
  assert.deepEqual(twoWayWritersInto(config, 'c-b').sort(), ['a-c', 'b-c']);
  // A pair is the two-way sync of old: its peer only.
  const pair = parseConfig(`version: 1\npipelines:\n${two('a', 'b')}${two('b', 'a')}`, 'test.yaml', {});
  assert.deepEqual(twoWayWritersInto(pair, 'a-b'), ['b-a']);
  assert.deepEqual(twoWayWritersInto(pair, 'b-a'), ['a-b']);
  // A ring (no pipeline between a and c) would never carry a's changes to c: refused, naming what is missing.
  const ring = problemsOf(`version: 1\npipelines:\n${two('a', 'b')}${two('b', 'a')}${two('b', 'c', follow('b-a'))}${two('c', 'b')}`).problems;
  assert.equal(ring.length, 1, JSON.stringify(ring));
  assert.match(ring[0]!.message, /multi-way sync joins 3 databases .* but not every two of them: missing postgres:\/\/h:5432\/a → postgres:\/\/h:5432\/c; postgres:\/\/h:5432\/c → postgres:\/\/h:5432\/a/);
});

test("a key named __proto__ is refused where it is written; pipelines are looked up without Object.prototype's names", () => {
  // As a pipeline name (it would set the prototype of `pipelines`: the pipeline gone without a word) …
  const { problems } = problemsOf(valid().replace('  users-sync:', '  __proto__:'));
  assert.deepEqual(problems.map((p) => [p.line, p.col, p.path]), [[3, 3, 'pipelines.__proto__']]);
  assert.match(problems[0]!.message, /a key named '__proto__' cannot be read/);
  // … and anywhere else (a validation rule for a column of that name).
  const nested = problemsOf(valid("    validate: { fields: { __proto__: { required: true } } }\n")).problems;
  assert.deepEqual(nested.map((p) => [p.line, p.path]), [[17, 'pipelines.users-sync.validate.fields.__proto__']]);
  // A pipeline named like an inherited property is an ordinary pipeline; a name that is not one finds nothing.
  const config = parseConfig(valid().replace('  users-sync:', '  constructor:'), 'test.yaml', {});
  assert.deepEqual(Object.keys(config.pipelines), ['constructor']);
  assert.equal(typeof config.pipelines.constructor, 'object');
  assert.equal(config.pipelines.toString, undefined);
  assert.equal(config.pipelines['hasOwnProperty'], undefined);
});
