/**
 * End to end: files in a temporary directory → syncline capture (`syncline capture`, a child process,
 * killed with SIGKILL) → Kafka → processor and PostgreSQL sink (in process, autoCreate). Three tables:
 * orders as JSON Lines (two files), items as CSV, metrics as Parquet.
 *  - First pass: a snapshot; a bad JSON line, a row without its key and a CSV row with a field too
 *    many are dead-lettered naming file:line, the rest flows.
 *  - Changes: rows changed and removed in a file, a file deleted, a CSV file appended slowly while
 *    capture runs (a half-written line at times: never read before it is stable, so never dead-lettered).
 *  - kill -9 while a file of 3,000 rows is being captured, restart: every row applied exactly once.
 *  - Quiet: killed again and restarted with nothing changed; then one new row: only that row written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Row } from '../../../src/core/envelope.js';
import { sleep, waitFor } from '../../../test/helpers.js';
import { canon, contractEnv, deadLetters, kill9, stat } from '../../../test/contract/env.js';
import { rowDiff } from '../../../test/contract/sink-contract.js';
import { postgresSink, sortByKey } from '../../../test/contract/postgres-fixtures.js';

interface Order { id: number; name: string; qty: number }
interface Item { sku: string; label: string; active: boolean }

test('files → PostgreSQL: JSONL, CSV, Parquet; changed rows, removed rows, a deleted file, bad lines dead-lettered with file:line, a file appended while running, capture killed with SIGKILL', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'syncline-file-source-'));
  const stateDir = mkdtempSync(join(tmpdir(), 'syncline-file-state-'));
  for (const d of ['orders', 'items', 'metrics']) mkdirSync(join(dir, d));
  const env = await contractEnv({
    source: async () => ({
      database: 'files',
      config: () => ({
        type: 'file', dir, stateDir, intervalMs: 200, stableMs: 400, lingerMs: 5,
        tables: [
          { table: 'files.orders', glob: 'orders/*.jsonl', format: 'jsonl', key: ['id'], columns: { id: 'int8', name: 'text', qty: 'int4' } },
          { table: 'files.items', glob: 'items/**/*.csv', format: 'csv', key: ['sku'], columns: { sku: 'text', label: 'text', active: 'boolean' } },
          { table: 'files.metrics', glob: 'metrics/*.parquet', format: 'parquet', key: ['id'], columns: { id: 'int8', value: 'float8' } },
        ],
      }),
      qualified: (table: string) => `files.${table}`,
      createTable: async () => undefined, insertLiterals: async () => undefined, updateLiterals: async () => undefined,
      session: async () => { throw new Error('no sessions'); }, readAll: async () => [], drop: async () => undefined,
    }),
    target: (id) => postgresSink.createTarget(id),
  }, ['orders', 'items', 'metrics']);
  t.after(async () => {
    await env.cleanup();
    rmSync(dir, { recursive: true, force: true });
    rmSync(stateDir, { recursive: true, force: true });
  });

  // Files and what the target must hold.
  const files = new Map<string, Map<number, Order>>();
  const order = (id: number, gen = 0): Order => ({ id, name: `order ${id} g${gen}`, qty: (id * 7 + gen) % 50 });
  const writeOrders = (name: string, rows: Order[], bad: Record<number, string> = {}) => {
    files.set(name, new Map(rows.map((r) => [r.id, r])));
    const lines = rows.map((r) => JSON.stringify(r));
    for (const [at, text] of Object.entries(bad)) lines.splice(Number(at) - 1, 0, text);
    writeFileSync(join(dir, 'orders', name), lines.join('\n') + '\n');
  };
  const items = new Map<string, Item>();
  const csvLine = (i: Item) => `${i.sku},"${i.label.replace(/"/g, '""')}",${i.active ? 'true' : 'f'}\n`;
  let csv = 'sku,label,active\n';
  for (let i = 1; i <= 30; i++) {
    const it = { sku: `S${i}`, label: `label "${i}", with comma`, active: i % 2 === 0 };
    items.set(it.sku, it);
    csv += csvLine(it);
    if (i === 10) csv += 'S999,too,many,fields\n'; // line 12: dead-lettered
  }
  writeFileSync(join(dir, 'items', 'x.csv'), csv);
  writeOrders('a.jsonl', Array.from({ length: 100 }, (_, i) => order(i + 1)), { 51: '{"id": 1000, "name": "half' });
  writeOrders('b.jsonl', Array.from({ length: 50 }, (_, i) => order(i + 201)), { 10: '{"name":"no id","qty":1}' });
  const { parquetWriteBuffer } = await import('hyparquet-writer');
  const metricIds = Array.from({ length: 20 }, (_, i) => BigInt(i + 1));
  writeFileSync(join(dir, 'metrics', 'm.parquet'), Buffer.from(parquetWriteBuffer({ columnData: [{ name: 'id', data: metricIds, type: 'INT64' }, { name: 'value', data: metricIds.map((i) => Number(i) / 8), type: 'DOUBLE' }], rowGroupSize: 7 })));

  const expected = (table: string): Row[] => {
    if (table === 'orders') return sortByKey([...files.values()].flatMap((m) => [...m.values()]).map((o) => ({ id: BigInt(o.id), name: o.name, qty: o.qty })), ['id']);
    if (table === 'items') return sortByKey([...items.values()].map((i) => ({ sku: i.sku, label: i.label, active: i.active })), ['sku']);
    return metricIds.map((i) => ({ id: i, value: Number(i) / 8 }));
  };
  const keys: Record<string, string[]> = { orders: ['id'], items: ['sku'], metrics: ['id'] };
  const converge = async (what: string) => {
    for (const table of ['orders', 'items', 'metrics']) {
      let diff: string[] = [];
      await waitFor(`${what}: ${table} on the target as in the files`, async () => {
        const [want, have] = [expected(table), await env.target.readAll(table, keys[table]!)];
        diff = rowDiff(want, have, keys[table]![0]);
        return canon(want) === canon(have);
      }, 90_000, 300).catch((err: Error) => assert.fail(`${err.message}\n${diff.slice(0, 20).join('\n')}`));
    }
  };

  await env.start(['process', 'sink']);
  const rt = env.runtimes[0]!;
  let capture = env.spawnCapture();
  await converge('snapshot');

  // Changes: 10 rows changed and 5 removed in a.jsonl, b.jsonl deleted, x.csv appended slowly (a half line at times).
  const a = [...files.get('a.jsonl')!.values()].filter((o) => o.id % 20 !== 0).map((o) => (o.id % 10 === 3 ? order(o.id, 1) : o));
  writeOrders('a.jsonl', a, { 51: '{"id": 1000, "name": "half' });
  unlinkSync(join(dir, 'orders', 'b.jsonl'));
  files.delete('b.jsonl');
  for (let i = 31; i <= 40; i++) {
    const it = { sku: `S${i}`, label: `appended ${i}`, active: true };
    const line = csvLine(it);
    appendFileSync(join(dir, 'items', 'x.csv'), line.slice(0, 7));
    await sleep(60);
    appendFileSync(join(dir, 'items', 'x.csv'), line.slice(7));
    items.set(it.sku, it);
    await sleep(60);
  }
  await converge('changes');

  // kill -9 while a file of 3,000 rows is being captured; after the restart each row is applied once.
  await sleep(1000);
  const applied0 = stat(rt, 'applied');
  writeOrders('c.jsonl', Array.from({ length: 3000 }, (_, i) => order(i + 5001)));
  await waitFor('rows of c.jsonl to reach the target', async () => (await env.target.readAll('orders', ['id'])).some((r) => (r.id as bigint) > 5000n), 60_000, 20);
  const partial = (await env.target.readAll('orders', ['id'])).filter((r) => (r.id as bigint) > 5000n).length;
  await kill9(capture);
  capture = env.spawnCapture();
  await converge('after kill -9');
  await sleep(1000);
  assert.equal(stat(rt, 'applied') - applied0, 3000, `each row of c.jsonl applied once (${partial} were on the target at the kill)`);

  // The bad lines: dead-lettered naming file:line, at most once more per kill.
  const letters = await deadLetters(env);
  const msgs = letters.map((l) => `${l.errorCode} ${l.errorMessage}`);
  const codes = [...new Set(msgs)].sort();
  assert.deepEqual(codes.map((m) => m.replace(/:.*$/s, '')), ['FILE_KEY_MISSING orders/b.jsonl', 'FILE_RECORD_INVALID items/x.csv', 'FILE_RECORD_INVALID orders/a.jsonl'], JSON.stringify(msgs));
  assert.ok(msgs.some((m) => m === 'FILE_RECORD_INVALID items/x.csv:12: 4 fields, the header has 3'), JSON.stringify(msgs));
  assert.ok(msgs.some((m) => /^FILE_RECORD_INVALID orders\/a\.jsonl:51: not JSON/.test(m)), JSON.stringify(msgs));
  assert.ok(msgs.some((m) => m === 'FILE_KEY_MISSING orders/b.jsonl:10: no value for key column id'), JSON.stringify(msgs));
  // a.jsonl:51 was rewritten once (same line: not again); one more each after the kill at most.
  assert.ok(letters.length <= 3 * 2, JSON.stringify(msgs));
  assert.equal(stat(rt, 'deadLettered'), 0, 'nothing failed at the target');

  // Quiet: killed and restarted with nothing changed; then one new row: only that row is written.
  const marks = new Map<string, Map<string, string>>();
  for (const table of ['orders', 'items', 'metrics']) marks.set(table, await env.target.writeMarks!(table, keys[table]!));
  const applied1 = stat(rt, 'applied');
  await kill9(capture);
  capture = env.spawnCapture();
  await sleep(1500);
  writeOrders('d.jsonl', [order(9001)]);
  await converge('quiet phase');
  await sleep(1000);
  for (const [table, before] of marks) {
    const after = await env.target.writeMarks!(table, keys[table]!);
    const rewritten = [...after].filter(([k, x]) => before.has(k) && before.get(k) !== x).map(([k]) => k);
    assert.deepEqual(rewritten, [], `${table}: rows written again after the restart`);
  }
  assert.equal(stat(rt, 'applied') - applied1, 1, 'only the new row applied');
  console.log(`files → postgres: ${letters.length} dead letters, ${partial}/3000 rows of c.jsonl on the target at the kill, capture killed twice`);
});
