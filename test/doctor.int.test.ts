/**
 * `syncline doctor` on the real stack: every check fails for real, and passes once the fix it prints
 * is applied (the SQL run as printed, the curl run as printed, the ACL sent as printed).
 *  1. All good on the shared stack: exit 0 (through the CLI).
 *  2. Roles without rights on the shared PostgreSQL (created and dropped here): REPLICATION, SELECT,
 *     a table that does not exist, a publication that does not cover the tables (then missing, then
 *     not publishing deletes), replica identities, a column name Avro cannot carry, target tables
 *     missing, without a key constraint, without rights, without a column. Fixes applied round by
 *     round until doctor passes.
 *  3. A private PostgreSQL (initdb into a temp dir; the shared one is never reconfigured):
 *     wal_level=replica, no free slot, no walsender; then an inactive slot of ours holding WAL (with
 *     the bytes it holds), and a slot of the wrong plugin.
 *  4. Redis through an ACL user that may not write (created on the shared Redis, deleted after).
 *  5. Kafka, registry and Redis on closed ports (through the CLI: exit 1).
 *  6. A subject of this test at compatibility FULL in the registry (its own subject; the global
 *     level is not touched), and a replication factor the single broker cannot give.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import { doctor } from '../src/cli/doctor.js';
import { spawnCli, sql, testEnv, uid, waitFor, type TestEnv } from './helpers.js';
import { freePort } from './prometheus.js';

interface Entry {
  subject: string;
  check: string;
  ok: boolean;
  detail: string;
  fix: string[];
}

/** The report doctor prints, read back. */
function parseReport(text: string): Entry[] {
  const out: Entry[] = [];
  let subject = '';
  for (const line of text.split('\n').slice(1)) {
    const e = /^ {2}(ok {2}|FAIL) {2}([^:]+): (.*)$/.exec(line);
    const fix = /^ {8}fix: (.*)$/.exec(line);
    if (e) out.push({ subject, check: e[2]!, ok: e[1] === 'FAIL' ? false : true, detail: e[3]!, fix: [] });
    else if (fix) out[out.length - 1]!.fix.push(fix[1]!);
    else if (/^\S/.test(line) && !/checks (passed|failed)$/.test(line)) subject = line;
  }
  return out;
}

async function run(file: string): Promise<{ code: number; text: string; entries: Entry[]; failed: Entry[] }> {
  let text = '';
  const code = await doctor({ config: file, out: (t) => (text += t) });
  const entries = parseReport(text);
  assert.ok(entries.length > 0, text);
  assert.equal(code === 0, entries.every((e) => e.ok), `exit ${code} and the report agree:\n${text}`);
  return { code, text, entries, failed: entries.filter((e) => !e.ok) };
}

/** Runs the CLI to its end. */
async function cli(args: string[]): Promise<{ code: number | null; out: string }> {
  const child = spawnCli(args);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { code: await new Promise<number | null>((r) => child.on('exit', r)), out };
}

const SQL = /^(ALTER|GRANT|CREATE|SELECT) /;

/** Runs a printed SQL fix as a superuser (the fixes say who runs them: an owner or an administrator). */
async function runSql(conn: pg.ClientConfig, statement: string): Promise<void> {
  const c = new pg.Client(conn);
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}

const configDirs: string[] = [];
after(() => {
  for (const d of configDirs) rmSync(d, { recursive: true, force: true });
});

