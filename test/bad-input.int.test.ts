/**
 * Bad input everywhere: the real CLI (`syncline start -c FILE`) against wrong configs and broken
 * dependencies exits 1 in bounded time with a message naming what is wrong and where, and after
 * the cause is fixed a restart converges (nothing lost):
 *  1. malformed YAML / wrong type → FILE:LINE:COL (load.test.ts covers the loader, stages test
 *     `config validate`; here: the `start` path).
 *  2. unreachable at start (port closed, and a peer that accepts but never answers) for the source,
 *     the target, Kafka, the registry and Redis → waited for until the start deadline, then exit 1
 *     naming the dependency and its host:port (its last error).
 *  3. authentication: unknown user, role without LOGIN (a wrong password cannot be provoked while
 *     pg_hba says trust for 127.0.0.1: checked and reported as a diagnostic).
 *  4. permissions: a user that does not own the tables (publication) and one without REPLICATION
 *     (slot) → fatal with the statement to run.
 *  5. a replication slot dropped while syncline is stopped, and while capture runs → detected,
 *     reported with the slot's name, re-snapshotted; unchanged target rows are not rewritten
 *     (xmin unchanged: hash delta), and a row deleted while the slot was gone is deleted on the
     target once every partition delivered the end of the re-snapshot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import pg from 'pg';
import { Redis } from 'ioredis';
import { checksum, sleep, soak, spawnCli, sql, testEnv, waitFor, type TestEnv } from './helpers.js';

const DDL = `create table items (id int primary key, v text not null, updated_at timestamptz not null default clock_timestamp())`;
const P = 'items-sync';

interface Run { code: number | null; out: string; ms: number }

/** A started CLI with its whole output (stdout: JSON log lines, stderr: the final reason). */
function startCli(args: string[], env: Record<string, string> = {}): { p: ChildProcess; out: () => string; exit: Promise<Run> } {
  const t0 = Date.now();
  const p = spawnCli(args, env);
  let out = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exit = new Promise<Run>((resolve) => p.on('exit', (code) => resolve({ code, out, ms: Date.now() - t0 })));
  return { p, out: () => out, exit };
}

/** Run the CLI to its end; killed (code null) after `limitMs`: a hang is a failure, not a stuck test. */
async function runCli(args: string[], env: Record<string, string> = {}, limitMs = 90_000): Promise<Run> {
  const c = startCli(args, env);
  const timer = setTimeout(() => c.p.kill('SIGKILL'), limitMs);
  const r = await c.exit;
  clearTimeout(timer);
  return r;
}

/** The last line of stderr the CLI prints on a fatal error: `syncline: CODE: message`. */
function reason(r: Run): string {
  return r.out.split('\n').filter((l) => l.startsWith('syncline: ')).pop() ?? `(no reason line; output: ${r.out.slice(-1500)})`;
}

const re = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&'));

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** The shared stack may be bounced by someone else's work: wait for Kafka and the registry first. */
async function stackUp(): Promise<void> {
  await waitFor('Kafka (9092) and the registry (8081) to be up', async () => (await portOpen(9092)) && (await portOpen(8081)), 120_000, 500);
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A peer that accepts connections and never says a word (a hung server, a half-open firewall). */
async function silentServer(): Promise<{ port: number; server: Server }> {
  const server = createServer((sock) => sock.on('error', () => undefined));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as { port: number }).port, server };
}

