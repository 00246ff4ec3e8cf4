import { test } from 'node:test';
import assert from 'node:assert/strict';
import '../connectors/index.js';
import { parseConfig } from './core/config/load.js';
import { planReload } from './reload.js';

const doc = (tables: unknown[], extra: Record<string, unknown> = {}) => parseConfig(JSON.stringify({
  version: 1,
  kafka: { brokers: ['127.0.0.1:9092'] },
  pipelines: {
    a: {
      source: { type: 'postgres', connection: { host: 'h', database: 's', user: 'u' }, slot: 'a', publication: 'a' },
      target: { type: 'postgres', connection: { host: 'h', database: 't', user: 'u' } },
      conflict: { strategy: 'source-wins' },
      tables,
    },
  },
  ...extra,
}), 'c.yaml', {});

test('tables added to a pipeline are what a reload applies', () => {
  const plan = planReload(doc([{ source: 'public.a' }]), doc([{ source: 'public.a' }, { source: 'public.b' }]));
  assert.deepEqual(plan.changes.map((c) => [c.pipeline, c.added.map((t) => t.source)]), [['a', ['public.b']]]);
  assert.deepEqual(planReload(doc([{ source: 'public.a' }]), doc([{ source: 'public.a' }])).changes, []);
});

test('anything else is refused, naming it', () => {
  assert.throws(() => planReload(doc([{ source: 'public.a' }, { source: 'public.b' }]), doc([{ source: 'public.a' }])), /need a restart: pipelines\.a\.tables\[1\] \(public\.b removed\)/);
  assert.throws(() => planReload(doc([{ source: 'public.a' }]), doc([{ source: 'public.a', target: 'public.z' }])), /public\.a changed/);
  assert.throws(() => planReload(doc([{ source: 'public.a' }]), doc([{ source: 'public.a' }], { topicPrefix: 'other' })), /need a restart: topicPrefix/);
});

test('tables added to a scheduled pipeline are refused (its runs hold state a restart of its stages would duplicate)', () => {
  const sched = (tables: unknown[]) => {
    const c = doc(tables);
    (c.pipelines.a as { mode?: string }).mode = 'manual';
    return c;
  };
  assert.throws(() => planReload(sched([{ source: 'public.a' }]), sched([{ source: 'public.a' }, { source: 'public.b' }])), /tables added to a manual pipeline/);
});


test('changed API tokens are applied by a reload; turning authentication on or off, or other api changes, are refused', () => {
  const h = (c: string) => `sha256:${c.repeat(64)}`;
  const api = (tokens: { name: string; role: string; hash: string }[], more: Record<string, unknown> = {}) => ({ api: { tokens, ...more } });
  const a = doc([{ source: 'public.a' }], api([{ name: 'ops', role: 'admin', hash: h('a') }, { name: 'viewer', role: 'viewer', hash: h('b') }]));
  const b = doc([{ source: 'public.a' }], api([{ name: 'viewer', role: 'operator', hash: h('b') }, { name: 'new', role: 'viewer', hash: h('c') }]));
  const plan = planReload(a, b);
  assert.deepEqual(plan.changes, []);
  assert.deepEqual({ ...plan.tokens, next: plan.tokens?.next.map((t) => t.name) }, { next: ['viewer', 'new'], added: ['new'], removed: ['ops'], changed: ['viewer'] });
  assert.equal(planReload(a, a).tokens, undefined);
  assert.throws(() => planReload(a, doc([{ source: 'public.a' }], api([]))), /api\.auth \(the token change turns authentication off\)/);
  assert.throws(() => planReload(doc([{ source: 'public.a' }]), b), /api/);
  assert.throws(() => planReload(a, doc([{ source: 'public.a' }], api([{ name: 'ops', role: 'admin', hash: h('a') }, { name: 'viewer', role: 'viewer', hash: h('b') }], { open: [] }))), /need a restart: api\.open/);
});
