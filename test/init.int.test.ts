/**
 * `syncline init` on the real PostgreSQL, through the CLI: tables with and without keys, odd names,
 * a password in the URL that must not reach the file. The written config passes `syncline config
 * validate`, the fix it prints for a left-out table works (run it, init again: the table is in),
 * and a pipeline started from the written file converges.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseConfig } from '../src/core/config/load.js';
import { Runtime } from '../src/runtime.js';
import { checksum, createDb, deleteTopics, dropDb, dropSlots, spawnCli, sql, uid, waitFor } from './helpers.js';

/** Runs the CLI to its end: exit code and output. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args, env);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

test('init writes a config that validates, holds no password, says how to fix each left-out table, and converges', { timeout: 600_000 }, async (t) => {
  const id = uid();
  const prefix = `t${id}`;
  const src = `syncline_t_${id}_src`;
  const dst = `syncline_t_${id}_dst`;
  const password = `Pw-${id}-s3cr3t`;
  await createDb(src);
  await createDb(dst);
  let runtime: Runtime | undefined;
  t.after(async () => {
    await runtime?.stop().catch(() => undefined);
    await dropSlots(prefix);
    await dropDb(src);
    await dropDb(dst);
    await deleteTopics(prefix).catch(() => undefined);
  });
  await sql(src, `
    create table users (id bigint primary key, email text not null, "Balance" numeric(12,2), updated_at timestamptz);
    create table "Orders" (id int primary key, "orderNo" varchar(20), total numeric);
    create table events (event_id uuid not null unique, note text);
    create table logs (line text, at timestamptz);
    create table spaced (id int primary key, "order no" text);
    create schema "odd schema";
    create table "odd schema"."Odd Table" (id int primary key);
    insert into users select g, 'u' || g || '@example.com', g * 1.5, now() from generate_series(1, 50) g;
    insert into "Orders" select g, 'N-' || g, g * 10 from generate_series(1, 30) g;
    insert into events select gen_random_uuid(), 'e' || g from generate_series(1, 20) g;
  `);
  const dir = mkdtempSync(join(tmpdir(), 'syncline-init-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'syncline.yaml');
  const source = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:5432/${src}`;
  const args = ['init', '--source', source, '--target', `postgres://postgres@127.0.0.1:5432/${dst}`, '--pipeline', `${prefix}-init`, '--out', file];

  const first = await cli(args);
  assert.equal(first.code, 0, first.stderr);
  const text = readFileSync(file, 'utf8');
  assert.ok(!text.includes(password), 'the password of the URL is not in the file');
  assert.ok(!first.stderr.includes(password) && !first.stdout.includes(password), 'nor in what init prints');
  assert.match(text, /^\s+password: \$\{SYNCLINE_SOURCE_PASSWORD\}$/m);
  assert.match(first.stderr, /set SYNCLINE_SOURCE_PASSWORD in the environment/);
  // Keys and column types.
  assert.match(text, /# public\.users: id bigint NOT NULL, email text NOT NULL, Balance numeric\(12,2\),\s*\n\s+#\s+updated_at timestamp with time zone\n\s+- source: public\.users\n\s+key: \[id\]   # primary key/);
  assert.match(text, /- source: public\.Orders\n\s+key: \[id\]/);
  // Left out, each with its exact fix.
  assert.match(text, /# public\.events has no primary key\.\n\s+# Run on the source:\n\s+#   ALTER TABLE "public"\."events" REPLICA IDENTITY FULL;\n/);
  assert.match(text, /# - source: public\.events\n\s+#   key: \[event_id\]   # unique index events_event_id_key/);
  assert.match(text, /#   ALTER TABLE "public"\."logs" REPLICA IDENTITY FULL;/);
  assert.match(text, /#   ALTER TABLE "public"\."spaced" RENAME COLUMN "order no" TO "order_no";/);
  assert.match(text, /"odd schema"\."Odd Table"/);

  // config validate: with the variable set; without it, the variable is named.
  const ok = await cli(['config', 'validate', file], { SYNCLINE_SOURCE_PASSWORD: password });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, new RegExp(`^OK: .*\\(1 pipeline: ${prefix}-init\\)`, 'm'));
  const env = { ...process.env };
  delete env.SYNCLINE_SOURCE_PASSWORD;
  assert.throws(() => parseConfig(text, file, env), /environment variable SYNCLINE_SOURCE_PASSWORD is not set/);

  // The printed fix works: run it, init again, and events is in, keyed as proposed.
  await sql(src, 'ALTER TABLE "public"."events" REPLICA IDENTITY FULL');
  const again = await cli([...args, '--force']);
  assert.equal(again.code, 0, again.stderr);
  const text2 = readFileSync(file, 'utf8');
  const config = parseConfig(text2, file, { ...process.env, SYNCLINE_SOURCE_PASSWORD: password, SYNCLINE_TOPIC_PREFIX: prefix });
  const pipeline = config.pipelines[`${prefix}-init`]!;
  const tables = Object.fromEntries(pipeline.tables.map((x) => [x.source, x.key]));
  assert.deepEqual(tables['public.events'], ['event_id']);
  assert.deepEqual(tables['public.users'], ['id']);
  assert.deepEqual(tables['public.Orders'], ['id']);
  assert.equal(tables['public.logs'], undefined);
  assert.equal(tables['public.spaced'], undefined);
  // An existing --out is kept without --force.
  const kept = await cli(args);
  assert.equal(kept.code, 1);
  assert.match(kept.stderr, /exists: choose another --out, or --force/);

  // A pipeline started from the written file converges (target tables as the source's).
  await sql(dst, `
    create table users (id bigint primary key, email text not null, "Balance" numeric(12,2), updated_at timestamptz);
    create table "Orders" (id int primary key, "orderNo" varchar(20), total numeric);
    create table events (event_id uuid primary key, note text);
  `);
  config.pipelines = { [`${prefix}-init`]: pipeline };
  runtime = new Runtime(config, new Set(['capture', 'process', 'sink']));
  const { done } = await runtime.start();
  done.catch(() => undefined);
  await sql(src, `update users set email = 'changed@example.com' where id = 7; delete from "Orders" where id = 3; insert into events values (gen_random_uuid(), 'late')`);
  for (const [table, order] of [['users', 'id'], ['"Orders"', 'id'], ['events', 'event_id']] as const) {
    await waitFor(`${table} converged`, async () => {
      const [a, b] = await Promise.all([checksum(src, table, order), checksum(dst, table, order)]);
      return a.count > 0 && a.count === b.count && a.md5 === b.md5;
    }, 180_000, 500);
  }
});
