/**
 * `syncline doctor` on a polling source (a connector without doctor checks of its own): its start's
 * checks run as the start runs them, the first failure reported with its message, and the tables it
 * describes checked on the target.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../index.js';
import { doctor } from '../../../src/cli/doctor.js';
import { createDb, dropDb, PG, sql, uid } from '../../../test/helpers.js';

test('doctor on a postgres-poll pipeline: described tables pass, an unknown tracking column fails with its name, the target is checked', { timeout: 120_000 }, async (t) => {
  const id = uid();
  const sourceDb = `syncline_t_${id}_dpsrc`;
  const targetDb = `syncline_t_${id}_dpdst`;
  const dir = mkdtempSync(join(tmpdir(), 'syncline-polldoc-'));
  t.after(async () => {
    await dropDb(sourceDb);
    await dropDb(targetDb);
    rmSync(dir, { recursive: true, force: true });
  });
  await createDb(sourceDb);
  await createDb(targetDb);
  await sql(sourceDb, `create table items (id int primary key, name text, updated_at timestamptz not null default now())`);
  await sql(targetDb, `create table items (id int primary key, name text)`);
  const write = (column: string) => {
    const file = join(dir, `${column}.yaml`);
    writeFileSync(file, JSON.stringify({
      version: 1,
      topicPrefix: `t${id}`,
      pipelines: {
        polled: {
          source: { type: 'postgres-poll', connection: { ...PG, database: sourceDb }, stateDir: dir, tables: { 'public.items': { mode: 'timestamp', column } } },
          target: { type: 'postgres', connection: { ...PG, database: targetDb }, autoEvolve: false },
          conflict: { strategy: 'source-wins' },
          tables: [{ source: 'public.items' }],
        },
      },
    }));
    return file;
  };
  const run = async (file: string) => {
    let text = '';
    const code = await doctor({ config: file, out: (s) => (text += s) });
    return { code, text };
  };
  const good = await run(write('updated_at'));
  assert.match(good.text, /ok {4}tables: 1 described as the start does \(the postgres-poll connector has no further doctor checks\)/);
  // The target lacks updated_at and autoEvolve is off: the target's check knows it from the source's description.
  assert.match(good.text, /FAIL {2}table public\.items: has no column updated_at \(autoEvolve is off\)/);
  assert.equal(good.code, 1);
  const bad = await run(write('changed_at'));
  assert.match(bad.text, /FAIL {2}tables: .*column 'changed_at' is not a column of public\.items \(columns: id, name, updated_at\)/);
});