/** A copy of the env's config with `change` applied, as its own file. */
function variant(env: TestEnv, name: string, change: (doc: Record<string, any>) => void): string {
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8'));
  change(doc);
  const file = env.configFile.replace(/config\.yaml$/, `${name}.yaml`);
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

async function converged(env: TestEnv, where = 'true'): Promise<boolean> {
  const q = (db: string) => sql(db, `select count(*)::int n, coalesce(md5(string_agg(md5(t::text), '' order by id)), '') h from items t where ${where}`);
  const [s, d] = await Promise.all([q(env.sourceDb), q(env.targetDb)]);
  return s.rows[0].n === d.rows[0].n && s.rows[0].h === d.rows[0].h;
}

/** Start the real CLI with the good config, wait until the target equals the source, SIGTERM, exit 0. */
async function convergeWithCli(env: TestEnv, file = env.configFile, where = 'true'): Promise<string> {
  const c = startCli(['start', '-c', file]);
  try {
    await waitFor('the target to converge', async () => {
      if (c.p.exitCode !== null) throw new Error(`syncline exited ${c.p.exitCode}: ${c.out().slice(-1500)}`);
      return converged(env, where);
    }, 90_000, 300);
  } finally {
    if (c.p.exitCode === null) c.p.kill('SIGTERM');
  }
  const r = await c.exit;
  assert.equal(r.code, 0, `drains and exits 0 on SIGTERM: ${r.out.slice(-800)}`);
  return r.out;
}

async function itemsEnv(rows = 50): Promise<TestEnv> {
  const env = await testEnv([{ name: P, tables: [{ source: 'public.items' }] }]);
  await sql(env.sourceDb, DDL);
  await sql(env.targetDb, DDL);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'seed ' || g from generate_series(1, $1::int) g`, [rows]);
  return env;
}

test('a malformed or mistyped config: `syncline start` exits 1 with FILE:LINE:COL, before connecting anything', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-bad-'));
  const lines = (conn: string) => ['version: 1', 'pipelines:', '  users-sync:', '    source:', '      type: postgres', `      connection: ${conn}`, '      slot: s1', '      publication: p1', '    target:', '      type: postgres', '      connection: { database: dst }', '    tables:', '      - source: public.users', ''].join('\n');
  const syntax = join(dir, 'syntax.yaml');
  writeFileSync(syntax, lines('{ database: src, port: 5432'));  // unclosed flow mapping
  const typed = join(dir, 'typed.yaml');
  writeFileSync(typed, lines('{ database: src, port: abc }'));
  const tab = join(dir, 'tab.yaml');
  writeFileSync(tab, lines('{ database: src }').replace('      slot: s1', '\tslot: s1')); // a tab in the indentation
  const [a, b, c] = await Promise.all([syntax, typed, tab].map((f) => runCli(['start', '-c', f], {}, 90_000)));
  for (const r of [a, b, c]) assert.equal(r.code, 1, r.out);
  assert.match(reason(a), re(`syncline: CONFIG_INVALID: invalid config ${syntax}`));
  assert.match(a.out, new RegExp(`${re(syntax).source}:\\d+:\\d+: `), 'the syntax error at its line and column');
  assert.match(b.out, new RegExp(`${re(typed).source}:6:\\d+: pipelines\\.users-sync\\.source\\.connection\\.port: expected integer, got string "abc"`));
  assert.match(c.out, new RegExp(`${re(tab).source}:7:\\d+: `), 'a tab in the indentation at its line');
});

test('unreachable dependencies at start: each is waited for until the start deadline, then exits 1 naming the dependency and host:port; after the fix a restart converges', async (t) => {
  await stackUp();
  const env = await itemsEnv();
  t.after(() => env.cleanup());
  const closed = await closedPort();
  const silent = await silentServer();
  t.after(() => silent.server.close());
  const registry = (port: number) => `http://127.0.0.1:${port}/apis/ccompat/v7`;
  const cases: { name: string; port: number; change: (d: Record<string, any>) => void; expect: RegExp; limitMs: number }[] = [];
  // A dependency that is not ready is waited for (retried) until the start deadline, shortened here
  // (120 s by default): long enough for one attempt of each client to fail first (kafkajs ≈ 25 s,
  // the registry's 30 s deadline), so the reason is the dependency's own last error.
  // A refused connection fails each client's attempt at once, a silent server only at the client's
  // own timeout: `npm test` runs the refused cases (a shorter deadline), `npm run chaos` (soak) both.
  const modes = soak([['closed', closed]] as const, [['closed', closed], ['silent', silent.port]] as const);
  const deadlineS = soak(30, 45);
  for (const [mode, port] of modes) {
    const refused = mode === 'closed';
    const kafkaAt = `Kafka at 127\\.0\\.0\\.1:${port} \\(kafka\\.brokers\\)`;
    cases.push(
      { name: `source-${mode}`, port, change: (d) => (d.pipelines[P].source.connection.port = port), limitMs: 30_000,
        expect: new RegExp(`^syncline: PG_(ECONNREFUSED|CONNECTION): pipeline ${P} capture: cannot connect to PostgreSQL postgres@127\\.0\\.0\\.1:${port}/${env.sourceDb}: ${refused ? 'connect ECONNREFUSED' : 'timeout expired'}`) },
      { name: `target-${mode}`, port, change: (d) => (d.pipelines[P].target.connection.port = port), limitMs: 35_000,
        expect: new RegExp(`^syncline: PG_(ECONNREFUSED|CONNECTION): pipeline ${P} target: cannot connect to PostgreSQL postgres@127\\.0\\.0\\.1:${port}/${env.targetDb}: ${refused ? 'connect ECONNREFUSED' : 'Connection terminated due to connection timeout'}`) },
      // A silent broker: kafkajs may still be retrying its request when the deadline passes.
      { name: `kafka-${mode}`, port, change: (d) => (d.kafka.brokers = [`127.0.0.1:${port}`]), limitMs: 75_000,
        expect: refused ? new RegExp(`^syncline: NET_ECONNREFUSED: ${kafkaAt}`) : new RegExp(`^syncline: (KAFKA_\\w+: ${kafkaAt}: |START_TIMEOUT: start did not complete within ${deadlineS}s \\(startTimeoutMs\\): pipeline ${P} \\w+ still waiting for ${kafkaAt})`) },
      { name: `registry-${mode}`, port, change: (d) => (d.schemaRegistry = { url: registry(port) }), limitMs: 60_000,
        expect: refused ? new RegExp(`^syncline: REGISTRY_UNAVAILABLE: cannot (register|read the latest) schema .* at ${re(registry(port)).source}: .*ECONNREFUSED`) : new RegExp(`^syncline: REGISTRY_TIMEOUT: schema registry at ${re(registry(port)).source} did not answer within 30s`) },
      { name: `redis-${mode}`, port, change: (d) => (d.redis = { url: `redis://127.0.0.1:${port}` }), limitMs: 45_000,
        expect: refused ? new RegExp(`^syncline: NET_ECONNREFUSED: cannot connect to Redis at 127\\.0\\.0\\.1:${port} \\(redis\\.url\\)`) : new RegExp(`^syncline: START_TIMEOUT: start did not complete within ${deadlineS}s \\(startTimeoutMs\\): Redis at 127\\.0\\.0\\.1:${port} \\(redis\\.url\\) did not answer`) },
    );
  }
  // All at once. Ten processes start at once on a small shared machine: the limits (the deadline
  // plus each client's own attempt) get 2× slack (they prove the exit is bounded, not how fast it is).
  // A bound on a hang, not a speed check: ten CLIs start at once (each compiles the TypeScript), which takes long on a loaded machine.
  for (const c of cases) c.limitMs = 3 * (deadlineS * 1000 + c.limitMs);
  // Each case with a slot and publication of its own: capture takes a lock named by the slot, and a
  // case whose source is reachable would otherwise stand by behind another case's capture (standing
  // by is running: its wait was declared over and, once it took the lock over and failed again, its
  // start had a new deadline: the registry case exited ~40 s late and logged its wait twice).
  const own = (c: (typeof cases)[number]) => (d: Record<string, any>) => {
    c.change(d);
    d.pipelines[P].source.slot = d.pipelines[P].source.publication = `${env.slot(P)}_${c.name.replace(/-/g, '_')}`;
  };
  const runs = await Promise.all(cases.map((c) => runCli(['start', '-c', variant(env, c.name, own(c))], { SYNCLINE_START_TIMEOUT_MS: String(deadlineS * 1000) }, c.limitMs)));
  for (const [i, c] of cases.entries()) {
    const r = runs[i]!;
    t.diagnostic(`${c.name.padEnd(16)} exit ${r.code} after ${(r.ms / 1000).toFixed(1)} s: ${reason(r)}`);
  }
  for (const [i, c] of cases.entries()) {
    const r = runs[i]!;
    assert.equal(r.code, 1, `${c.name}: exits 1 (null = hung and was killed after ${c.limitMs} ms): ${r.out.slice(-600)}`);
    assert.match(reason(r), c.expect, c.name);
    if (c.name !== 'redis-silent') assert.match(reason(r), /still (failing at the start deadline|waiting for)/, `${c.name}: says it waited until the deadline`);
    const waitLines = (r.out.match(/dependency\.waiting/g) ?? []).length;
    if (c.name !== 'redis-silent') assert.equal(waitLines, 1, `${c.name}: the wait is logged once: ${r.out.slice(-1500)}`);
  }
  // Nothing was acknowledged anywhere: with the dependencies back, everything arrives.
  await stackUp();
  await sql(env.sourceDb, `update items set v = 'changed', updated_at = clock_timestamp() where id <= 10`);
  await convergeWithCli(env);
});

