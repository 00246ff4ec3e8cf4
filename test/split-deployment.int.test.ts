/**
 * README's "Split deployment on one host", run as written: its command lines start capture,
 * process and sink (through `npm run syncline`) with their instance ids, report directories and
 * metrics ports; the only substitutions are this test's config file, free ports for the README's
 * (other runs share this host) and a temporary directory for `reports/`. The pipeline converges,
 * each process's /metrics answers with its stage's counts, its log lines carry its instance id, its
 * reports go to its own directory, and the README's `kill` (SIGTERM to each pid) stops each with
 * exit 0. A process whose metrics port is taken stops at start naming the port and the flag.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaClient } from '../src/core/kafka.js';
import { rootLogger } from '../src/core/log.js';
import { freePort, ROOT, spawnCli, sql, testEnv, waitFor } from './helpers.js';

/** The first ```bash block of README's "Split deployment on one host" section. */
function readmeExample(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.split(/^## /m).find((s) => s.startsWith('Split deployment on one host\n'));
  assert.ok(section, 'README.md has a "## Split deployment on one host" section');
  const block = /```bash\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(block, 'the section has a bash example');
  return block.trim().split('\n');
}


/** Sum of a counter's samples of one pipeline in a Prometheus text body. */
function counter(body: string, name: string, pipeline: string): number {
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) && l.includes(`pipeline="${pipeline}"`))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

test("README's split deployment: capture, process and sink as three processes on one host converge, each serves /metrics, SIGTERM stops each with exit 0", async (t) => {
  const lines = readmeExample();
  const starts = lines.filter((l) => /\bnpm run syncline -- /.test(l));
  const scrapes = lines.filter((l) => l.startsWith('curl '));
  const kill = lines.find((l) => l.startsWith('kill '));
  assert.deepEqual(starts.map((l) => /npm run syncline -- (\w+)/.exec(l)![1]), ['capture', 'process', 'sink']);
  assert.equal(scrapes.length, 3);
  assert.equal(kill?.replace(/\s*#.*$/, ''), 'kill %1 %2 %3');

  const reports = mkdtempSync(join(tmpdir(), 'syncline-split-'));
  const env = await testEnv([{ name: 'split', tables: [{ source: 'public.items' }], conflict: { strategy: 'source-wins' } }], {
    extra: { reports: { dir: '${SYNCLINE_REPORTS_DIR:-' + reports + '/shared}', everyMs: 1000 } },
  });
  t.after(() => env.cleanup());
  await sql(env.sourceDb, 'create table items (id int primary key, name text)');
  await sql(env.targetDb, 'create table items (id int primary key, name text)');
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(1, 100) g`);

  // The topics exist before the processes start: a stage's first start can still fail on a topic
  // another process is creating at the same moment (issue 18, item 1, fixed apart).
  const kc = new KafkaClient(env.config.kafka, rootLogger.child({ stage: 'test' }));
  await kc.ensureTopics([`${env.prefix}.cdc.public.items`, `${env.prefix}.dlq.split`, `${env.prefix}.apply.split`]);
  await kc.close();

  // The README's lines, with this test's config, free ports and report directory.
  const ports = new Map<string, number>();
  for (const l of lines) for (const m of l.matchAll(/(?:--metrics-port |127\.0\.0\.1:)(\d+)/g)) if (!ports.has(m[1]!)) ports.set(m[1]!, await freePort());
  const local = (l: string) =>
    l
      .replace(/\s*#.*$/, '')
      .replace(/configs\/data-sync-config\.yaml/g, env.configFile)
      .replace(/(--metrics-port |127\.0\.0\.1:)(\d+)/g, (_m, p: string, n: string) => `${p}${ports.get(n)}`)
      .replace(/SYNCLINE_REPORTS_DIR=reports\//g, `SYNCLINE_REPORTS_DIR=${reports}/`);
  const procs: { line: string; child: ChildProcess; out: () => string; exit: Promise<number | null> }[] = [];
  t.after(() => {
    for (const p of procs) {
      try {
        process.kill(-p.child.pid!, 'SIGKILL'); // its process group, only when the test failed
      } catch {
        // gone
      }
    }
  });
  for (const line of starts) {
    const cmd = local(line).replace(/\s*&$/, '');
    // `exec`: the pid is npm's, as `$!` and `kill %1` see it in the README's shell.
    const child = spawn('sh', ['-c', `exec env ${cmd}`], { cwd: ROOT, env: { ...process.env, SYNCLINE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    child.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-200_000)));
    procs.push({ line: cmd, child, out: () => out, exit: new Promise((r) => child.on('close', (c) => r(c))) });
  }

  const count = async () => Number((await sql(env.targetDb, 'select count(*)::int as n from items')).rows[0].n);
  const failedEarly = () => procs.find((p) => p.child.exitCode !== null);
  await waitFor('the snapshot through three processes', async () => {
    const f = failedEarly();
    if (f) throw new Error(`${f.line} exited ${f.child.exitCode}: ${f.out().slice(-2000)}`);
    return (await count()) === 100;
  }, 180000);
  await sql(env.sourceDb, `insert into items select g, 'item ' || g from generate_series(101, 150) g; update items set name = 'changed' where id <= 10`);
  await waitFor('the changes through three processes', async () => (await count()) === 150 && Number((await sql(env.targetDb, `select count(*)::int as n from items where name = 'changed'`)).rows[0].n) === 10, 120000);

  // Each process's /metrics, as the README's curl lines ask it.
  for (const l of scrapes) {
    const [, port, metric] = /127\.0\.0\.1:(\d+)\/metrics \| grep '\^(\w+)'/.exec(local(l))!;
    const body = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    assert.ok(counter(body, metric!, 'split') >= 160, `${metric} on ${port}: ${body.split('\n').filter((x) => x.startsWith(metric!)).join('; ')}`);
  }
  // Instance ids in the log lines, and one report directory each.
  for (const p of procs) {
    const id = /SYNCLINE_INSTANCE_ID=(\S+)/.exec(p.line)![1]!;
    assert.match(p.out(), new RegExp(`"instance":"${id}"`), p.line);
    const dir = /SYNCLINE_REPORTS_DIR=(\S+)/.exec(p.line)![1]!;
    await waitFor(`${dir}/sync-status.json`, async () => existsSync(join(dir, 'sync-status.json')), 30000);
  }
  assert.ok(!existsSync(join(reports, 'shared')), 'no process wrote the shared default directory');

  // `kill %1 %2 %3`: SIGTERM to each pid; each drains and exits 0.
  for (const p of procs) p.child.kill('SIGTERM');
  for (const p of procs) assert.equal(await p.exit, 0, `${p.line}: ${p.out().slice(-2000)}`);
  for (const p of procs) assert.match(p.out(), /"msg":"runtime.stopped"/, p.line);
});

test('a process whose metrics port is taken stops at start, naming the address and --metrics-port', async (t) => {
  const env = await testEnv([{ name: 'busy', tables: [{ source: 'public.items' }] }]);
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as AddressInfo).port;
  t.after(async () => {
    await new Promise((r) => taken.close(r));
    await env.cleanup();
  });
  const child = spawnCli(['capture', '--config', env.configFile, '--metrics-port', String(port)]) as ChildProcess & { stderrTail: () => string };
  const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  assert.equal(code, 1);
  assert.match(child.stderrTail(), new RegExp(`syncline: OBSERVABILITY_LISTEN: cannot serve /metrics, /health, /ready on 127\\.0\\.0\\.1:${port}: the port is in use \\(another syncline process on this host\\? each process needs its own port: start it with --metrics-port PORT`));
});
