#!/usr/bin/env -S node --heap-growing-percent=50 --max-semi-space-size=8
/**
 * The package's `syncline` bin (`npx syncline …`), usable right after `npm ci`, without a build:
 *  - in a checkout with the TypeScript sources and the dev dependencies, it runs src/cli/main.ts
 *    through tsx, in this process (so signals reach syncline and the sources are never stale);
 *  - without them (the image, or `npm ci --omit=dev` after `npm run build`) it runs the compiled
 *    dist/src/cli/main.js.
 * The shebang carries syncline's node flags (src/cli/node-flags.ts; node-flags.test.ts checks them).
 * Plain JavaScript on purpose: it must run before anything is compiled.
 */
import { existsSync } from 'node:fs';

const root = new URL('../', import.meta.url);
const source = new URL('src/cli/main.ts', root);
const compiled = new URL('dist/src/cli/main.js', root);

async function tsx() {
  try {
    return await import('tsx/esm/api');
  } catch (err) {
    if (err && (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND')) return null;
    throw err;
  }
}

const api = existsSync(source) ? await tsx() : null;
if (api) {
  api.register();
  await import(source.href);
} else if (existsSync(compiled)) {
  await import(compiled.href);
} else {
  process.stderr.write(
    'syncline: neither the TypeScript sources with tsx (a development install: npm ci) nor a build ' +
      `(${compiled.pathname}: npm run build) is here\n`,
  );
  process.exit(1);
}