function writeJson(doc: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-doctor-'));
  configDirs.push(dir);
  const file = join(dir, 'config.yaml');
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

const baseDoc = (env: TestEnv) => JSON.parse(readFileSync(env.configFile, 'utf8')) as Record<string, any>;

test('doctor: all good, then each check of the shared stack failing for real and passing once its fix is applied', { timeout: 900_000 }, async (t) => {
  const env = await testEnv([{ name: 'main', tables: [{ source: 'public.items' }] }]);
  const roles: string[] = [];
  const acl: string[] = [];
  const subjects: string[] = [];
  const redisAdmin = new Redis('redis://127.0.0.1:6379');
  t.after(async () => {
    for (const u of acl) await redisAdmin.call('ACL', 'DELUSER', u).catch(() => undefined);
    redisAdmin.disconnect();
    const registry = env.config.schemaRegistry.url;
    for (const s of subjects) {
      await fetch(`${registry}/subjects/${s}`, { method: 'DELETE' }).catch(() => undefined);
      await fetch(`${registry}/subjects/${s}?permanent=true`, { method: 'DELETE' }).catch(() => undefined);
    }
    await env.cleanup();
    for (const r of roles) await sql('postgres', `drop role if exists "${r}"`).catch(() => undefined);
  });
  await sql(env.sourceDb, 'create table items (id int primary key, name text, note text)');
  await sql(env.targetDb, 'create table items (id int primary key, name text, note text)');

  // 1. Everything in place: exit 0, through the CLI.
  const good = await cli(['doctor', '--config', env.configFile]);
  assert.equal(good.code, 0, good.out);
  assert.match(good.out, /^all \d+ checks passed$/m);
  assert.match(good.out, /ok {4}topic creation: \d+ of \d+ topics to create at the first start; the broker accepts creating them/);

  // 2. Roles without rights; tables without keys; a publication that covers too little.
  const srcRole = `${env.prefix}_src`;
  const dstRole = `${env.prefix}_dst`;
  roles.push(srcRole, dstRole);
  await sql('postgres', `create role "${srcRole}" login; create role "${dstRole}" login`);
  await sql(env.sourceDb, `
    create table nokey (code text not null unique, v int);
    create table nothing (id int primary key, v int);
    alter table nothing replica identity nothing;
    create table spaced (id int primary key, "order no" text);
    create publication "${env.slot('main')}" for table items;
  `);
  await sql(env.targetDb, `
    alter table items drop column note;
    grant select on items to "${dstRole}";
    create table nothing (id int, v int);
    grant select, insert, update, delete, truncate on nothing to "${dstRole}";
  `);
  const doc = baseDoc(env);
  const pipeline = doc.pipelines.main;
  pipeline.source.connection.user = srcRole;
  pipeline.target.connection.user = dstRole;
  pipeline.tables = [{ source: 'public.items' }, { source: 'public.nokey' }, { source: 'public.nothing' }, { source: 'public.spaced' }, { source: 'public.gone' }];
  let file = writeJson(doc);
  const rounds: Entry[][] = [];
  for (let round = 0; ; round++) {
    const r = await run(file);
    if (r.code === 0) break;
    assert.ok(round < 6, `doctor still fails after ${round} rounds of fixes:\n${r.text}`);
    rounds.push(r.failed);
    let applied = 0;
    for (const f of r.failed) {
      const db = f.subject.includes(': target ') ? env.targetDb : env.sourceDb;
      for (const fix of f.fix) {
        if (SQL.test(fix)) {
          await runSql({ host: '127.0.0.1', port: 5432, user: 'postgres', database: db }, fix);
          applied++;
        }
        const key = /^and in the config, pipelines\.main\.tables\[(\d+)\]: key: \[(.*)\]/.exec(fix);
        if (key) (pipeline.tables[Number(key[1])].key = key[2]!.split(', ')), applied++;
        if (/^create (it|them), or remove (it|them) from pipelines\.main\.tables$/.test(fix)) {
          pipeline.tables = pipeline.tables.filter((x: { source: string }) => !f.detail.includes(x.source));
          applied++;
        }
      }
    }
    assert.ok(applied > 0, `nothing to apply in:\n${r.text}`);
    file = writeJson(doc);
  }
  const first = Object.fromEntries(rounds[0]!.map((f) => [`${f.subject.split(' ').slice(0, 3).join(' ')} ${f.check}`, f]));
  assert.deepEqual(Object.keys(first).sort(), [
    'pipeline main: source REPLICATION right',
    'pipeline main: source SELECT right',
    `pipeline main: source column names`,
    `pipeline main: source publication ${env.slot('main')}`,
    'pipeline main: source replica identity of public.nokey',
    'pipeline main: source replica identity of public.nothing',
    'pipeline main: source tables',
    'pipeline main: target table public.items',
    'pipeline main: target table public.nokey',
    'pipeline main: target table public.nothing',
    'pipeline main: target table public.spaced',
  ].sort());
  assert.deepEqual(first['pipeline main: source REPLICATION right']!.fix[0], `ALTER ROLE "${srcRole}" REPLICATION;`);
  assert.deepEqual(first['pipeline main: source SELECT right']!.fix, [`GRANT SELECT ON "public"."items", "public"."nokey", "public"."nothing", "public"."spaced" TO "${srcRole}";`]);
  assert.match(first[`pipeline main: source publication ${env.slot('main')}`]!.fix[0]!, new RegExp(`^ALTER PUBLICATION "${env.slot('main')}" ADD TABLE "public"\\."nokey", "public"\\."nothing", "public"\\."spaced";`));
  assert.deepEqual(first['pipeline main: source replica identity of public.nokey']!.fix, ['ALTER TABLE "public"."nokey" REPLICA IDENTITY FULL;', 'and in the config, pipelines.main.tables[1]: key: [code]']);
  assert.deepEqual(first['pipeline main: source replica identity of public.nothing']!.fix, ['ALTER TABLE "public"."nothing" REPLICA IDENTITY DEFAULT;']);
  assert.deepEqual(first['pipeline main: source column names']!.fix, ['ALTER TABLE "public"."spaced" RENAME COLUMN "order no" TO "order_no";']);
  assert.match(first['pipeline main: source tables']!.detail, /public\.gone does not exist/);
  assert.deepEqual(first['pipeline main: target table public.items']!.fix, [`GRANT INSERT, UPDATE, DELETE, TRUNCATE ON "public"."items" TO "${dstRole}";`, 'ALTER TABLE "public"."items" ADD COLUMN "note" text;']);
  assert.deepEqual(first['pipeline main: target table public.nothing']!.fix, ['ALTER TABLE "public"."nothing" ADD PRIMARY KEY ("id");']);
  // autoCreate is on, but the target role may not create in public (PostgreSQL 15's default): the GRANT, or the table.
  assert.deepEqual(first['pipeline main: target table public.spaced']!.fix, [`GRANT CREATE ON SCHEMA "public" TO "${dstRole}";   -- or create it:`, 'CREATE TABLE "public"."spaced" ("id" integer NOT NULL, "order no" text, PRIMARY KEY ("id"));']);
  // Later rounds follow the earlier fixes: the renamed column is added to the target table created
  // before the rename; nokey, keyed now, is missing on the target, which autoCreate creates now that
  // the role may create in public (granted in the first round).
  const later = rounds.slice(1).flat().flatMap((f) => f.fix);
  assert.ok(later.includes('ALTER TABLE "public"."spaced" ADD COLUMN "order_no" text;'), later.join('\n'));
  assert.ok(!later.some((f) => f.includes('"public"."nokey"')), later.join('\n'));
  assert.match((await run(file)).text, /ok {4}table public\.nokey: missing; created at the first change \(autoCreate\)/);

  // The publication missing, and the role may not create it; then one that does not publish deletes.
  await sql(env.sourceDb, `drop publication "${env.slot('main')}"`);
  let r = await run(file);
  const pubCheck = `publication ${env.slot('main')}`;
  const missing = r.failed.find((f) => f.check === pubCheck);
  assert.deepEqual(r.failed.map((f) => f.check), [pubCheck], r.text);
  assert.match(missing!.detail, /missing, and .* may not create it/);
  await runSql({ host: '127.0.0.1', user: 'postgres', database: env.sourceDb }, missing!.fix[0]!);
  assert.equal((await run(file)).code, 0);
  await sql(env.sourceDb, `alter publication "${env.slot('main')}" set (publish = 'insert, update')`);
  r = await run(file);
  assert.deepEqual(r.failed.map((f) => [f.check, f.detail]), [[pubCheck, 'does not publish delete, truncate: those changes would never reach the target']]);
  await runSql({ host: '127.0.0.1', user: 'postgres', database: env.sourceDb }, r.failed[0]!.fix[0]!);
  assert.equal((await run(file)).code, 0);

  // 4. Redis: an ACL user that may read but not write; the printed ACL fixes it.
  const user = `${env.prefix}_doctor`;
  const password = `pw-${uid()}`;
  acl.push(user);
  await redisAdmin.call('ACL', 'SETUSER', user, 'on', `>${password}`, `~${env.prefix}:*`, '+@read', '+@connection', '+info');
  const redisDoc = baseDoc(env);
  redisDoc.redis = { url: `redis://${user}:${password}@127.0.0.1:6379` };
  const redisFile = writeJson(redisDoc);
  r = await run(redisFile);
  assert.ok(!r.text.includes(password), 'the Redis password is not printed');
  assert.deepEqual(r.failed.map((f) => f.check), ['writable'], r.text);
  assert.match(r.failed[0]!.detail, /NOPERM/);
  const aclFix = r.failed[0]!.fix[0]!.split('   (')[0]!.split(' ');
  assert.deepEqual(aclFix.slice(0, 3), ['ACL', 'SETUSER', user]);
  await redisAdmin.call(aclFix[0]!, ...aclFix.slice(1));
  assert.equal((await run(redisFile)).code, 0);

  // 6. The registry: a subject of this pipeline at FULL (set by this test on its own subject).
  const registry = env.config.schemaRegistry.url;
  const subject = `${env.prefix}.cdc.public.items-value`;
  subjects.push(subject);
  const post = await fetch(`${registry}/subjects/${subject}/versions`, {
    method: 'POST', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ schema: JSON.stringify({ type: 'record', name: 'Value', fields: [{ name: 'id', type: 'int' }] }) }),
  });
  assert.equal(post.status, 200, await post.text());
  const put = await fetch(`${registry}/config/${subject}`, { method: 'PUT', headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ compatibility: 'FULL' }) });
  assert.equal(put.status, 200, await put.text());
  r = await run(file);
  assert.deepEqual(r.failed.map((f) => [f.subject.split(' ')[0], f.check]), [['registry', 'compatibility']], r.text);
  assert.match(r.failed[0]!.detail, new RegExp(`${subject.replace(/\./g, '\\.')} is FULL`));
  const curl = spawnSync('sh', ['-c', `${r.failed[0]!.fix[0]} --silent --fail`], { encoding: 'utf8' });
  assert.equal(curl.status, 0, curl.stderr);
  assert.equal((await run(file)).code, 0);

  // 6. Topic creation refused: a replication factor the single broker cannot give.
  const rfDoc = baseDoc(env);
  rfDoc.kafka.replicationFactor = 3;
  r = await run(writeJson(rfDoc));
  assert.deepEqual(r.failed.map((f) => [f.check, f.fix]), [['topic creation', ['kafka.replicationFactor: 1   (in the config)']]], r.text);
  assert.match(r.failed[0]!.detail, /kafka\.replicationFactor is 3 but the cluster has 1 broker/);

  // 5. Nothing listens: Kafka, the registry and Redis unreachable; exit 1 through the CLI.
  const [k, g, d] = [await freePort(), await freePort(), await freePort()];
  const downDoc = baseDoc(env);
  downDoc.kafka.brokers = [`127.0.0.1:${k}`];
  downDoc.schemaRegistry = { url: `http://127.0.0.1:${g}/apis/ccompat/v7` };
  downDoc.redis = { url: `redis://127.0.0.1:${d}` };
  const down = await cli(['doctor', '--config', writeJson(downDoc)]);
  assert.equal(down.code, 1, down.out);
  const downEntries = parseReport(down.out);
  assert.deepEqual(downEntries.filter((e) => !e.ok).map((e) => `${e.subject.split(' ')[0]} ${e.check}`), ['kafka reachable', 'registry reachable', 'redis reachable'], down.out);
  assert.ok(!downEntries.some((e) => ['topic creation', 'compatibility', 'writable'].includes(e.check)), 'checks that need an unreachable dependency are not run');
});

