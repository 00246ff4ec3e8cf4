/**
 * Columns whose names are properties of every JavaScript object (`__proto__`, `constructor`,
 * `toString`, `hasOwnProperty`, `valueOf`), one of them in the primary key: snapshot, then inserts,
 * updates (to null and back), a delete and a re-insert, converge on the target value for value.
 * A row held in a plain object would lose `__proto__` (assigning it sets the prototype) or read
 * `toString` from Object.prototype when the column is absent (a delete's key-only before image).
 * Into a PostgreSQL target, and into a MariaDB target; from a MariaDB source (whose binlog reader
 * cannot carry `__proto__`: such a table is refused at start, naming it).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import '../connectors/index.js';
import { TestApi } from '../connectors/http/test-server.js';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import type { SynclineError } from '../src/core/errors.js';
import { checksum, createDb, deleteTopics, dropDb, dropSlots, PG, sql, startRuntime, testEnv, uid, waitFor } from './helpers.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };

const DDL = `create table protos (
  id int, "constructor" text,
  "__proto__" text, "toString" int, "hasOwnProperty" boolean, "valueOf" jsonb,
  updated_at timestamptz not null default clock_timestamp(),
  primary key (id, "constructor"))`;

test('columns named __proto__, constructor, toString, hasOwnProperty, valueOf converge end to end', async (t) => {
  const env = await testEnv([{ name: 'protos-sync', tables: [{ source: 'public.protos' }] }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into protos (id, "constructor", "__proto__", "toString", "hasOwnProperty", "valueOf")
    select g, 'c' || (g % 3), 'p' || g, g * 10, g % 2 = 0, jsonb_build_object('__proto__', g, 'constructor', 'x') from generate_series(1, 20) g`);
  const { rt } = await startRuntime(env);
  const same = async () => {
    const [a, b] = [await checksum(env.sourceDb, 'protos', 'id, "constructor"'), await checksum(env.targetDb, 'protos', 'id, "constructor"')];
    return a.count > 0 && a.md5 === b.md5 && a.count === b.count;
  };
  await waitFor('the snapshot on the target', same, 120_000, 300);
  await waitFor('the capture streams', async () => (rt.pipelines[0]!.capture?.stats.confirmed ?? '') !== '');

  await sql(env.sourceDb, `insert into protos (id, "constructor", "__proto__", "toString", "hasOwnProperty", "valueOf") values (21, 'c0', '{}', 0, null, '{"__proto__": {"a": 1}}')`);
  await sql(env.sourceDb, `update protos set "__proto__" = null, "toString" = null, updated_at = clock_timestamp() where id <= 5`);
  await sql(env.sourceDb, `update protos set "__proto__" = 'back ' || id, "valueOf" = '[]', updated_at = clock_timestamp() where id <= 3`);
  await sql(env.sourceDb, `delete from protos where id in (7, 8)`);
  await sql(env.sourceDb, `insert into protos (id, "constructor", "__proto__", "toString") values (7, 'c1', 'again', 7)`);
  await waitFor('the streamed changes on the target', same, 120_000, 300);

  // Aliased: node-postgres builds its result rows by assignment too.
  const rows = (await sql(env.targetDb, `select id, "constructor" as c, "__proto__" as p, "toString" as s, "hasOwnProperty" as h, "valueOf"::text as v from protos where id in (1, 4, 7, 21) order by id`)).rows;
  assert.deepEqual(rows.map((r) => [r.id, r.c, r.p, r.s, r.h, r.v]), [
    [1, 'c1', 'back 1', null, false, '[]'],
    [4, 'c1', null, null, true, '{"__proto__": 4, "constructor": "x"}'],
    [7, 'c1', 'again', 7, null, null],
    [21, 'c0', '{}', 0, null, '{"__proto__": {"a": 1}}'],
  ]);
});

/**
 * A PostgreSQL database and a MariaDB database of one run, cleaned up after the test (runtimes,
 * slots, databases, topics); `start` runs one pipeline (capture, process, sink) in this process and
 * returns the runtime and its `done`.
 */
async function pgAndMaria(t: TestContext, pgRole: 'src' | 'dst') {
  const id = uid();
  const prefix = `t${id}`;
  const pgDb = `syncline_t_${id}_${pgRole}`;
  const mdb = `syncline_t_${id}_maria`;
  await createDb(pgDb);
  const maria = await mysql.createConnection({ ...MARIA });
  await maria.query(`CREATE DATABASE ${mdb}`);
  const runtimes: Runtime[] = [];
  t.after(async () => {
    for (const r of runtimes) await r.stop().catch(() => undefined);
    await dropSlots(prefix);
    await dropDb(pgDb);
    await deleteTopics(prefix).catch(() => undefined);
    await maria.query(`DROP DATABASE IF EXISTS ${mdb}`);
    await maria.end();
  });
  const start = async (name: string, pipeline: Record<string, unknown>) => {
    const doc = {
      version: 1,
      topicPrefix: prefix,
      kafka: { brokers: ['127.0.0.1:9092'], partitions: 2 },
      defaults: { retry: { retries: 2, initialDelayMs: 50, maxDelayMs: 200 }, batch: { size: 100 } },
      pipelines: { [name]: pipeline },
    };
    const rt = new Runtime(parseConfig(JSON.stringify(doc), join(mkdtempSync(join(tmpdir(), 'syncline-protos-')), 'config.yaml'), {}), new Set(['capture', 'process', 'sink']));
    runtimes.push(rt);
    const { done } = await rt.start();
    return { rt, done };
  };
  return { id, prefix, pgDb, mdb, maria, start, serverId: () => 100000 + parseInt(id.slice(0, 6), 16) + runtimes.length };
}

