/**
 * Transform versions and `syncline replay --transforms-as-of` on the real stack: a pipeline runs
 * with transforms v1 (a custom module and a constant), then its config changes to v2; each start
 * records its version in `<prefix>.transforms.<pipeline>`. A replay runs the transforms in force now
 * by default, an earlier version when asked by hash; an unknown or malformed hash is refused naming
 * what is recorded; a custom module edited since a version makes that version refused (its old code
 * is not kept).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/core/config/load.js';
import { currentVersion, transformsTopic } from '../src/process/transform/versions.js';
import { readTopic, runCli, sql, startRuntime, testEnv, waitFor } from './helpers.js';

const P = 'tv-sync';
const DDL = `create table items (id int primary key, name text not null)`;

test('replay runs the transforms in force now, or a recorded earlier version by hash; unknown versions and changed modules are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-tv-'));
  const mod = join(dir, 'upper.mjs');
  writeFileSync(mod, `export function transform(c) { return c.after ? { ...c, after: { ...c.after, name: c.after.name.toUpperCase() } } : c; }\n`);
  const env = await testEnv([{ name: P, tables: [{ source: 'public.items', transform: [{ custom: { module: mod } }, { set: { tag: 'v1' } }] }], conflict: { strategy: 'source-wins' } }]);
  t.after(() => env.cleanup());
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, `create table items (id int primary key, name text not null, tag text)`);
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(1, 40) g`);
  const tags = async () => (await sql(env.targetDb, `select coalesce(tag, '-') as tag, count(*)::int as n from items group by 1 order by 1`)).rows.map((r) => `${r.tag}:${r.n}`).join(' ');

  // v1.
  const v1 = currentVersion(P, env.config.pipelines[P]!).hash;
  let { rt } = await startRuntime(env);
  await waitFor('v1 applied', async () => (await tags()) === 'v1:40');
  assert.equal((await sql(env.targetDb, `select name from items where id = 1`)).rows[0].name, 'ITEM 1');
  await rt.stop();

  // v2: the config changes (the constant), the module stays.
  const text = readFileSync(env.configFile, 'utf8').replace('"tag": "v1"', '"tag": "v2"');
  writeFileSync(env.configFile, text);
  env.config = parseConfig(text, env.configFile, {});
  const v2 = currentVersion(P, env.config.pipelines[P]!).hash;
  assert.notEqual(v2, v1);
  ({ rt } = await startRuntime(env));
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(41, 50) g`);
  await waitFor('v2 applied to the new rows', async () => (await tags()) === 'v1:40 v2:10');
  await rt.stop();
  const recorded = (await readTopic(transformsTopic(env.prefix, P))).map((m) => m.key!.toString());
  assert.deepEqual([...new Set(recorded)].sort(), [v1, v2].sort(), 'each start recorded its version');

  const replay = (...extra: string[]) => runCli(['replay', '--pipeline', P, '-c', env.configFile, '--from', 'beginning', ...extra]);
  // Default: the transforms in force now.
  await sql(env.targetDb, 'truncate items');
  let r = await replay();
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`transforms +in force now \\(version ${v2}\\)`));
  assert.equal(await tags(), 'v2:50');

  // As of v1 (a prefix of its hash is enough).
  await sql(env.targetDb, 'truncate items');
  r = await replay('--transforms-as-of', v1.slice(0, 8));
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`transforms +as of version ${v1} \\(last run `));
  assert.equal(await tags(), 'v1:50');
  assert.equal((await sql(env.targetDb, `select name from items where id = 45`)).rows[0].name, 'ITEM 45', 'the custom step of v1 ran too');

  // Unknown and malformed versions: refused, saying what is recorded; nothing written.
  await sql(env.targetDb, 'truncate items');
  r = await replay('--transforms-as-of', 'abcdef12');
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`no such transforms version of pipeline ${P}; recorded: .*${v2} \\(last run .*${v1} \\(last run`));
  r = await replay('--transforms-as-of', 'yesterday');
  assert.equal(r.code, 1);
  assert.match(r.err, /--transforms-as-of must be a transforms version hash .*got 'yesterday'/);

  // The module edited since: v1 (and v2, which ran the same bytes) can no longer be run as they were.
  writeFileSync(mod, `export function transform(c) { return c; }\n`);
  r = await replay('--transforms-as-of', v1);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`custom transform module ${mod.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} changed since transforms version ${v1}`));
  assert.equal(await tags(), '', 'nothing written by the refused replays');
});
