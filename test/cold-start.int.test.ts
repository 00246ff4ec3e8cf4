/**
 * npm test: alone (starts a private Kafka and registry from cold).
 * The first run on a brand-new machine converges: `npm run demo`, exactly as the README's quick
 * start says, against a stack that is not running. The shared stack cannot be stopped (everyone's
 * tests use it), so the demo gets a private one from scripts/stack.sh (test/private-stack.ts): an
 * empty run dir on free ports, so Kafka's storage is formatted and the broker, the registry, a Redis
 * and a PostgreSQL cluster are all started from nothing. The PostgreSQL cluster is made by initdb
 * with its defaults (wal_level=replica, as a fresh package install leaves it), so the script's own
 * path that switches it to logical replication and restarts it runs too. Only the jars are warm
 * (the cache the suite's first `stack.sh up` filled; a brand-new machine downloads them first).
 *
 * Before this worked, that first run failed (`cannot create topics …: This server does not host
 * this topic-partition`, NOT CONVERGED) and printed kafkajs error lines a new user reads as failures;
 * here the run must exit 0 with every table converged, and print no warning but the one-per-
 * dependency `dependency.waiting` lines (none expected: stack.sh returns only once each works) and
 * the one `sink.create` line per table the MariaDB sink creates (autoCreate, which the demo's
 * cross-system pipeline shows). The private stack has no MariaDB of its own: the demo's MariaDB
 * pipeline uses the machine's on 127.0.0.1:3306 (SYNCLINE_MARIADB_*, which the stack does not set),
 * in a database of the run's own that the demo drops at its end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { logLines, privateStack, spawnGroup } from './private-stack.js';

const portOpen = (port: number) => new Promise<boolean>((resolve) => {
  const s = connect(port, '127.0.0.1');
  s.once('connect', () => (s.destroy(), resolve(true)));
  s.once('error', () => resolve(false));
});

test('first run on a machine whose stack is not running: `npm run demo` brings it up and converges, exit 0', async (t) => {
  const stack = await privateStack();
  t.after(() => stack.down());
  for (const [service, port] of Object.entries(stack.ports)) assert.equal(await portOpen(port), false, `${service} is not running before the demo (port ${port})`);
  const reports = mkdtempSync(join(tmpdir(), 'syncline-cold-reports-'));

  const demo = spawnGroup('npm', ['run', 'demo'], {
    ...stack.stackEnv, ...stack.configEnv,
    SYNCLINE_METRICS_PORT: '0', SYNCLINE_REPORTS_DIR: reports, SYNCLINE_LOG_LEVEL: 'warn', DEMO_CHANGES: '3000',
  });
  t.after(() => demo.kill());
  const limit = setTimeout(() => demo.kill(), 540_000);
  const code = await demo.exit;
  clearTimeout(limit);
  const out = demo.out();
  t.diagnostic(out.split('\n').filter((l) => /^\[stack\]|converged|workload:/.test(l)).join('\n'));

  writeFileSync(join(reports, 'demo-output.log'), out);
  // The first warnings and errors say what went wrong first; the tail says where the run ended.
  const firstTrouble = logLines(out).filter((l) => l.level >= 40).slice(0, 12).map((l) => JSON.stringify(l).slice(0, 600));
  assert.equal(code, 0, `npm run demo exits 0 (null: killed after 9 min; whole output in ${reports}/demo-output.log)\nfirst warnings and errors:\n${firstTrouble.join('\n')}\nlast lines:\n${out.slice(-3000)}`);
  assert.match(out, /every table converged/);
  assert.match(out, /enabling logical replication \(wal_level=replica/, "the script switched the fresh cluster to logical replication");
  assert.match(out, /Kafka is up and accepts work/);
  const status = JSON.parse(readFileSync(join(reports, 'sync-status.json'), 'utf8')) as { demo: { converged: boolean; topicPrefix: string; tables: { converged: boolean; targetTable: string; differing: number }[] } };
  assert.equal(status.demo.converged, true);
  assert.equal(status.demo.tables.length, 5);
  assert.ok(status.demo.tables.every((x) => x.converged && x.differing === 0), 'every table converged');
  const mariaTables = status.demo.tables.filter((x) => x.targetTable.startsWith('mariadb:')).map((x) => x.targetTable.slice('mariadb:'.length));
  assert.deepEqual(mariaTables, [`syncline_${status.demo.topicPrefix}.inventory`, `syncline_${status.demo.topicPrefix}.warehouses`], 'the inventory tables were compared across PostgreSQL and MariaDB');

  // What a new user reads: no error, no kafkajs request failures, no kafka.unpatched; a dependency
  // not ready yet is said at most once.
  const lines = logLines(out);
  assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), [], 'no error logged');
  assert.doesNotMatch(out, /kafka\.unpatched/);
  const warnings = lines.filter((l) => l.level === 40);
  const created = warnings.filter((l) => String(l.msg).startsWith('sink.create:') && l.sink === 'mariadb').map((l) => String(l.table));
  assert.deepEqual(created.sort(), mariaTables.sort(), 'each MariaDB table created once by autoCreate');
  assert.deepEqual(warnings.filter((l) => !String(l.msg).startsWith('dependency.waiting') && !(String(l.msg).startsWith('sink.create:') && l.sink === 'mariadb')).map((l) => JSON.stringify(l)), [], 'no warning but dependency.waiting and the MariaDB tables created');
  const perDependency = new Map<string, number>();
  for (const w of warnings.filter((l) => String(l.msg).startsWith('dependency.waiting'))) perDependency.set(String(w.awaited), (perDependency.get(String(w.awaited)) ?? 0) + 1);
  // Known wart (stop 31, to fix): on a broker seconds old, Kafka was once said twice (a second outage after the
  // start's hold was released, likely the processor's read of the schema-change log joining its group before the
  // coordinator was ready); every other dependency is said once.
  const waitLines = warnings.filter((l) => String(l.msg).startsWith('dependency.waiting')).map((l) => JSON.stringify(l));
  t.diagnostic(`dependency.waiting lines:\n${waitLines.join('\n')}`);
  for (const [dep, n] of perDependency) assert.ok(n === 1 || (n === 2 && dep.startsWith('Kafka at ')), `${dep} said once (Kafka at most twice): ${n}\n${waitLines.join('\n')}`);
});
