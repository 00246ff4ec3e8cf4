/**
 * How the MariaDB source's start fails, against the real server: connection refused is retriable;
 * refused credentials (1045) and missing replication privileges are fatal, the latter with the GRANT
 * to run; a missing table is SOURCE_TABLE_MISSING and a table without a primary key is fatal, both
 * naming the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rootLogger } from '../../../src/core/log.js';
import { errorCode, errorKind, errorMessage } from '../../../src/core/errors.js';
import { uid } from '../../../test/helpers.js';
import { MariadbSource } from './mariadb-source.js';
import { mariadbSourceSpec } from './spec.js';
import { my, MY } from './harness.js';

const source = (connection: Record<string, unknown>) => new MariadbSource(mariadbSourceSpec.parse({ type: 'mariadb', connection }), 'errors-test', rootLogger);

async function failure(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail('expected a failure');
}

test('start failures are classified and say what to do', async (t) => {
  const id = uid();
  const db = `syncline_t_${id}_err`;
  const user = `syncline_t_${id}`;
  await my(undefined, `CREATE DATABASE \`${db}\`; CREATE TABLE \`${db}\`.nokey (a INT, b INT); CREATE TABLE \`${db}\`.ok (id INT PRIMARY KEY)`);
  await my(undefined, `CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-${id}'; GRANT SELECT ON \`${db}\`.* TO '${user}'@'%'`);
  t.after(async () => {
    await my(undefined, `DROP USER IF EXISTS '${user}'@'%'; DROP DATABASE IF EXISTS \`${db}\``);
  });

  // Nothing listens on port 1: retriable (the start waits for the server).
  const refused = await failure(source({ host: '127.0.0.1', port: 1, user: 'root', database: db }).connect());
  assert.equal(errorKind(refused), 'retriable', errorMessage(refused));
  assert.match(errorMessage(refused), /127\.0\.0\.1:1/);

  // Wrong password: 1045, fatal.
  const denied = await failure(source({ ...MY, user, password: 'wrong', database: db }).connect());
  assert.equal(errorKind(denied), 'fatal');
  assert.equal(errorCode(denied), 'MARIADB_ACCESS_DENIED');

  // Right password, no replication privileges: fatal with the GRANT.
  const s = source({ ...MY, user, password: `pw-${id}`, database: db });
  const noRepl = await failure(s.connect());
  await s.stop();
  assert.equal(errorKind(noRepl), 'fatal');
  assert.equal(errorCode(noRepl), 'MARIADB_PRIVILEGE');
  assert.match(errorMessage(noRepl), /REPLICATION SLAVE and REPLICATION CLIENT/);
  assert.match(errorMessage(noRepl), new RegExp(`GRANT SELECT, REPLICATION SLAVE, REPLICATION CLIENT ON \\*\\.\\* TO '${user}'`));

  // Tables: missing, and without a key.
  const root = source({ ...MY, database: db });
  await root.connect();
  t.after(() => root.stop());
  const missing = await failure(root.describe([{ source: `${db}.nope` } as never]));
  assert.equal(errorCode(missing), 'SOURCE_TABLE_MISSING');
  assert.match(errorMessage(missing), new RegExp(`${db}\\.nope`));
  const nokey = await failure(root.describe([{ source: `${db}.nokey` } as never]));
  assert.equal(errorKind(nokey), 'fatal');
  assert.match(errorMessage(nokey), new RegExp(`${db}\\.nokey has no primary key`));
  const described = await root.describe([{ source: `${db}.ok` } as never, { source: `${db}.nokey`, key: ['a'] } as never]);
  assert.deepEqual(described.map((d) => d.key), [['id'], ['a']]);
});
