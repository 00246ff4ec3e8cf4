/**
 * Topic replay (`syncline replay`, src/replay/replay.ts) on the real stack, through the real CLI:
 *  1. a replay from the beginning restores a truncated target table exactly (read = every message
 *     of the change topics, applied = the live keys the target lost, "written again");
 *  2. a second replay applies nothing and rewrites no row (xmin unchanged);
 *  3. --dry-run says what it would apply and writes nothing (target, Redis, dead-letter topic);
 *  4. the live consumer group's committed offsets are never touched, and no replay group is left;
 *  5. --from <ISO time> with --table reads only that table's changes after that time; a bad --from
 *     exits 1 naming --from.
 * The tests share one pipeline and run in order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createHash } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { Redis } from 'ioredis';
import { checksum, sleep, spawnCli, sql, startRuntime, testEnv, waitFor, type TestEnv } from './helpers.js';
import { groups, topics } from '../src/core/kafka.js';

const PIPELINE = 'replay-sync';
const ITEMS_DDL = `create table items (id int primary key, name text not null, qty int not null, updated_at timestamptz not null default clock_timestamp())`;
const NOTES_DDL = `create table notes (id int primary key, body text not null)`;

interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

async function runCli(args: string[]): Promise<CliResult> {
  const p: ChildProcess = spawnCli(args);
  let stdout = '';
  let stderr = '';
  p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => p.kill('SIGKILL'), 90_000);
  try {
    const code = p.exitCode !== null ? p.exitCode : ((await once(p, 'exit'))[0] as number | null);
    // Let the pipes drain.
    if (p.stdout && !p.stdout.readableEnded) await once(p.stdout, 'end').catch(() => undefined);
    return { code, stdout, stderr };
  } finally {
    clearTimeout(timer);
  }
}

/** The counts of the summary `syncline replay` prints (src/cli/replay.ts summaryText). */
function parseSummary(out: string): { read: number; applied: number; repaired: number; unchanged: number; stale: number; control: number; deadLettered: number; dryRun: boolean } {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    assert.ok(m, `summary line ${re} in:\n${out}`);
    return Number(m[1]!.replace(/,/g, ''));
  };
  const repaired = /\(([\d,]+) the target had lost, written again\)/.exec(out);
  return {
    read: num(/^ {2}read\s+([\d,]+)$/m),
    applied: num(/^ {2}applied(?: \(would be\))?\s+([\d,]+)/m),
    repaired: repaired ? Number(repaired[1]!.replace(/,/g, '')) : 0,
    unchanged: num(/^ {2}skipped, unchanged\s+([\d,]+)/m),
    stale: num(/^ {2}skipped, already newer\s+([\d,]+)/m),
    deadLettered: num(/^ {2}dead-lettered\s+([\d,]+)/m),
    // End-of-snapshot markers (one per partition of each table's topic): read, not changes.
    control: Number(/^ {2}snapshot markers\s+([\d,]+)/m.exec(out)?.[1]?.replace(/,/g, '') ?? 0),
    dryRun: /dry run: nothing was written/.test(out),
  };
}