test('authentication: an unknown user and a role without LOGIN are fatal, naming user@host:port/database', async (t) => {
  await stackUp();
  const env = await itemsEnv();
  const ghost = `ghost_${env.id}`;
  const nologin = `nologin_${env.id}`;
  const pw = `pw_${env.id}`;
  await sql('postgres', `create role ${nologin} nologin`);
  await sql('postgres', `create role ${pw} login password 'right'`);
  t.after(async () => {
    await env.cleanup();
    await sql('postgres', `drop role if exists ${nologin}`);
    await sql('postgres', `drop role if exists ${pw}`);
  });
  const [srcGhost, dstGhost, srcNologin] = await Promise.all([
    runCli(['start', '-c', variant(env, 'src-ghost', (d) => (d.pipelines[P].source.connection.user = ghost))]),
    runCli(['start', '-c', variant(env, 'dst-ghost', (d) => (d.pipelines[P].target.connection.user = ghost))]),
    runCli(['start', '-c', variant(env, 'src-nologin', (d) => (d.pipelines[P].source.connection.user = nologin))]),
  ]);
  for (const r of [srcGhost, dstGhost, srcNologin]) t.diagnostic(reason(r));
  for (const r of [srcGhost, dstGhost, srcNologin]) assert.equal(r.code, 1, r.out.slice(-600));
  assert.match(reason(srcGhost), re(`syncline: PG_28000: pipeline ${P} capture: cannot connect to PostgreSQL ${ghost}@127.0.0.1:5432/${env.sourceDb}: role "${ghost}" does not exist`));
  assert.match(reason(dstGhost), re(`syncline: PG_28000: pipeline ${P} target: cannot connect to PostgreSQL ${ghost}@127.0.0.1:5432/${env.targetDb}: role "${ghost}" does not exist`));
  assert.match(reason(srcNologin), re(`syncline: PG_28000: pipeline ${P} capture: cannot connect to PostgreSQL ${nologin}@127.0.0.1:5432/${env.sourceDb}: role "${nologin}" is not permitted to log in`));

  await convergeWithCli(env);
});