// ---------------------------------------------------------------------------------------------
// 3. A private PostgreSQL: server settings and slots.

const PG_BIN = '/usr/lib/postgresql/15/bin';
const asPostgres = (cmd: string, args: string[]) => (process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]) as [string, string[]];

function pgCtl(dir: string, ...args: string[]): void {
  const [cmd, argv] = asPostgres(`${PG_BIN}/pg_ctl`, ['-D', dir, '-l', join(dir, 'server.log'), '-w', '-t', '120', ...args]);
  execFileSync(cmd, argv, { stdio: 'pipe' });
}

test('doctor on a private PostgreSQL: wal_level, slots and walsenders, a slot holding WAL, a slot of another plugin', { timeout: 600_000 }, async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'syncline-doctor-pg-'));
  const dir = join(base, 'data');
  const port = await freePort();
  if (process.getuid?.() === 0) chownSync(base, Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' })), Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' })));
  const [cmd, argv] = asPostgres(`${PG_BIN}/initdb`, ['-D', dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--wal-segsize=1']);
  execFileSync(cmd, argv, { stdio: 'pipe' });
  writeFileSync(join(dir, 'postgresql.conf'), [
    readFileSync(join(dir, 'postgresql.conf'), 'utf8'),
    `port = ${port}`, "listen_addresses = '127.0.0.1'", `unix_socket_directories = '${dir}'`, 'max_connections = 20', 'shared_buffers = 16MB',
    'wal_level = replica', 'max_replication_slots = 1', 'max_wal_senders = 0',
  ].join('\n'));
  pgCtl(dir, 'start');
  const prefix = `t${uid()}`;
  t.after(() => {
    try {
      pgCtl(dir, '-m', 'immediate', 'stop');
    } catch {
      // not running
    }
    rmSync(base, { recursive: true, force: true });
  });
  const conn = (database: string): pg.ClientConfig => ({ host: '127.0.0.1', port, user: 'postgres', database });
  const q = async (database: string, text: string) => {
    const c = new pg.Client(conn(database));
    await c.connect();
    try {
      return (await c.query(text)).rows;
    } finally {
      await c.end();
    }
  };
  await q('postgres', 'create database src');
  await q('postgres', 'create database dst');
  await q('src', 'create table items (id int primary key, payload text)');
  await q('dst', 'create table items (id int primary key, payload text)');
  await q('postgres', "select pg_create_physical_replication_slot('someone_elses', true)");
  const slot = `${prefix}_private`;
  const file = writeJson({
    version: 1,
    topicPrefix: prefix,
    pipelines: {
      private: {
        source: { type: 'postgres', connection: { host: '127.0.0.1', port, database: 'src', user: 'postgres' }, slot, publication: slot },
        target: { type: 'postgres', connection: { host: '127.0.0.1', port, database: 'dst', user: 'postgres' } },
        tables: [{ source: 'public.items' }],
      },
    },
  });

  let r = await run(file);
  assert.deepEqual(r.failed.map((f) => [f.check, f.detail, f.fix]), [
    ['wal_level', 'is replica; logical replication needs logical', ['ALTER SYSTEM SET wal_level = logical;', 'then restart PostgreSQL (a managed service sets it in its parameter group)']],
    ['max_replication_slots', '1 of 1 in use; private needs 1 more: not enough', ['ALTER SYSTEM SET max_replication_slots = 2;', 'then restart PostgreSQL (a managed service sets it in its parameter group)', "or drop the slots that are no longer used (inactive now: someone_elses): SELECT pg_drop_replication_slot('<name>');"]],
    ['max_wal_senders', '0 of 0 walsenders running; private needs 1 more: not enough', ['ALTER SYSTEM SET max_wal_senders = 1;', 'then restart PostgreSQL (a managed service sets it in its parameter group)']],
  ], r.text);
  for (const f of r.failed) for (const fix of f.fix) if (/^ALTER SYSTEM /.test(fix)) await q('postgres', fix);
  pgCtl(dir, 'restart'); // "then restart PostgreSQL"
  r = await run(file);
  assert.equal(r.code, 0, r.text);

  // Our slot, left inactive while the source writes: it holds the WAL (segments of 1 MiB here).
  await q('src', `select pg_create_logical_replication_slot('${slot}', 'pgoutput')`);
  await q('src', "insert into items select g, repeat(md5(g::text), 8) from generate_series(1, 20000) g");
  r = await run(file);
  const held = r.failed.find((f) => f.check === `slot ${slot}`);
  assert.deepEqual(r.failed.map((f) => f.check), [`slot ${slot}`], r.text);
  const bytes = Number(/\((\d+) bytes\) of WAL/.exec(held!.detail)![1]);
  const [{ retained }] = await q('src', `select (pg_current_wal_lsn() - restart_lsn)::float8 as retained from pg_replication_slots where slot_name = '${slot}'`);
  assert.ok(bytes >= 1 << 20 && bytes <= Number(retained), `reported ${bytes} bytes, the slot holds ${retained}`);
  assert.match(held!.detail, /^inactive, holding \d+\.\d MiB \(\d+ bytes\) of WAL/);
  assert.equal(held!.fix[0], `start the pipeline (npx syncline start --pipeline private) so it catches up`);
  const drop = /: (SELECT pg_drop_replication_slot\(.*\);)$/.exec(held!.fix[1]!)![1]!;
  await q('src', drop);
  assert.equal((await run(file)).code, 0);

  // A slot of that name with another plugin.
  await q('src', `select pg_create_logical_replication_slot('${slot}', 'test_decoding')`);
  r = await run(file);
  assert.deepEqual(r.failed.map((f) => [f.check, f.detail]), [[`slot ${slot}`, 'exists but is a logical slot of plugin test_decoding; syncline needs a logical pgoutput slot']], r.text);
  await q('src', r.failed[0]!.fix[0]!.split('   --')[0]!);
  await waitFor('doctor passes', async () => (await run(file)).code === 0, 30_000, 1000);
});
