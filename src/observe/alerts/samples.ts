/**
 * In-memory samples of the metrics the alert rules read, taken from the Runtime's prom-client
 * Registry every evaluation (only the metrics the rules name: a scrape-time collector such as the
 * consumer lag runs only when a rule reads it, and is cached by ./metrics.ts as for /metrics).
 * Instant selectors read the newest sample; rate()/increase() read the points kept for the longest
 * window a rule uses on that metric (plus one point before it). Nothing is persisted: after a
 * restart, range functions need a window's worth of samples again.
 */
import type { Registry } from 'prom-client';
import { signature, type Element, type Labels, type SampleSource } from './expr.js';

interface Series {
  labels: Labels;
  points: [number, number][];
}

export class SampleStore implements SampleSource {
  private readonly latest = new Map<string, Element[]>();
  private readonly history = new Map<string, Map<string, Series>>();

  /** instant: names read by instant selectors; ranges: name → longest window (ms). */
  constructor(private readonly instantNames: Set<string>, private readonly ranges: Map<string, number>) {}

  /** Names to sample. */
  get names(): string[] {
    return [...new Set([...this.instantNames, ...this.ranges.keys()])];
  }

  /** Record one sample of every series of `name` at time `now`. */
  record(name: string, elements: Element[], now: number): void {
    this.latest.set(name, elements);
    const keep = this.ranges.get(name);
    if (keep === undefined) return;
    let h = this.history.get(name);
    if (!h) this.history.set(name, (h = new Map()));
    for (const e of elements) {
      const sig = signature(e.labels);
      let s = h.get(sig);
      if (!s) h.set(sig, (s = { labels: e.labels, points: [] }));
      s.points.push([now, e.value]);
    }
    // Keep the points inside the longest window, plus the last one before it.
    for (const [sig, s] of h) {
      const from = now - keep;
      let first = 0;
      while (first + 1 < s.points.length && s.points[first + 1]![0] <= from) first++;
      if (first > 0) s.points.splice(0, first);
      if (s.points.length > 0 && s.points.at(-1)![0] < from) h.delete(sig); // series gone for a whole window
    }
  }

  /** Sample every needed metric from a prom-client Registry (runs its collect() callbacks). */
  async sample(registry: Registry, now: number): Promise<void> {
    for (const name of this.names) this.record(name, await readMetric(registry, name), now);
  }

  instant(name: string): Element[] {
    return this.latest.get(name) ?? [];
  }

  range(name: string, windowMs: number, now: number): { labels: Labels; points: [number, number][] }[] {
    const h = this.history.get(name);
    if (!h) return [];
    const from = now - windowMs;
    const out: { labels: Labels; points: [number, number][] }[] = [];
    for (const s of h.values()) {
      let start = s.points.findIndex((p) => p[0] > from);
      if (start === -1) continue;
      if (start > 0) start--; // the last point at or before the window start is the base
      out.push({ labels: s.labels, points: s.points.slice(start).filter((p) => p[0] <= now) });
    }
    return out;
  }
}

/** The series of one metric name (a histogram's _bucket/_sum/_count names too). */
export async function readMetric(registry: Registry, name: string): Promise<Element[]> {
  const base = registry.getSingleMetric(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
  const metric = registry.getSingleMetric(base);
  if (!metric) return [];
  const data = await metric.get();
  const out: Element[] = [];
  for (const v of data.values as { value: number; labels: Record<string, string | number>; metricName?: string }[]) {
    if ((v.metricName ?? data.name) !== name) continue;
    const labels: Labels = {};
    for (const [k, x] of Object.entries(v.labels)) labels[k] = String(x);
    out.push({ labels, value: v.value });
  }
  return out;
}