test('the same columns into a MariaDB target', async (t) => {
  const { prefix, pgDb: sourceDb, mdb, maria, start } = await pgAndMaria(t, 'src');
  await sql(sourceDb, DDL);
  await maria.query(`CREATE TABLE ${mdb}.protos (id INT, \`constructor\` VARCHAR(20), \`__proto__\` TEXT, \`toString\` INT, \`hasOwnProperty\` BOOLEAN, \`valueOf\` JSON,
    updated_at TIMESTAMP(6) NOT NULL, PRIMARY KEY (id, \`constructor\`))`);
  await sql(sourceDb, `insert into protos (id, "constructor", "__proto__", "toString", "hasOwnProperty", "valueOf")
    select g, 'c' || (g % 3), 'p' || g, g * 10, g % 2 = 0, jsonb_build_object('k', g) from generate_series(1, 20) g`);
  const { rt, done } = await start('to-maria', {
    source: { type: 'postgres', connection: { ...PG, database: sourceDb }, slot: `${prefix}_protos`, publication: `${prefix}_protos`, snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
    target: { type: 'mariadb', connection: { ...MARIA, database: mdb }, poolSize: 2 },
    tables: [{ source: 'public.protos', target: `${mdb}.protos` }],
  });
  let failed: unknown;
  done.then(() => undefined, (err: unknown) => (failed = err));
  const read = async () => {
    if (failed) throw failed;
    const s = (await sql(sourceDb, `select id, "constructor" as c, "__proto__" as p, "toString" as s, "hasOwnProperty" as h from protos order by id, "constructor"`)).rows;
    // Aliased: mysql2 refuses a result with a column named __proto__.
    const [m] = (await maria.query({ sql: `SELECT id, \`constructor\` AS c, \`__proto__\` AS p, \`toString\` AS s, \`hasOwnProperty\` AS h FROM ${mdb}.protos ORDER BY id, \`constructor\``, rowsAsArray: true })) as unknown as [unknown[][]];
    return { source: JSON.stringify(s.map((r) => [r.id, r.c, r.p, r.s, r.h === null ? null : r.h ? 1 : 0])), target: JSON.stringify(m) };
  };
  const same = async () => {
    const { source, target } = await read();
    return source === target;
  };
  await waitFor('the snapshot in MariaDB', same, 120_000, 300);
  await waitFor('the capture streams', async () => (rt.pipelines[0]!.capture?.stats.confirmed ?? '') !== '');
  await sql(sourceDb, `update protos set "__proto__" = null, "toString" = null, updated_at = clock_timestamp() where id <= 5`);
  await sql(sourceDb, `update protos set "__proto__" = 'back ' || id, updated_at = clock_timestamp() where id <= 3`);
  await sql(sourceDb, `delete from protos where id in (7, 8)`);
  await sql(sourceDb, `insert into protos (id, "constructor", "__proto__", "toString") values (7, 'c1', 'again', 7)`);
  await waitFor('the streamed changes in MariaDB', same, 120_000, 300).catch(async (err: Error) => assert.fail(`${err.message}: ${JSON.stringify(await read())}`));
  const { target } = await read();
  assert.match(target, /\[1,"c1","back 1",null,0\]/);
  assert.match(target, /\[7,"c1","again",7,null\]/);
});

test('from a MariaDB source: constructor and toString columns converge; a __proto__ column is refused, naming the table', async (t) => {
  const { pgDb: targetDb, mdb, maria, start, serverId } = await pgAndMaria(t, 'dst');
  await maria.query(`CREATE TABLE ${mdb}.ctors (id INT PRIMARY KEY, \`constructor\` TEXT, \`toString\` INT, updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6))`);
  await maria.query(`CREATE TABLE ${mdb}.protos (id INT PRIMARY KEY, \`__proto__\` TEXT)`);
  await sql(targetDb, 'create table ctors (id int primary key, "constructor" text, "toString" int, updated_at timestamptz not null)');
  await maria.query(`INSERT INTO ${mdb}.ctors (id, \`constructor\`, \`toString\`) VALUES (1, 'p1', 10), (2, 'p2', 20)`);
  const from = async (table: string, target: string) => (await start(`from-${table}`, {
    source: { type: 'mariadb', connection: { ...MARIA, database: mdb }, serverId: serverId(), snapshot: 'initial', heartbeatMs: 1000, lingerMs: 5 },
    target: { type: 'postgres', connection: { ...PG, database: targetDb } },
    tables: [{ source: `${mdb}.${table}`, target }],
  })).done;

  // A __proto__ column: the capture stage fails at start with an error that says which table and why.
  const refused = await from('protos', 'public.protos').then(() => undefined, (err: unknown) => err as SynclineError);
  assert.equal(refused?.code, 'MARIADB_COLUMN_NAME');
  assert.match(refused.message, new RegExp(`table ${mdb}\\.protos: a column named __proto__ cannot be read from MariaDB`));

  let failed: unknown;
  void from('ctors', 'public.ctors').catch((err: unknown) => (failed = err));
  const show = async () => {
    if (failed) throw failed;
    return JSON.stringify((await sql(targetDb, 'select id, "constructor" as c, "toString" as s from ctors order by id')).rows);
  };
  await waitFor('the snapshot on the target', async () => (await show()) === '[{"id":1,"c":"p1","s":10},{"id":2,"c":"p2","s":20}]', 60_000, 300);
  await maria.query(`INSERT INTO ${mdb}.ctors (id, \`constructor\`, \`toString\`) VALUES (3, 'p3', 30)`);
  await maria.query(`UPDATE ${mdb}.ctors SET \`constructor\` = NULL, \`toString\` = NULL WHERE id = 1`);
  await maria.query(`DELETE FROM ${mdb}.ctors WHERE id = 2`);
  await waitFor('the streamed changes on the target', async () => (await show()) === '[{"id":1,"c":null,"s":null},{"id":3,"c":"p3","s":30}]', 60_000, 300);
});

test('the same columns renamed, computed, and into an HTTP target', async (t) => {
  const env = await testEnv([{
    name: 'renamed', conflict: { strategy: 'source-wins' },
    // toString renamed, `constructor` computed from `__proto__`, a constant into valueOf (a config
    // cannot name a `__proto__` key: refused at load, see load.test.ts).
    tables: [{ source: 'public.s', target: 'public.r', columns: { toString: 'ts' }, transform: [{ compute: { constructor: '__proto__' } }, { set: { valueOf: 'v' } }] }],
  }]);
  t.after(() => env.cleanup());
  const api = await new TestApi().start();
  t.after(() => api.stop());
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as { pipelines: Record<string, unknown> };
  doc.pipelines['to-http'] = { follows: 'renamed', target: { type: 'http', url: `${api.url}/{table}/{key.id}`, concurrency: 2, timeoutMs: 5000 }, conflict: { strategy: 'source-wins' }, tables: [{ source: 'public.s' }] };
  env.config = parseConfig(JSON.stringify(doc), env.configFile, {});
  await sql(env.sourceDb, `create table s (id int primary key, "__proto__" text, "toString" text, updated_at timestamptz not null default clock_timestamp())`);
  await sql(env.targetDb, `create table r (id int primary key, "__proto__" text, ts text, "constructor" text, "valueOf" text, updated_at timestamptz not null)`);
  await sql(env.sourceDb, `insert into s (id, "__proto__", "toString") select g, 'p' || g, 't' || g from generate_series(1, 10) g`);
  const { rt } = await startRuntime(env);
  const want = async () => (await sql(env.sourceDb, `select id, "__proto__" as p, "toString" as s from s order by id`)).rows as { id: number; p: string | null; s: string | null }[];
  const pgSide = async () => JSON.stringify((await sql(env.targetDb, `select id, "__proto__" as p, ts as s, "constructor" as c, "valueOf" as v from r order by id`)).rows);
  const pgWanted = async () => JSON.stringify((await want()).map((r) => ({ id: r.id, p: r.p, s: r.s, c: r.p, v: 'v' })));
  const httpSide = () => JSON.stringify([...api.objects.values()].map((o) => [o.id, Object.hasOwn(o, '__proto__') ? o['__proto__'] : 'MISSING', o.toString]).sort((a, b) => Number(a[0]) - Number(b[0])));
  const httpWanted = async () => JSON.stringify((await want()).map((r) => [r.id, r.p, r.s]));
  const both = async () => (await pgSide()) === (await pgWanted()) && httpSide() === (await httpWanted());
  await waitFor('the snapshot in both targets', both, 120_000, 300).catch(async (err: Error) => assert.fail(`${err.message}\n${await pgSide()}\n${httpSide()}`));
  await waitFor('the capture streams', async () => (rt.pipelines[0]!.capture?.stats.confirmed ?? '') !== '');
  await sql(env.sourceDb, `update s set "__proto__" = 'new ' || id, updated_at = clock_timestamp() where id <= 4`);
  await sql(env.sourceDb, `update s set "toString" = null, updated_at = clock_timestamp() where id = 2`);
  await sql(env.sourceDb, `delete from s where id = 5`);
  await sql(env.sourceDb, `insert into s (id, "__proto__", "toString") values (11, '{}', 'eleven')`);
  await waitFor('the streamed changes in both targets', both, 120_000, 300).catch(async (err: Error) => assert.fail(`${err.message}\n${await pgSide()}\n${httpSide()}`));
  assert.match(await pgSide(), /\{"id":2,"p":"new 2","s":null,"c":"new 2","v":"v"\}/);
});
