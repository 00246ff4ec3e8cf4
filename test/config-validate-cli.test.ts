/**
 * `syncline config validate` takes its file the way every other command does (`--config FILE`,
 * `-c FILE`) as well as the positional `FILE`, with the same answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliArgs, ROOT } from './helpers.js';

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs([...args]), { cwd: ROOT, env: { ...process.env, ...env } }, (err, out, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out, err: stderr });
    });
  });
}

const dir = mkdtempSync(join(tmpdir(), 'syncline-validate-'));
const good = join(dir, 'good.yaml');
const bad = join(dir, 'bad.yaml');
const pipeline = `pipelines:
  users-sync:
    source: { type: postgres, connection: { database: shop }, slot: s_users, publication: s_users }
    target: { type: postgres, connection: { database: shop_copy } }
`;
writeFileSync(good, `version: 1\n${pipeline}    tables: [{ source: public.users }]\n`);
writeFileSync(bad, `version: 1\n${pipeline}    tabels: [{ source: public.users }]\n`);

test('config validate FILE, --config FILE and -c FILE: the same verdict, valid and invalid', async () => {
  for (const form of [(f: string) => [f], (f: string) => ['--config', f], (f: string) => ['-c', f]]) {
    const ok = await cli(['config', 'validate', ...form(good)]);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out, `OK: ${good} (1 pipeline: users-sync)\n`);
    const no = await cli(['config', 'validate', ...form(bad)]);
    assert.equal(no.code, 1, no.out);
    assert.match(no.err, new RegExp(`^invalid config ${bad} \\(2 problems\\):\\n${bad}:3:3: pipelines\\.users-sync\\.tables: `));
    assert.match(no.err, /unknown key 'tabels' \(did you mean 'tables'\?\)/);
  }
});

test('config validate: two different files is a usage error; none takes SYNCLINE_CONFIG', async () => {
  const both = await cli(['config', 'validate', good, '--config', bad]);
  assert.equal(both.code, 2);
  assert.match(both.err, /two config files given: .*good\.yaml and --config .*bad\.yaml; give one/);
  const same = await cli(['config', 'validate', good, '--config', good]);
  assert.equal(same.code, 0, same.err);
  const byEnv = await cli(['config', 'validate'], { SYNCLINE_CONFIG: good });
  assert.equal(byEnv.code, 0, byEnv.err);
  assert.equal(byEnv.out, `OK: ${good} (1 pipeline: users-sync)\n`);
});