describe('syncline replay on the real stack', { timeout: 240_000 }, () => {
  let env: TestEnv;
  let kafka: Kafka;
  let admin: Admin;
  let redis: Redis;
  let itemsTopic: string;
  let notesTopic: string;
  let dlqTopic: string;
  /** The live processor group's committed offsets right after the runtime stopped. */
  let liveOffsets: string;
  /** The notes topic's high watermarks between the two halves of the changes, and that time. */
  let notesHighAtT: number;
  let T: string;
  let notesChangedAfterT: number[];

  const replayArgs = (...extra: string[]) => ['replay', '--pipeline', PIPELINE, '-c', env.configFile, ...extra];
  const sumHigh = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high), 0);
  const topicMessages = async (topic: string) => {
    if (!(await admin.listTopics()).includes(topic)) return 0;
    return (await admin.fetchTopicOffsets(topic)).reduce((n, o) => n + Number(o.high) - Number(o.low), 0);
  };
  const groupOffsets = async () => {
    const r = await admin.fetchOffsets({ groupId: groups.processor(env.prefix, PIPELINE), topics: [itemsTopic, notesTopic] });
    return JSON.stringify(r.map((t) => ({ topic: t.topic, partitions: [...t.partitions].sort((a, b) => a.partition - b.partition).map((p) => [p.partition, p.offset]) })).sort((a, b) => a.topic.localeCompare(b.topic)));
  };
  /** Digest of every Redis key (and value) of this test's deployment. */
  const redisDigest = async () => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${env.prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    keys.sort();
    const h = createHash('sha1');
    for (const k of keys) h.update(k).update('\0').update((await redis.dump(k)) ?? Buffer.alloc(0)).update('\0');
    return { keys: keys.length, digest: h.digest('hex') };
  };
  const converged = async () => {
    for (const [t, k] of [['items', 'id'], ['notes', 'id']] as const) {
      const [s, d] = await Promise.all([checksum(env.sourceDb, t, k), checksum(env.targetDb, t, k)]);
      if (s.md5 !== d.md5 || s.count !== d.count) return false;
    }
    return true;
  };
  /** Offsets of the live group unchanged, and no replay group left behind. */
  const assertLiveGroupUntouched = async () => {
    assert.equal(await groupOffsets(), liveOffsets, 'the live consumer group offsets are unchanged');
    const left = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${env.prefix}.${PIPELINE}.replay.`)); // other files replay on this broker too
    assert.deepEqual(left, [], 'no replay consumer group is left behind');
  };

  before(async () => {
    // notes has no updated_at for latest-timestamp (the default) to compare: the source wins there.
    env = await testEnv([{ name: PIPELINE, tables: [{ source: 'public.items' }, { source: 'public.notes', conflict: { strategy: 'source-wins' } }] }]);
    itemsTopic = topics.cdc(env.prefix, 'public', 'items');
    notesTopic = topics.cdc(env.prefix, 'public', 'notes');
    dlqTopic = topics.dlq(env.prefix, PIPELINE);
    kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
    redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
    await redis.connect();

    for (const db of [env.sourceDb, env.targetDb]) {
      await sql(db, ITEMS_DDL);
      await sql(db, NOTES_DDL);
    }
    await sql(env.sourceDb, `insert into items (id, name, qty) select g, 'item ' || g, g % 17 from generate_series(1, 300) g`);
    await sql(env.sourceDb, `insert into notes (id, body) select g, 'note ' || g from generate_series(1, 60) g`);
    const { rt } = await startRuntime(env);
    await waitFor('the snapshot to be applied', async () => (await checksum(env.targetDb, 'items', 'id')).count === 300 && (await checksum(env.targetDb, 'notes', 'id')).count === 60, 60_000, 250);

    // First half of the changes.
    for (let i = 0; i < 4; i++) {
      await sql(env.sourceDb, `update items set qty = qty + 1, updated_at = clock_timestamp() where id % 4 = $1::int`, [i]);
      await sql(env.sourceDb, `update notes set body = body || '.' where id % 4 = $1::int`, [i]);
    }
    await sql(env.sourceDb, `delete from items where id % 10 = 7`);
    await sql(env.sourceDb, `insert into items (id, name, qty) select g, 'late ' || g, 1 from generate_series(301, 340) g`);
    await waitFor('the first half to converge', converged, 120_000, 500);

    // A time between the halves: every change before it is in Kafka (converged), every one after is produced later.
    notesHighAtT = await sumHigh(notesTopic);
    await sleep(1200);
    T = new Date().toISOString();
    await sleep(1200);

    // Second half.
    await sql(env.sourceDb, `update items set name = name || '!', updated_at = clock_timestamp() where id % 3 = 0`);
    await sql(env.sourceDb, `delete from items where id % 25 = 1`);
    await sql(env.sourceDb, `update notes set body = upper(body) where id % 2 = 0`);
    await sql(env.sourceDb, `delete from notes where id % 5 = 0`);
    await sql(env.sourceDb, `insert into notes (id, body) select g, 'new ' || g from generate_series(61, 70) g`);
    notesChangedAfterT = (await sql(env.sourceDb, `select id from notes where id % 2 = 0 or id > 60 order by id`)).rows.map((r) => r.id as number);
    await waitFor('source and target to converge', converged, 120_000, 500);
    await rt.stop();
    liveOffsets = await groupOffsets();
    assert.notEqual(liveOffsets, '[]');
  });

  after(async () => {
    await admin?.disconnect().catch(() => undefined);
    redis?.disconnect();
    await env?.cleanup();
  });

  it('a replay from the beginning restores a truncated target table exactly', async () => {
    const source = await checksum(env.sourceDb, 'items', 'id');
    const liveItems = source.count;
    await sql(env.targetDb, `truncate items`);
    assert.equal((await checksum(env.targetDb, 'items', 'id')).count, 0);

    const r = await runCli(replayArgs('--from', 'beginning'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    const s = parseSummary(r.stdout);
    const messages = (await topicMessages(itemsTopic)) + (await topicMessages(notesTopic));
    console.log(`replay 1: ${JSON.stringify(s)} messages=${messages} liveItems=${liveItems}`);
    assert.equal(s.read, messages, 'read every message of the change topics');
    assert.ok(s.applied > 0);
    assert.equal(s.applied, liveItems, 'applied = the live keys the target lost');
    assert.equal(s.repaired, liveItems, 'reported as written again');
    assert.match(r.stdout, /written again/);
    assert.equal(s.deadLettered, 0);
    assert.equal(s.read, s.applied + s.unchanged + s.stale + s.control, 'every message is accounted for');

    const target = await checksum(env.targetDb, 'items', 'id');
    assert.deepEqual(target, source, 'the target table equals the source again');
    assert.ok(await converged(), 'both tables equal the source');
    await assertLiveGroupUntouched();
  });

  it('a second replay applies nothing and rewrites no row', async () => {
    const before = await checksum(env.targetDb, 'items', 'id');
    const xmin = async () => (await sql(env.targetDb, `select id, xmin::text from items where id in (1, 2, 3, 150, 300, 340) order by id`)).rows;
    const xminBefore = await xmin();
    const redisBefore = await redisDigest();

    const r = await runCli(replayArgs('--from', 'beginning'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    const s = parseSummary(r.stdout);
    console.log(`replay 2: ${JSON.stringify(s)}`);
    assert.equal(s.applied, 0, 'nothing applied');
    assert.equal(s.repaired, 0);
    assert.equal(s.read, s.unchanged + s.stale + s.control, 'everything skipped');
    assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), before, 'target unchanged');
    assert.deepEqual(await xmin(), xminBefore, 'no row was rewritten');
    assert.deepEqual(await redisDigest(), redisBefore, 'version state unchanged');
    await assertLiveGroupUntouched();
  });

  it('--dry-run says what it would apply and writes nothing', async () => {
    const del = await sql(env.targetDb, `delete from items where id in (select id from items order by id limit 25)`);
    const missing = del.rowCount ?? 0;
    assert.equal(missing, 25);
    const damaged = await checksum(env.targetDb, 'items', 'id');
    const redisBefore = await redisDigest();
    const dlqBefore = await topicMessages(dlqTopic);

    const r = await runCli(replayArgs('--from', 'beginning', '--dry-run'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    const s = parseSummary(r.stdout);
    console.log(`dry run: ${JSON.stringify(s)} dlq=${dlqBefore}`);
    assert.ok(s.dryRun, 'the summary says it was a dry run');
    assert.equal(s.applied, missing, 'would apply the missing rows');
    assert.equal(s.repaired, missing);
    assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), damaged, 'the target is as damaged as before');
    assert.deepEqual(await redisDigest(), redisBefore, 'Redis untouched');
    assert.equal(await topicMessages(dlqTopic), dlqBefore, 'dead-letter topic untouched');
    await assertLiveGroupUntouched();

    // The real replay repairs it.
    const fix = await runCli(replayArgs('--from', 'beginning'));
    assert.equal(fix.code, 0, `replay exit code; stderr:\n${fix.stderr}`);
    assert.equal(parseSummary(fix.stdout).applied, missing);
    assert.ok(await converged(), 'repaired');
  });

  it('leaves the live consumer group offsets alone and no replay group behind', async () => {
    const before = await groupOffsets();
    assert.equal(before, liveOffsets);
    const r = await runCli(replayArgs('--from', '0'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    assert.equal(parseSummary(r.stdout).applied, 0);
    await assertLiveGroupUntouched();
  });

  it('--from <ISO time> with --table reads only that table after that time; a bad --from exits 1', async () => {
    // Damage both tables: notes rows changed after T (restored by the replay), and one item (left alone: other table).
    const ids = notesChangedAfterT.slice(0, 10);
    await sql(env.targetDb, `delete from notes where id = any($1::int[])`, [ids]);
    await sql(env.targetDb, `delete from items where id = 2`);
    const itemsDamaged = await checksum(env.targetDb, 'items', 'id');
    const expectedRead = (await sumHigh(notesTopic)) - notesHighAtT;
    assert.ok(expectedRead > 0);

    const r = await runCli(replayArgs('--from', T, '--table', 'notes'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    const s = parseSummary(r.stdout);
    console.log(`replay from ${T} --table notes: ${JSON.stringify(s)} expected read=${expectedRead} total notes=${await topicMessages(notesTopic)}`);
    assert.equal(s.read, expectedRead, 'read = the notes changes after T');
    assert.equal(s.applied, ids.length, 'the deleted notes rows written again');
    assert.deepEqual(await checksum(env.targetDb, 'notes', 'id'), await checksum(env.sourceDb, 'notes', 'id'), 'notes restored');
    assert.deepEqual(await checksum(env.targetDb, 'items', 'id'), itemsDamaged, 'items not touched (--table notes)');
    await assertLiveGroupUntouched();

    const bad = await runCli(replayArgs('--from', 'yesterday'));
    assert.equal(bad.code, 1, `bad --from exit code; stdout:\n${bad.stdout}`);
    assert.match(bad.stderr, /--from/);
    assert.match(bad.stderr, /yesterday/);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('syncline replay over a source TRUNCATE', { timeout: 180_000 }, () => {
  let env: TestEnv;
  let admin: Admin;
  const P = 'trunc-sync';
  const DDL = `create table events (id int primary key, kind text not null)`;
  const args = (...extra: string[]) => ['replay', '--pipeline', P, '-c', env.configFile, ...extra];
  const same = async () => {
    const [s, d] = await Promise.all([checksum(env.sourceDb, 'events', 'id'), checksum(env.targetDb, 'events', 'id')]);
    return s.md5 === d.md5 && s.count === d.count;
  };
  let afterTruncate: string;

  before(async () => {
    env = await testEnv([{ name: P, tables: [{ source: 'public.events' }], conflict: { strategy: 'source-wins' } }]); // no updated_at to compare
    const kafka = new Kafka({ brokers: ['127.0.0.1:9092'], logLevel: logLevel.NOTHING });
    admin = kafka.admin();
    await admin.connect();
    await sql(env.sourceDb, DDL);
    await sql(env.targetDb, DDL);
    await sql(env.sourceDb, `insert into events select g, 'seed' from generate_series(1, 50) g`);
    const { rt } = await startRuntime(env);
    await waitFor('the snapshot to be applied', async () => (await checksum(env.targetDb, 'events', 'id')).count === 50, 60_000, 250);
    await sql(env.sourceDb, `update events set kind = 'changed' where id % 2 = 0`);
    await sql(env.sourceDb, `truncate events`);
    await sql(env.sourceDb, `insert into events select g, 'after' from generate_series(100, 139) g`);
    await waitFor('the truncate and the rows after it to converge', same, 60_000, 250);
    await sleep(1200);
    afterTruncate = new Date().toISOString();
    await sleep(1200);
    await sql(env.sourceDb, `insert into events select g, 'later' from generate_series(200, 219) g`);
    await sql(env.sourceDb, `update events set kind = 'later' where id between 100 and 109`);
    await waitFor('source and target to converge', same, 60_000, 250);
    await rt.stop();
  });

  after(async () => {
    await admin?.disconnect().catch(() => undefined);
    await env?.cleanup();
  });

  it('a replay from the beginning does not truncate the target again (nothing applied, nothing rewritten)', async () => {
    const before = await checksum(env.targetDb, 'events', 'id');
    const xmin = async () => (await sql(env.targetDb, `select id, xmin::text from events order by id`)).rows;
    const xminBefore = await xmin();
    const r = await runCli(args('--from', 'beginning'));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    const s = parseSummary(r.stdout);
    console.log(`replay over truncate: ${JSON.stringify(s)}`);
    assert.equal(s.applied, 0, 'nothing applied (the truncate is already applied)');
    assert.deepEqual(await checksum(env.targetDb, 'events', 'id'), before);
    assert.deepEqual(await xmin(), xminBefore, 'no row was rewritten');
  });

  it('a replay up to a time after the truncate keeps the rows changed later', async () => {
    const r = await runCli(args('--from', 'beginning', '--to', afterTruncate));
    assert.equal(r.code, 0, `replay exit code; stderr:\n${r.stderr}`);
    console.log(`replay --to ${afterTruncate}: ${JSON.stringify(parseSummary(r.stdout))}`);
    assert.ok(await same(), 'the target still equals the source');
  });
});
