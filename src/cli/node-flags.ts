/**
 * Node flags syncline runs with: package.json's `syncline` script, the Dockerfile's ENTRYPOINT, the
 * shebang of bin/syncline.js (the package's `syncline` bin, `env -S`; also `syncline` on the
 * image's PATH) and that of src/cli/main.ts (kept in dist/) spell them out (node-flags.test.ts
 * checks them all); main.ts sets any that are missing at start (`node dist/…` by hand). The
 * benchmark and the chaos suite start their syncline children with these, so what they measure
 * (memory above all) is what a deployment runs.
 * --heap-growing-percent=50: V8 grows the old generation in smaller steps, so a process's resident
 * set follows its live data more closely (peak RSS) at a small cost in GC time.
 * --max-semi-space-size=8: a young generation of 8 MB semi-spaces, not Node 20's 16: peak RSS of the
 * one-process end to end 207 – 210 → 191 MB, of process+sink 202 – 204 → 184 – 186, of wide-row
 * capture 213 – 220 → 191 – 194, with syncline's CPU per change within the runs' noise (one-process
 * 42 / 38 µs → 45 / 37; BENCHMARKS.md). Larger semi-spaces bought no CPU here and cost RSS.
 */
import v8 from 'node:v8';

export const SYNCLINE_NODE_FLAGS = ['--heap-growing-percent=50', '--max-semi-space-size=8'];

/**
 * Flags V8 reads only when it sets its heap up: they work on node's command line (every way of
 * starting syncline above passes them) and not when set later, so applyNodeFlags leaves them out.
 */
const STARTUP_ONLY = new Set(['--max-semi-space-size']);

/** `--heap_growing_percent=50` → `--heap-growing-percent` (V8 takes both spellings). */
const flagName = (f: string) => f.split('=')[0]!.replace(/_/g, '-');

/** The flags of SYNCLINE_NODE_FLAGS a process was started without (on node's command line or in NODE_OPTIONS). */
export function missingNodeFlags(execArgv: readonly string[], nodeOptions = ''): string[] {
  const given = new Set([...execArgv, ...nodeOptions.split(/\s+/)].filter((f) => f.startsWith('--')).map(flagName));
  return SYNCLINE_NODE_FLAGS.filter((f) => !given.has(flagName(f)));
}

/**
 * Set the flags a process was started without (`node dist/src/cli/main.js`, a wrapper that forgot
 * them); a flag given explicitly, with any value, is left alone. main.ts calls this first. V8 reads
 * --heap-growing-percent each time it sizes the heap after a collection, so setting it at start-up
 * has the effect of passing it: a live set of 400,000 objects under garbage churn peaked at
 * 150-156 MB of heap either way, 175-327 MB without the flag (Node 20, measured on this project's
 * machine; the figure without it depends on V8's GC-speed heuristics, hence no test of it).
 */
export function applyNodeFlags(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions = process.env.NODE_OPTIONS ?? '',
  set: (flag: string) => void = (f) => v8.setFlagsFromString(f),
): string[] {
  const missing = missingNodeFlags(execArgv, nodeOptions).filter((f) => !STARTUP_ONLY.has(flagName(f)));
  for (const f of missing) set(f);
  return missing;
}