/**
 * pg_hba.conf: a scram-sha-256 rule for one role on 127.0.0.1 ahead of the stack's trust rule (which
 * accepts any password) for the span of `fn`, then the file as it was. Only that role is affected.
 */
async function passwordRequired<T>(role: string, fn: () => Promise<T>): Promise<T> {
  const file = (await sql('postgres', 'show hba_file')).rows[0].hba_file as string;
  const line = `host all ${role} 127.0.0.1/32 scram-sha-256 # syncline test rule, removed after the test\n`;
  writeFileSync(file, line + readFileSync(file, 'utf8'));
  try {
    await sql('postgres', 'select pg_reload_conf()');
    // In force once a wrong password is refused (the postmaster reloads on the signal).
    await waitFor('pg_hba to require a password', async () => {
      const c = new pg.Client({ host: '127.0.0.1', port: 5432, user: role, password: 'not-it', database: 'postgres' });
      try {
        await c.connect();
        await c.end();
        return false;
      } catch (err) {
        return (err as { code?: string }).code === '28P01';
      }
    }, 10_000, 100);
    return await fn();
  } finally {
    writeFileSync(file, readFileSync(file, 'utf8').replace(line, ''));
    await sql('postgres', 'select pg_reload_conf()');
  }
}

test('a wrong password: PostgreSQL (where pg_hba asks for one) and Redis (an ACL user) are fatal at start, naming who and where; the right one converges', async (t) => {
  await stackUp();
  const env = await itemsEnv();
  const role = `pw_${env.id}`;
  const redisUser = `syncline_${env.id}`;
  await sql('postgres', `create role ${role} login password 'right'`);
  await sql(env.targetDb, `grant all on items to ${role}`);
  const redis = new Redis('redis://127.0.0.1:6379');
  await redis.call('ACL', 'SETUSER', redisUser, 'on', '>right', '~*', '&*', '+@all');
  t.after(async () => {
    await redis.call('ACL', 'DELUSER', redisUser).catch(() => undefined);
    redis.disconnect();
    await env.cleanup();
    await sql('postgres', `drop owned by ${role}`).catch(() => undefined);
    await sql(env.targetDb, `drop owned by ${role}`).catch(() => undefined);
    await sql('postgres', `drop role if exists ${role}`);
  });
  await passwordRequired(role, async () => {
    const login = (password: string) => (d: Record<string, any>) => Object.assign(d.pipelines[P].target.connection, { user: role, password });
    const wrong = `bad-${env.id}-pw`;
    const [pgWrong, redisWrong] = await Promise.all([
      runCli(['start', '-c', variant(env, 'pg-wrong-password', login(wrong))]),
      runCli(['start', '-c', variant(env, 'redis-wrong-password', (d) => (d.redis = { url: `redis://${redisUser}:${wrong}@127.0.0.1:6379` }))]),
    ]);
    for (const r of [pgWrong, redisWrong]) t.diagnostic(reason(r));
    assert.equal(pgWrong.code, 1, pgWrong.out.slice(-600));
    assert.match(reason(pgWrong), re(`syncline: PG_28P01: pipeline ${P} target: cannot connect to PostgreSQL ${role}@127.0.0.1:5432/${env.targetDb}: password authentication failed for user "${role}"`));
    assert.ok(!pgWrong.out.includes(wrong), 'the password is not in the output');
    assert.equal(redisWrong.code, 1, redisWrong.out.slice(-600));
    assert.match(reason(redisWrong), /^syncline: REDIS_WRONGPASS: cannot authenticate to Redis at 127\.0\.0\.1:6379 as syncline_\w+ \(redis\.url\): invalid username-password pair/);
    assert.ok(!redisWrong.out.includes(wrong), 'the password (or the URL with it) is not in the output');
    // The right passwords: the target written by that role, version state kept as that Redis user.
    const right = variant(env, 'right-passwords', (d) => {
      login('right')(d);
      d.redis = { url: `redis://${redisUser}:right@127.0.0.1:6379` };
    });
    await convergeWithCli(env, right);
  });
  assert.equal((await sql('postgres', `select count(*)::int n from pg_hba_file_rules where user_name = array['${role}']`)).rows[0].n, 0, 'the test rule is gone');
});

