/**
 * Node flags syncline runs with: package.json's `syncline` script, the Dockerfile's ENTRYPOINT, the
 * shebang of bin/syncline.js (the package's `syncline` bin, `env -S`; also `syncline` on the
 * image's PATH) and that of src/cli/main.ts (kept in dist/) spell them out (node-flags.test.ts
 * checks them all); the benchmark and the chaos suite start their syncline
 * children with these, so what they measure (memory above all) is what a deployment runs.
 * --heap-growing-percent=50: V8 grows the old generation in smaller steps, so a process's resident
 * set follows its live data more closely (peak RSS) at a small cost in GC time.
 */
export const SYNCLINE_NODE_FLAGS = ['--heap-growing-percent=50'];
