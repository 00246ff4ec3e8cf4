import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { SYNCLINE_NODE_FLAGS } from './node-flags.js';

const root = new URL('../../', import.meta.url);
const read = (p: string) => readFileSync(new URL(p, root), 'utf8');

test('every way syncline is started passes its node flags: the bin (shebang), npm run syncline, the image', () => {
  const flags = SYNCLINE_NODE_FLAGS.join(' ');
  const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string>; scripts: Record<string, string> };
  // The package bin: a launcher that runs the sources (checkout) or dist/ (image), in its own process.
  assert.equal(pkg.bin.syncline, 'bin/syncline.js');
  assert.equal(read(pkg.bin.syncline).split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  assert.ok((statSync(new URL(pkg.bin.syncline, root)).mode & 0o111) !== 0, 'the bin is executable (npx runs it directly)');
  // main.ts compiled to dist/ keeps its shebang: started directly it has the flags too.
  assert.equal(read('src/cli/main.ts').split('\n')[0], `#!/usr/bin/env -S node ${flags}`);
  assert.match(pkg.scripts.syncline!, new RegExp(`^node ${flags} `));
  const dockerfile = read('Dockerfile');
  assert.match(dockerfile, new RegExp(`ENTRYPOINT \\["node", ${SYNCLINE_NODE_FLAGS.map((f) => `"${f}"`).join(', ')}, "dist/src/cli/main.js"\\]`));
  // `syncline` on the image's PATH is the same bin (its shebang has the flags).
  assert.match(dockerfile, /^COPY bin \.\/bin$/m);
  assert.match(dockerfile, /^RUN ln -s \/app\/bin\/syncline\.js \/usr\/local\/bin\/syncline$/m);
  // The shebang's own command line starts a node that has the flags.
  const argv = execFileSync('/usr/bin/env', ['-S', `node ${flags} -p process.execArgv.join(' ')`], { encoding: 'utf8' }).trim();
  assert.ok(argv.startsWith(flags), argv);
});
