/**
 * `syncline init --source mariadb://…` on the real MariaDB: the tables it proposes (primary key,
 * unique index on NOT NULL columns), the ones it leaves out with their fix (no key, a column name
 * Avro cannot carry), target names in the target's database; the written config validates, doctor
 * passes on it, and the pipeline it describes runs and converges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../index.js';
import { init } from '../../src/cli/init.js';
import { doctor } from '../../src/cli/doctor.js';
import { parseConfig } from '../../src/core/config/load.js';
import { Runtime } from '../../src/runtime.js';
import { deleteTopics, uid, waitFor } from '../../test/helpers.js';
import { my } from './source/harness.js';

test('init from a mariadb:// URL: proposed tables and fixes, a config that validates, passes doctor and converges', { timeout: 300_000 }, async (t) => {
  const id = uid();
  const src = `syncline_t_${id}_isrc`;
  const dst = `syncline_t_${id}_idst`;
  const prefix = `t${id}`;
  const dir = mkdtempSync(join(tmpdir(), 'syncline-myinit-'));
  const runtimes: Runtime[] = [];
  t.after(async () => {
    await Promise.allSettled(runtimes.map((r) => r.stop()));
    for (const d of [src, dst]) await my(undefined, `DROP DATABASE IF EXISTS \`${d}\``).catch(() => undefined);
    await deleteTopics(prefix).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  await my(undefined, `CREATE DATABASE \`${src}\`; CREATE DATABASE \`${dst}\``);
  await my(src, `CREATE TABLE items (id BIGINT UNSIGNED PRIMARY KEY, name VARCHAR(40) NOT NULL, price DECIMAL(10,2));
                 CREATE TABLE ev (code CHAR(8) NOT NULL, v INT, UNIQUE KEY ev_code (code));
                 CREATE TABLE logs (line TEXT);
                 CREATE TABLE odd (id INT PRIMARY KEY, \`order no\` INT);
                 INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', NULL); INSERT INTO ev VALUES ('x', 1)`);
  const file = join(dir, 'sync.yaml');
  let err = '';
  const code = await init({ source: `mariadb://root@127.0.0.1:3306/${src}`, target: `mariadb://root@127.0.0.1:3306/${dst}`, pipeline: `${prefix}-init`, out: file, stderr: (s) => (err += s), stdout: () => undefined });
  assert.equal(code, 0, err);
  const text = readFileSync(file, 'utf8');
  assert.match(err, new RegExp(`wrote .*: pipeline ${prefix}-init, 2 tables \\(${src}\\.ev, ${src}\\.items\\)`));
  assert.match(text, new RegExp(`- source: ${src}\\.items\\n\\s+target: ${dst}\\.items\\n\\s+key: \\[id\\]   # primary key`));
  assert.match(text, new RegExp(`- source: ${src}\\.ev\\n\\s+target: ${dst}\\.ev\\n\\s+key: \\[code\\]   # unique index ev_code`));
  assert.match(text, /# .*\.items: id bigint\(20\) unsigned NOT NULL, name varchar\(40\) NOT NULL,\n\s+#\s+price decimal\(10,2\)/);
  assert.match(text, new RegExp(`#   ALTER TABLE \`${src}\`\\.\`odd\` RENAME COLUMN \`order no\` TO \`order_no\`;`));
  assert.match(text, /has no primary key and no unique index on NOT NULL columns/);
  assert.match(text, /# - source: .*\.logs\n\s+#   target: .*\.logs\n\s+#   key: \[line\]/);

  const env = { SYNCLINE_TOPIC_PREFIX: prefix };
  const config = parseConfig(text, file, env);
  const p = config.pipelines[`${prefix}-init`]!;
  assert.equal((p.source as { type: string }).type, 'mariadb');
  assert.deepEqual(p.tables.map((x) => [x.source, x.target, x.key]), [[`${src}.ev`, `${dst}.ev`, ['code']], [`${src}.items`, `${dst}.items`, ['id']]]);

  // doctor passes on it (SYNCLINE_TOPIC_PREFIX names this test's topics).
  process.env.SYNCLINE_TOPIC_PREFIX = prefix;
  try {
    let report = '';
    assert.equal(await doctor({ config: file, out: (s) => (report += s) }), 0, report);
  } finally {
    delete process.env.SYNCLINE_TOPIC_PREFIX;
  }

  const rt = new Runtime(config, new Set(['capture', 'process', 'sink'] as const));
  runtimes.push(rt);
  const { done } = await rt.start();
  done.catch(() => undefined);
  await my(src, `INSERT INTO items VALUES (3, 'c', 9.99); UPDATE ev SET v = 2 WHERE code = 'x'; DELETE FROM items WHERE id = 2`);
  await waitFor('the target equal to the source', async () => {
    const q = async (db: string) => JSON.stringify([await my(db, 'SELECT id, name, price FROM items ORDER BY id').catch(() => null), await my(db, 'SELECT code, v FROM ev ORDER BY code').catch(() => null)]);
    return (await q(src)) === (await q(dst));
  }, 120_000);
});
