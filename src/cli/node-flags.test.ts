import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { SYNCLINE_NODE_FLAGS } from './node-flags.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

test('every way syncline is started passes its node flags: the bin (shebang), npm run syncline, the image', () => {
  const flags = SYNCLINE_NODE_FLAGS.join(' ');
  const shebang = read('src/cli/main.ts').split('\n')[0]!;
  assert.equal(shebang, `#!/usr/bin/env -S node ${flags}`);
  const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
  assert.equal(pkg.bin.syncline, 'dist/src/cli/main.js'); // compiled from main.ts, shebang kept by tsc
  assert.match(pkg.scripts.syncline!, new RegExp(`^node ${flags} `));
  assert.match(read('Dockerfile'), new RegExp(`ENTRYPOINT \\["node", ${SYNCLINE_NODE_FLAGS.map((f) => `"${f}"`).join(', ')}, "dist/src/cli/main.js"\\]`));
  // The shebang's own command line starts a node that has the flags.
  const argv = execFileSync('/usr/bin/env', ['-S', `node ${flags} -p process.execArgv.join(' ')`], { encoding: 'utf8' }).trim();
  assert.ok(argv.startsWith(flags), argv);
});
