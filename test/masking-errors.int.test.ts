/**
 * Masking of target error texts on the real stack, run by the real CLI (`syncline start`) so its
 * log lines are the real ones: a row whose sensitive column (tables[].mask: [email]) clashes with a
 * unique index on the target is refused by PostgreSQL ("Key (email)=(…) already exists") and by
 * MariaDB ("Duplicate entry '…' for key 'email'"). The captured logs, the dead letters' error
 * headers, the report files (the newest dead letter in sync-status.json and sync-report.md) and the alert text (`{{ $lastError }}` sent to a webhook) carry the
 * masked form, never the value. A third pipeline writes to an HTTP target that refuses the row twice
 * (503) with a plain-text body echoing the email: the retry log lines hold it masked too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import mysql from 'mysql2/promise';
import { readTopic, spawnCli, sql, testEnv, waitFor } from './helpers.js';
import { topics } from '../src/core/kafka.js';

const MARIA = { host: '127.0.0.1', port: 3306, user: 'root' };
const DUP = 'dup.alice.k3@example.com';

test('a unique violation on a masked column: logs, dead-letter headers, reports and alert texts hold the masked form', async (t) => {
  const bodies: string[] = [];
  const hook = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      bodies.push(data);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => hook.close(() => r())));
  // An HTTP target that refuses the clashing row twice with 503 and a plain-text body echoing its
  // email (no shape the policy recognises: only the record's own values can mask it), then takes it.
  const echoed: string[] = [];
  const stored = new Map<string, string>();
  const target = http.createServer((req, res) => {
    let data = '';
    req.on('data', (c: Buffer) => (data += c.toString()));
    req.on('end', () => {
      if (data.includes(DUP) && echoed.length < 2) {
        echoed.push(data);
        res.writeHead(503, { 'content-type': 'text/plain' }).end(`address ${DUP} is being re-indexed, try again later`);
        return;
      }
      stored.set(req.url ?? '', data);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => target.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => target.close(() => r())));
  const dir = mkdtempSync(join(tmpdir(), 'syncline-mask-'));
  const env = await testEnv(
    [
      { name: 'mask-pg', tables: [{ source: 'public.users', mask: ['email'] }], conflict: { strategy: 'source-wins' } },
      { name: 'mask-maria', follows: 'mask-pg', tables: [{ source: 'public.users', mask: ['email'] }], conflict: { strategy: 'source-wins' } },
      { name: 'mask-http', follows: 'mask-pg', tables: [{ source: 'public.users', mask: ['email'] }], conflict: { strategy: 'source-wins' } },
    ],
    {
      extra: {
        observability: { host: '127.0.0.1', port: 0, checkTimeoutMs: 2000 },
        reports: { dir, everyMs: 300 },
        alerts: {
          evaluateEveryMs: 250,
          groupWindowMs: 500,
          channels: { hook: { type: 'webhook', url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` } },
          rules: [{ name: 'DeadLetters', expr: 'sum by (pipeline) (increase(syncline_dead_letters_total[10s])) > 0', severity: 'warning', summary: '{{ $labels.pipeline }}: {{ $lastError }}' }],
        },
      },
    },
  );
  const mdb = `syncline_t_${env.id}_m`;
  const maria = await mysql.createConnection(MARIA);
  t.after(async () => {
    await env.cleanup();
    await maria.query(`DROP DATABASE IF EXISTS ${mdb}`);
    await maria.end();
  });
  // The second pipeline writes to MariaDB.
  const doc = JSON.parse(readFileSync(env.configFile, 'utf8')) as { pipelines: Record<string, { target: unknown; tables: { target?: string }[] }> };
  doc.pipelines['mask-maria']!.target = { type: 'mariadb', connection: { ...MARIA, database: mdb }, poolSize: 2 };
  doc.pipelines['mask-maria']!.tables[0]!.target = `${mdb}.users`;
  // The third to the HTTP target above.
  doc.pipelines['mask-http']!.target = { type: 'http', url: `http://127.0.0.1:${(target.address() as AddressInfo).port}/{table}/{key.id}`, timeoutMs: 5000 };
  writeFileSync(env.configFile, JSON.stringify(doc, null, 2));

  await sql(env.sourceDb, `create table users (id int primary key, email text not null, name text)`);
  await sql(env.targetDb, `create table users (id int primary key, email text not null unique, name text)`);
  await sql(env.targetDb, `insert into users values (100, $1, 'there first')`, [DUP]);
  await maria.query(`CREATE DATABASE ${mdb}`);
  await maria.query(`CREATE TABLE ${mdb}.users (id INT PRIMARY KEY, email VARCHAR(200) NOT NULL, name TEXT, UNIQUE KEY email (email))`);
  await maria.query(`INSERT INTO ${mdb}.users VALUES (100, ?, 'there first')`, [DUP]);
  await sql(env.sourceDb, `insert into users values (1, 'ok.k3@example.com', 'fine')`);

  const logs: string[] = [];
  const p: ChildProcess = spawnCli(['start', '--config', env.configFile], { SYNCLINE_LOG_LEVEL: 'info' });
  p.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
  p.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
  t.after(async () => {
    if (p.exitCode !== null) return;
    const done = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([done, new Promise((r) => setTimeout(r, 15000))]);
    if (p.exitCode === null) p.kill('SIGKILL');
  });
  await waitFor('the snapshot at both targets', async () => (await sql(env.targetDb, `select 1 from users where id = 1`)).rowCount === 1 && ((await maria.query(`SELECT id FROM ${mdb}.users WHERE id = 1`))[0] as unknown[]).length === 1, 90_000, 500);
  await sql(env.sourceDb, `insert into users values (2, $1, 'clash')`, [DUP]);

  const headers = async (pipeline: string) => waitFor(`the dead letter of ${pipeline}`, async () => {
    const l = (await readTopic(topics.dlq(env.prefix, pipeline)).catch(() => [])).filter((m) => m.headers['syncline.dlq.kind'] === 'failed');
    return l.length > 0 ? l[0]!.headers : null;
  }, 60_000, 500);
  const pg = await headers('mask-pg');
  assert.equal(pg['syncline.error.code'], 'PG_23505');
  assert.match(pg['syncline.error.message']!, /Key \(email\)=\(\*\*\*\) already exists/);
  const my = await headers('mask-maria');
  assert.match(my['syncline.error.message']!, /Duplicate entry '\*\*\*' for key 'email'/);

  // Reports: the last error of each pipeline (its newest dead letter), masked.
  const status = await waitFor('sync-status.json with both last errors', async () => {
    if (!existsSync(join(dir, 'sync-status.json'))) return null;
    const s = JSON.parse(readFileSync(join(dir, 'sync-status.json'), 'utf8')) as { pipelines: { name: string; lastDeadLetter: { error: string } | null }[] };
    return s.pipelines.filter((x) => x.name !== 'mask-http').every((x) => x.lastDeadLetter !== null) ? s : null;
  }, 30_000, 300);
  const lastOf = (n: string) => status.pipelines.find((x) => x.name === n)!.lastDeadLetter!.error;
  assert.match(lastOf('mask-pg'), /Key \(email\)=\(\*\*\*\) already exists/);
  assert.match(lastOf('mask-maria'), /Duplicate entry '\*\*\*'/);
  // sync-report.md is written apart from sync-status.json: wait for the one that has both errors too.
  const md = await waitFor('sync-report.md with both last errors', async () => {
    const text = existsSync(join(dir, 'sync-report.md')) ? readFileSync(join(dir, 'sync-report.md'), 'utf8') : '';
    return text.includes('MARIADB_1062') && text.includes('PG_23505') ? text : null;
  }, 30_000, 300);
  assert.match(md, /dead letter \(sink\): MARIADB_1062: .*Duplicate entry '\*\*\*' for key 'email'/);
  assert.match(md, /dead letter \(sink\): PG_23505: /); // the cell is cut at 200 characters, after masking

  // The alert text quotes the last error, masked.
  const alertText = await waitFor('both alerts notified', async () => {
    const all = bodies.join('\n');
    return all.includes('mask-pg: PG_23505') && all.includes('mask-maria:') ? all : null;
  }, 30_000, 300);
  assert.match(alertText, /Key \(email\)=\(\*\*\*\) already exists/);
  assert.match(alertText, /Duplicate entry '\*\*\*'/);

  // The HTTP target took the row on the third attempt; both refusals were logged as sink.retry, masked.
  await waitFor('the HTTP target took row 2', async () => [...stored.values()].some((b) => b.includes(DUP)), 30_000, 200);
  assert.equal(echoed.length, 2);
  const logText = logs.join('');
  assert.match(logText, /Key \(email\)=\(\*\*\*\)/, 'the refusal is logged (masked)');
  const retries = logText.split('\n').filter((l) => l.includes('"sink.retry"') && l.includes('"mask-http"'));
  assert.equal(retries.length, 2, `two sink.retry lines of mask-http in:\n${logText.slice(-3000)}`);
  for (const l of retries) assert.match(l, /HTTP 503[^"]*: address \*\*\* is being re-indexed/);
  for (const [where, hay] of [['logs', logText], ['PG dead letter headers', JSON.stringify(pg)], ['MariaDB dead letter headers', JSON.stringify(my)], ['sync-status.json', JSON.stringify(status)], ['sync-report.md', md], ['alert texts', alertText]] as const) {
    assert.ok(!hay.includes(DUP), `${DUP} found in ${where}`);
  }
});