test('permissions: a user that does not own the tables cannot create the publication, one without REPLICATION cannot create the slot: fatal, with what to run', async (t) => {
  const t0 = Date.now();
  await stackUp();
  const env = await itemsEnv();
  t.diagnostic(`stack up and the test's databases: ${Date.now() - t0} ms`);
  const role = `norepl_${env.id}`;
  await sql('postgres', `create role ${role} login`);
  await sql(env.sourceDb, `grant select on items to ${role}; grant create on database ${env.sourceDb} to ${role}`);
  t.after(async () => {
    await env.cleanup();
    await sql('postgres', `drop role if exists ${role}`);
  });
  const file = variant(env, 'norepl', (d) => (d.pipelines[P].source.connection.user = role));
  const slot = env.slot(P);

  const pub = await runCli(['start', '-c', file]);
  t.diagnostic(`publication run: exit ${pub.code} after ${pub.ms} ms: ${reason(pub)}`);
  assert.equal(pub.code, 1);
  assert.match(reason(pub), re(`syncline: PG_42501: cannot create or update publication ${slot} in database ${env.sourceDb} as user ${role} (127.0.0.1:5432): must be owner of table items`));
  assert.match(reason(pub), re(`CREATE PUBLICATION "${slot}" FOR TABLE "public"."items";`));
  assert.match(reason(pub), re(`GRANT CREATE ON DATABASE "${env.sourceDb}" TO "${role}"`));

  // The administrator creates the publication; next: the slot needs REPLICATION.
  await sql(env.sourceDb, `create publication ${slot} for table items`);
  const repl = await runCli(['start', '-c', file]);
  t.diagnostic(`slot run: exit ${repl.code} after ${repl.ms} ms: ${reason(repl)}`);
  assert.equal(repl.code, 1);
  assert.match(reason(repl), re(`syncline: PG_42501: pipeline ${P}: cannot open a replication connection to 127.0.0.1:5432/${env.sourceDb} for slot ${slot}: must be superuser or replication role to start walsender; user ${role} needs the REPLICATION attribute: ALTER ROLE "${role}" REPLICATION;`));
  assert.equal((await sql('postgres', `select count(*)::int n from pg_replication_slots where slot_name = $1`, [slot])).rows[0].n, 0, 'no slot left behind');

  await sql('postgres', `alter role ${role} replication`);
  const t1 = Date.now();
  await convergeWithCli(env, file);
  t.diagnostic(`converging run: ${Date.now() - t1} ms`);
});

