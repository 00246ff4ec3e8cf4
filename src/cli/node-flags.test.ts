import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { SYNCLINE_NODE_FLAGS, applyNodeFlags, missingNodeFlags } from './node-flags.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

test('every way syncline is started passes its node flags: the bin (shebang), npm run syncline, the image and its wrapper', () => {
  const flags = SYNCLINE_NODE_FLAGS.join(' ');
  const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
  // The package bin: a launcher that runs the sources (checkout) or dist/ (image), in its own process.
  assert.equal(pkg.bin.syncline, 'bin/syncline.js');
  assert.equal(read(pkg.bin.syncline).split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  assert.ok((statSync(new URL(pkg.bin.syncline, root)).mode & 0o111) !== 0, 'the bin is executable (npx runs it directly)');
  // main.ts compiled to dist/ keeps its shebang: started directly it has the flags too.
  assert.equal(read('src/cli/main.ts').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  // exec: npm's shell is replaced by node, so the SIGTERM npm forwards reaches syncline (test/signals.int.test.ts).
  assert.match(pkg.scripts.syncline!, new RegExp(`^exec node ${flags} `));
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, new RegExp(`ENTRYPOINT \\["node", ${SYNCLINE_NODE_FLAGS.map((f) => `"${f}"`).join(', ')}, "dist/src/cli/main.js"\\]`));
  // `syncline` on the image's PATH is the same bin (its shebang has the flags).
  assert.match(dockerfile, /^COPY bin \.\/bin$/m);
  assert.match(dockerfile, /^RUN ln -s \/app\/bin\/syncline\.js \/usr\/local\/bin\/syncline$/m);
  // The shebang's own command line starts a node that has the flags.
  const argv = JSON.parse(execFileSync('/usr/bin/env', ['-S', `node ${flags} -p JSON.stringify(process.execArgv)`], { encoding: 'utf8' })) as string[];
  assert.deepEqual(argv.slice(0, SYNCLINE_NODE_FLAGS.length), SYNCLINE_NODE_FLAGS, argv.join(' '));
  // And a start without them (`node dist/src/cli/main.js`) sets them first thing.
  assert.match(read('src/cli/main.ts'), /\nimport \{ applyNodeFlags \} from '\.\/node-flags\.js';\n[\s\S]*\napplyNodeFlags\(\);/);
});

test('missing flags: those given neither on the command line nor in NODE_OPTIONS, whatever their value or spelling', () => {
  assert.deepEqual(missingNodeFlags([]), SYNCLINE_NODE_FLAGS);
  assert.deepEqual(missingNodeFlags(['--import', 'tsx']), SYNCLINE_NODE_FLAGS);
  assert.deepEqual(missingNodeFlags(['--heap-growing-percent=50', '--max-semi-space-size=8']), []);
  assert.deepEqual(missingNodeFlags(['--heap_growing_percent=30', '--max_semi_space_size=32']), []); // the operator's own values stay
  assert.deepEqual(missingNodeFlags(['--heap-growing-percent=50']), ['--max-semi-space-size=8']);
  assert.deepEqual(missingNodeFlags([], '--max-old-space-size=512 --heap-growing-percent=20 --max-semi-space-size=16'), []);
  assert.deepEqual(missingNodeFlags([], '--max-old-space-size=512'), SYNCLINE_NODE_FLAGS);
});

test('applyNodeFlags sets exactly the missing flags V8 takes after start-up (not the young generation size)', () => {
  const set: string[] = [];
  assert.deepEqual(applyNodeFlags(['--import', 'tsx'], '', (f) => set.push(f)), ['--heap-growing-percent=50']);
  assert.deepEqual(set, ['--heap-growing-percent=50']);
  assert.deepEqual(applyNodeFlags(SYNCLINE_NODE_FLAGS, '', (f) => set.push(f)), []);
  assert.equal(set.length, 1);
});

test('the young generation flag takes effect on the command line', () => {
  // Garbage with survivors (a ring of 400,000 live objects) grows new space (two semi-spaces) to its most:
  // 2 × 8 MB with the flag, 2 × 16 MB with Node 20's default.
  const script = "const v8 = require('node:v8'); const ring = new Array(400000); let max = 0; for (let i = 0; i < 1e7; i++) { ring[i % ring.length] = { i }; if (i % 100000 === 0) max = Math.max(max, v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size); } console.log(max)";
  const newSpace = (args: string[]) => Number(execFileSync(process.execPath, [...args, '-e', script], { encoding: 'utf8' }).trim());
  const withFlags = newSpace(SYNCLINE_NODE_FLAGS);
  assert.ok(withFlags > 0 && withFlags <= 2 * 8 * 2 ** 20, `new space ${withFlags} bytes with ${SYNCLINE_NODE_FLAGS.join(' ')}`);
  assert.ok(newSpace([]) > withFlags, 'larger without the flag');
});
