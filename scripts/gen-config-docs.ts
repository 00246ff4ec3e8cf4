/**
 * Writes docs/config.md from the config spec and the registered connectors' specs.
 *
 *   npx tsx scripts/gen-config-docs.ts           # (re)generate docs/config.md
 *   npx tsx scripts/gen-config-docs.ts --check   # exit 1 if docs/config.md is stale (CI)
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../connectors/index.js';
import { renderConfigDocs } from '../src/core/config/docs.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const file = resolve(root, 'docs/config.md');
const shown = relative(process.cwd(), file) || file;
const expected = renderConfigDocs();

if (process.argv.includes('--check')) {
  let current: string | undefined;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    current = undefined;
  }
  if (current !== expected) {
    console.error(`${shown} is ${current === undefined ? 'missing' : 'stale'}: the config spec changed. Run \`npm run docs:config\` and commit the result.`);
    process.exit(1);
  }
  console.log(`${shown} is up to date.`);
} else {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, expected);
  console.log(`wrote ${shown}`);
}