test('a replication slot dropped while stopped, then while running: detected, reported with its name, re-snapshotted; unchanged rows not rewritten', async (t) => {
  await stackUp();
  const env = await itemsEnv(300);
  t.after(() => env.cleanup());
  const slot = env.slot(P);
  await convergeWithCli(env);
  const xmins = async () => new Map((await sql(env.targetDb, `select id, xmin::text x from items`)).rows.map((r) => [r.id as number, r.x as string]));
  const before = await xmins();

  // 1. Dropped while syncline is stopped; the source changes meanwhile.
  await sql('postgres', `select pg_drop_replication_slot($1)`, [slot]);
  await sql(env.sourceDb, `update items set v = 'while gone', updated_at = clock_timestamp() where id between 1 and 10`);
  await sql(env.sourceDb, `insert into items (id, v) select g, 'new while gone' from generate_series(1001, 1005) g`);
  await sql(env.sourceDb, `delete from items where id = 300`);
  const c = startCli(['start', '-c', env.configFile]);
  t.after(() => c.p.exitCode === null && c.p.kill('SIGKILL'));
  await waitFor('the target to converge after the re-snapshot', async () => {
    if (c.p.exitCode !== null) throw new Error(`exited ${c.p.exitCode}: ${c.out().slice(-1500)}`);
    return converged(env);
  }, 90_000, 300);
  const warn = c.out().split('\n').find((l) => l.includes('capture.slot.missing'));
  assert.ok(warn, 'a warning says the slot is missing');
  assert.match(warn!, /"level":40/);
  assert.match(warn!, re(`"slot":"${slot}"`));
  assert.match(warn!, /re-snapshotting \(hash delta skips unchanged rows\)/);
  const after = await xmins();
  const unchanged = [...before].filter(([id]) => id > 10 && id < 300);
  const rewritten = unchanged.filter(([id, x]) => after.get(id) !== x);
  t.diagnostic(`re-snapshot after a drop while stopped: ${unchanged.length} unchanged rows, ${rewritten.length} rewritten; ids 1-10 changed: ${[...Array(10).keys()].filter((i) => after.get(i + 1) !== before.get(i + 1)).length}/10`);
  assert.equal(rewritten.length, 0, 'unchanged rows are skipped by hash delta (xmin unchanged)');
  for (let id = 1; id <= 10; id++) assert.notEqual(after.get(id), before.get(id), `row ${id} changed while the slot was gone is written`);
  // The row deleted while the slot was gone: the re-snapshot did not see it, so the sweep deleted it.
  assert.equal((await sql(env.targetDb, `select count(*)::int n from items where id = 300`)).rows[0].n, 0, 'the row deleted while the slot was gone is deleted on the target');
  assert.ok(c.out().includes('snapshot.sweep'), 'the sweep is reported');

  // 2. Dropped while capture runs (its walsender terminated, the slot dropped): fatal SLOT_MISSING naming the slot.
  await waitFor('capture to stream', async () => (await sql('postgres', `select active from pg_replication_slots where slot_name = $1`, [slot])).rows[0]?.active === true);
  const before2 = await xmins();
  await sql('postgres', `select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = $1 and active`, [slot]);
  await waitFor('the slot to be dropped', async () => {
    await sql('postgres', `select pg_drop_replication_slot($1)`, [slot]);
    return true;
  }, 10_000, 20);
  const r = await Promise.race([c.exit, sleep(30_000).then(() => null)]);
  assert.ok(r, 'syncline stops when its slot is dropped under it');
  assert.equal(r.code, 1);
  assert.match(reason(r), re(`syncline: SLOT_MISSING: replication slot ${slot} does not exist (dropped while running); restart to re-snapshot`));
  await sql(env.sourceDb, `update items set v = 'gone again', updated_at = clock_timestamp() where id between 11 and 15`);
  await sql(env.sourceDb, `insert into items (id, v) values (2001, 'new, gone again')`);
  await sql(env.sourceDb, `delete from items where id = 299`);
  const out = await convergeWithCli(env, env.configFile);
  assert.match(out, re(`"slot":"${slot}"`));
  assert.match(out, /capture\.slot\.missing/);
  const after2 = await xmins();
  const rewritten2 = [...before2].filter(([id, x]) => !(id >= 11 && id <= 15) && id !== 299 && after2.get(id) !== undefined && after2.get(id) !== x);
  t.diagnostic(`re-snapshot after a drop while running: ${before2.size - 5} unchanged rows, ${rewritten2.length} rewritten`);
  assert.equal(rewritten2.length, 0, 'unchanged rows are not rewritten');
  assert.ok(await converged(env));
  assert.equal((await sql(env.targetDb, `select count(*)::int n from items where id = 299`)).rows[0].n, 0, 'deleted while the slot was gone the second time: swept too');
});
