/**
 * Summarise V8 CPU profiles (`.cpuprofile`, from `SYNCLINE_BENCH_CPU_PROF=DIR npm run bench …` or
 * `node --cpu-prof`): self time per function and per area (a package under node_modules, a folder of
 * src/, connectors/, or V8/Node internals), as a share of the sampled time. Also allocation profiles
 * (`.heapprofile`, from `SYNCLINE_BENCH_ALLOC_PROF=DIR`, bench/child.ts): bytes allocated per
 * function and area, collected objects included.
 *
 *   node --import tsx bench/profile.ts FILE.cpuprofile|FILE.heapprofile [--top 30]
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a frame's code lives: `pkg:<name>`, `src/<dir>`, `connectors/<dir>`, `node:<module>` or a V8 pseudo-frame. */
export function areaOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return `pkg:${nm[1]}`;
  const own = /\/((?:src|connectors|bench)\/[^/]+)/.exec(url);
  if (own) return own[1]!.replace(/\.ts$/, '');
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\//, '');
}

export function summarise(p: Profile): { total: number; byFn: Map<string, number>; byArea: Map<string, number> } {
  const nodes = new Map(p.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + (p.timeDeltas[i] ?? 0));
  let total = 0;
  const byFn = new Map<string, number>();
  const byArea = new Map<string, number>();
  for (const [id, us] of self) {
    const f = nodes.get(id)!.callFrame;
    total += us;
    const file = f.url.replace(/^.*\/(node_modules\/|src\/|connectors\/|bench\/)/, '$1');
    const name = `${f.functionName || '(anonymous)'} ${file ? `${file}:${f.lineNumber + 1}` : ''}`.trim();
    byFn.set(name, (byFn.get(name) ?? 0) + us);
    const area = areaOf(f.url, f.functionName);
    byArea.set(area, (byArea.get(area) ?? 0) + us);
  }
  return { total, byFn, byArea };
}

interface HeapNode {
  callFrame: ProfileNode['callFrame'];
  selfSize: number;
  children?: HeapNode[];
}

/** A sampling heap profile as a CPU profile of one sample per call-tree node, weighted by its bytes. */
export function heapAsProfile(head: HeapNode): Profile {
  const p: Profile = { nodes: [], samples: [], timeDeltas: [] };
  const walk = (n: HeapNode) => {
    const id = p.nodes.length + 1;
    p.nodes.push({ id, callFrame: n.callFrame });
    if (n.selfSize > 0) {
      p.samples.push(id);
      p.timeDeltas.push(n.selfSize);
    }
    for (const c of n.children ?? []) walk(c);
  };
  walk(head);
  return p;
}

function main(): void {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 30;
  if (!file) {
    console.error('usage: profile.ts FILE.cpuprofile|FILE.heapprofile [--top N]');
    process.exit(2);
  }
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Profile | { head: HeapNode };
  const heap = 'head' in raw;
  const { total, byFn, byArea } = summarise(heap ? heapAsProfile(raw.head) : raw);
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  const what = heap ? 'bytes allocated' : 'self time';
  console.log(`${file}: ${heap ? `${(total / 2 ** 20).toFixed(0)} MB allocated (sampled)` : `${(total / 1e6).toFixed(1)} s sampled`}\n\n${what} by area`);
  for (const [k, v] of sorted(byArea).slice(0, top)) console.log(`${pct(v)}  ${k}`);
  console.log(`\n${what} by function`);
  for (const [k, v] of sorted(byFn).slice(0, top)) console.log(`${pct(v)}  ${k}`);
}

main();
