/**
 * The Grafana dashboards against a real Prometheus: Prometheus (Debian's package, our own process)
 * scrapes a Runtime every second while a scripted workload makes every panel's series exist
 * (applied rows, no-op updates, rows the target rejects, a conflict, a validation failure, a
 * verification); then
 * every panel query of every dashboard in grafana/dashboards, as written in the JSON (with
 * $pipeline, $__rate_interval and $__range substituted the way Grafana would), must return a
 * non-empty result with at least one number in it, and the $pipeline variable must list the pipeline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sleep, sql, startRuntime, testEnv, waitFor } from './helpers.js';
import { startPrometheus, type RunningPrometheus } from './prometheus.js';

interface Target { expr?: string; refId?: string; datasource?: { type?: string; uid?: string } }
interface Panel { id: number; title: string; type: string; datasource?: { uid?: string }; targets?: Target[]; panels?: Panel[] }
interface Dashboard { uid: string; title: string; panels: Panel[]; templating?: { list: { name: string; query: string | { query: string }; datasource?: { uid?: string } }[] } }

const DIR = join(ROOT, 'grafana/dashboards');

function dashboards(): { file: string; d: Dashboard }[] {
  return readdirSync(DIR).filter((f) => f.endsWith('.json')).map((file) => ({ file, d: JSON.parse(readFileSync(join(DIR, file), 'utf8')) as Dashboard }));
}

function allPanels(panels: Panel[]): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** The datasource uid provisioned for Grafana (grafana/provisioning/datasources). */
function datasourceUid(): string {
  const text = readFileSync(join(ROOT, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8');
  const m = /^\s*uid:\s*(\S+)/m.exec(text);
  assert.ok(m, 'the provisioned datasource has a fixed uid');
  return m[1]!;
}

test('dashboards are well formed: every panel queries the provisioned Prometheus datasource', () => {
  const uid = datasourceUid();
  const list = dashboards();
  assert.ok(list.length >= 1, 'at least one dashboard');
  for (const { file, d } of list) {
    assert.ok(d.uid && d.title, `${file}: uid and title`);
    const panels = allPanels(d.panels).filter((p) => p.type !== 'row');
    assert.ok(panels.length >= 10, `${file}: panels`);
    const ids = new Set<number>();
    for (const p of panels) {
      assert.ok(!ids.has(p.id), `${file}: panel id ${p.id} twice`);
      ids.add(p.id);
      assert.equal(p.datasource?.uid, uid, `${file}: ${p.title}: datasource`);
      assert.ok((p.targets ?? []).length > 0, `${file}: ${p.title}: no query`);
      for (const t of p.targets!) {
        assert.ok(t.expr && t.expr.includes('syncline_'), `${file}: ${p.title}: ${t.refId} queries syncline_*`);
        assert.equal(t.datasource?.uid, uid, `${file}: ${p.title}: ${t.refId} datasource`);
      }
    }
  }
  const titles = dashboards().flatMap(({ d }) => allPanels(d.panels).map((p) => p.title.toLowerCase())).join('\n');
  for (const topic of ['changes read', 'applied', 'latency', 'consumer lag', 'slot lag', 'retained wal', 'errors', 'dead letters', 'conflicts', 'validation', 'stages running', 'dependencies']) {
    assert.ok(titles.includes(topic), `a panel about ${topic}`);
  }
});

test('every dashboard query returns data from a real Prometheus scraping a running syncline', async (t) => {
  const P = 'dash-sync';
  const env = await testEnv([{
    name: P,
    tables: [{ source: 'public.items', validate: { fields: { note: { maxLength: 30 } } } }],
    conflict: { strategy: 'latest-timestamp', field: 'updated_at' },
  }], { extra: { observability: { host: '127.0.0.1', port: 0, checkTimeoutMs: 2000 } } });
  let prom: RunningPrometheus | undefined;
  t.after(async () => {
    await prom?.stop();
    await env.cleanup();
  });
  await sql(env.sourceDb, `create table items (id int primary key, qty int not null, note text, updated_at timestamptz not null)`);
  await sql(env.targetDb, `create table items (id int primary key, qty int not null check (qty >= 0), note text, updated_at timestamptz not null)`);
  const { rt } = await startRuntime(env);
  const h = rt.pipelines[0]!;
  assert.ok(rt.httpPort);
  prom = await startPrometheus([`127.0.0.1:${rt.httpPort}`]);
  const p = prom;
  await waitFor('prometheus scrapes syncline', async () => {
    const up = await p.query('up{job="syncline"}');
    return up.length === 1 && up[0]!.value[1] === '1' && (await p.query('syncline_consumer_lag_messages')).length > 0;
  }, 60_000, 500);

  // The workload: applied rows over a few seconds, no-op updates, rows the target rejects, a
  // conflict, a row the validation rules refuse.
  for (let i = 0; i < 5; i++) {
    await sql(env.sourceDb, `insert into items select $1::int * 100 + g, g, 'n' || g, '2026-01-01T00:00:00Z' from generate_series(1, 10) g`, [i]);
    await sleep(500);
  }
  await waitFor('50 applied', async () => h.applier!.stats.applied === 50);
  await sql(env.sourceDb, `update items set qty = qty where id between 1 and 3`);
  await sql(env.sourceDb, `insert into items values (9001, -1, 'rejected', '2026-01-01T00:00:00Z'), (9002, -2, 'rejected', '2026-01-01T00:00:00Z')`);
  await sql(env.targetDb, `update items set qty = 99, updated_at = '2026-06-01T00:00:00Z' where id = 5`);
  await sql(env.sourceDb, `update items set qty = 5, updated_at = '2026-02-01T00:00:00Z' where id = 5`);
  await sql(env.sourceDb, `insert into items values (9100, 1, $1, '2026-01-01T00:00:00Z')`, ['x'.repeat(40)]);
  await waitFor('the workload processed', async () => {
    const s = h.applier!.stats;
    return s.skippedUnchanged === 3 && s.deadLettered === 2 && s.conflicts === 1 && h.processor!.invalid.count === 1;
  });
  // A verification (the verify service the schedule and the API use): sets syncline_verify_mismatches.
  const verified = await rt.verifier!.run(P, { pipeline: P }, 'api');
  assert.equal(verified.status, 'done', verified.error);
  // A few scrapes after the last event, so every rate window holds it.
  await waitFor('prometheus saw the last events', async () => (await p.query(`syncline_validation_failures_total{pipeline="${P}"}`)).length > 0
    && (await p.query(`syncline_conflicts_total{pipeline="${P}"} > 0`)).length > 0
    && (await p.query(`syncline_verify_mismatches{pipeline="${P}"}`)).length > 0, 30_000, 500);
  // A last applied row right before the queries: the rate windows ([1m]) must hold an apply (on a
  // loaded machine the workload and the verification above can take longer than a minute).
  const appliedSeen = async () => Number((await p.query(`sum(syncline_commit_to_apply_seconds_count{pipeline="${P}"})`))[0]?.value[1] ?? 0);
  const seenBefore = await appliedSeen();
  await sql(env.sourceDb, `insert into items values (9200, 1, 'last', '2026-01-01T00:00:00Z')`);
  await waitFor('prometheus saw the last apply', async () => (await appliedSeen()) > seenBefore, 30_000, 500);
  await sleep(3000);

  // The $pipeline variable's values.
  const values = (await (await fetch(`${p.url}/api/v1/label/pipeline/values?match[]=syncline_stage_up`)).json()) as { data: string[] };
  assert.ok(values.data.includes(P), 'label_values(syncline_stage_up, pipeline) lists the pipeline');

  const failures: string[] = [];
  let n = 0;
  for (const { file, d } of dashboards()) {
    for (const v of d.templating?.list ?? []) {
      const q = typeof v.query === 'string' ? v.query : v.query.query;
      assert.match(q, /^label_values\((\w+), (\w+)\)$/, `${file}: variable ${v.name}`);
    }
    for (const panel of allPanels(d.panels)) {
      for (const target of panel.targets ?? []) {
        const expr = target.expr!.replaceAll('$pipeline', P).replaceAll('$__rate_interval', '1m').replaceAll('$__range', '10m');
        n++;
        try {
          const r = await p.query(expr);
          if (r.length === 0) failures.push(`${file}: ${panel.title} [${target.refId}]: empty result for ${expr}`);
          else if (!r.some((x) => Number.isFinite(Number(x.value[1])))) failures.push(`${file}: ${panel.title} [${target.refId}]: only NaN for ${expr}`);
        } catch (err) {
          failures.push(`${file}: ${panel.title} [${target.refId}]: ${(err as Error).message}`);
        }
      }
    }
  }
  assert.ok(n >= 20, `queries checked: ${n}`);
  assert.deepEqual(failures, [], failures.join('\n'));
});
