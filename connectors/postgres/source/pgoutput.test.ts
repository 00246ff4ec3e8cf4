/**
 * The tuple reader that replaces pg-logical-replication's (pgoutput.ts): the same tuples from the
 * same pgoutput messages, but every character of a text value kept (the library's drops a leading U+FEFF).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PgoutputParser } from 'pg-logical-replication/dist/output-plugins/pgoutput/pgoutput-parser.js';
import { EventEmitter } from 'node:events';
import { readTextTuple, ReplicationService, TextPgoutputPlugin, type Pgoutput } from './pgoutput.js';

/** A pgoutput Relation message (protocol 1) of the given column names, all text. */
function relationMsg(oid: number, cols: string[]): Buffer {
  const parts: Buffer[] = [Buffer.from('R'), int32(oid), cstr('public'), cstr('t'), Buffer.from([0x64]), int16(cols.length)];
  cols.forEach((c, i) => parts.push(Buffer.from([i === 0 ? 1 : 0]), cstr(c), int32(25), int32(-1)));
  return Buffer.concat(parts);
}
type Val = string | null | 'u!' | Buffer;
function tupleData(vals: Val[]): Buffer {
  const parts: Buffer[] = [int16(vals.length)];
  for (const v of vals) {
    if (v === null) parts.push(Buffer.from('n'));
    else if (v === 'u!') parts.push(Buffer.from('u'));
    else if (Buffer.isBuffer(v)) parts.push(Buffer.from('b'), int32(v.length), v);
    else {
      const b = Buffer.from(v, 'utf8');
      parts.push(Buffer.from('t'), int32(b.length), b);
    }
  }
  return Buffer.concat(parts);
}
const insertMsg = (oid: number, vals: Val[]) => Buffer.concat([Buffer.from('I'), int32(oid), Buffer.from('N'), tupleData(vals)]);
const updateMsg = (oid: number, old: Val[], vals: Val[]) => Buffer.concat([Buffer.from('U'), int32(oid), Buffer.from('O'), tupleData(old), Buffer.from('N'), tupleData(vals)]);
const deleteKeyMsg = (oid: number, key: Val[]) => Buffer.concat([Buffer.from('D'), int32(oid), Buffer.from('K'), tupleData(key)]);
function int16(n: number) { const b = Buffer.alloc(2); b.writeInt16BE(n); return b; }
function int32(n: number) { const b = Buffer.alloc(4); b.writeInt32BE(n); return b; }
function cstr(s: string) { return Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]); }

/** The library's parser with text kept as text (what syncline did before the reader was replaced). */
function libraryParser(): PgoutputParser {
  const p = new PgoutputParser();
  const parse = p.parse.bind(p);
  p.parse = (buf: Buffer) => {
    const msg = parse(buf) as { tag: string; columns?: { parser: unknown }[] };
    if (msg.tag === 'relation') for (const c of msg.columns!) c.parser = (x: unknown) => x;
    return msg as never;
  };
  return p;
}

test('pgoutput tuples read as the library reads them, as text', () => {
  const ours = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  const theirs = libraryParser();
  const cols = ['id', 'name', 'note', 'blob', 'ts'];
  const msgs = [
    relationMsg(7, cols),
    insertMsg(7, ['1', 'Ada', null, '', '2026-12-07 14:00:00.123456+00']),
    insertMsg(7, ['2', 'Zoë — 日本語 🎉', 'x'.repeat(5000), 'tab\there', null]),
    updateMsg(7, ['2', 'old', 'kept toast', 'b', null], ['2', 'new', 'u!', 'b', null]),
    updateMsg(7, ['3', 'a', 'b', 'c', 'd'], ['3', 'a', 'u!', 'u!', 'd']),
    deleteKeyMsg(7, ['9', null, null, null, null]),
    insertMsg(7, ['4', Buffer.from([0, 1, 2]), null, null, null]),
  ];
  // Relations differ only in the per-column parser the library keeps (ours reads text, theirs identity).
  // Tuples compared as their own properties (the prototypes differ: null, and an empty object with none).
  const own = (t: unknown) => (t ? Object.fromEntries(Object.getOwnPropertyNames(t).map((k) => [k, (t as Record<string, unknown>)[k]])) : t);
  const noParsers = (msg: { tag: string; columns?: object[]; relation?: { columns: object[] }; new?: object; old?: object; key?: object }): object =>
    msg.tag === 'relation'
      ? { ...msg, columns: msg.columns!.map((c) => ({ ...c, parser: null })) }
      : { ...msg, relation: noParsers({ tag: 'relation', ...msg.relation! }), new: own(msg.new), old: own(msg.old), key: own(msg.key) };
  for (const m of msgs) assert.deepEqual(noParsers(ours.parse(m) as never), noParsers(theirs.parse(m) as never), m.subarray(0, 1).toString());
});

test('a tuple holds its columns and nothing inherited, a column named __proto__ included', () => {
  const ours = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  ours.parse(relationMsg(9, ['id', '__proto__', 'constructor', 'a"b']));
  const t = (ours.parse(insertMsg(9, ['1', 'p', null, 'q'])) as { new: Record<string, unknown> }).new;
  assert.deepEqual(Object.keys(t), ['id', '__proto__', 'constructor', 'a"b']);
  assert.equal(t['__proto__'], 'p');
  assert.equal(t['constructor'], null);
  assert.equal('toString' in t, false);
  assert.equal('hasOwnProperty' in t, false);
});

test('a text value that starts with U+FEFF keeps it (the library would drop it)', () => {
  const ours = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  const theirs = libraryParser();
  ours.parse(relationMsg(8, ['id', 'v']));
  theirs.parse(relationMsg(8, ['id', 'v']));
  const m = insertMsg(8, ['1', '\uFEFFbom first']);
  assert.equal((ours.parse(m) as { new: Record<string, unknown> }).new.v, '\uFEFFbom first');
  assert.equal((theirs.parse(m) as { new: Record<string, unknown> }).new.v, 'bom first');
});

test('a truncated or malformed tuple is an error that says so', () => {
  const rel = { columns: [{ name: 'id' }, { name: 'v' }] };
  const full = tupleData(['1', 'hello']);
  assert.throws(() => readTextTuple({ _b: full.subarray(0, full.length - 2), _p: 0 }, rel), /unexpected end of message in a tuple/);
  assert.throws(() => readTextTuple({ _b: tupleData(['1', 'a', 'b']), _p: 0 }, rel), /tuple has 3 columns, its relation 2/);
  const bad = Buffer.concat([int16(1), Buffer.from('q')]);
  assert.throws(() => readTextTuple({ _b: bad, _p: 0 }, rel), /unknown attribute kind q/);
});

test('a row made in one object literal holds every column under its own name, in column order', async () => {
  const { rowMaker } = await import('./postgres-source.js');
  const names = ['id', 'constructor', 'toString', 'a"b', "it's", 'back\\slash', 'x y', 'ünï', '日本', '$1', '0', 'hasOwnProperty', ...Array.from({ length: 13 }, (_, i) => `c${i}`)];
  const cols = names.map((name) => ({ name, type: { kind: 'text' } })) as never[];
  const values = names.map((n, i) => (i % 4 === 0 ? null : `${n}=${i}`));
  const make = rowMaker(cols)!;
  const row = make(values);
  assert.deepEqual(row, Object.fromEntries(names.map((n, i) => [n, values[i]])));
  assert.deepEqual(Object.keys(row).sort(), [...names].sort());
  assert.equal(rowMaker(cols), make, 'made once per column list');
  assert.equal(rowMaker([...cols, { name: '__proto__', type: { kind: 'text' } } as never]), null, 'a column named __proto__ keeps the one-at-a-time row');
});

test('the replication service delivers XLogData and keepalives with their positions; after a message it cannot parse, an error and nothing more', async () => {
  // A malformed message cannot be had from a real PostgreSQL: the replication connection is an emitter here.
  const connection = new EventEmitter();
  const service = new ReplicationService({}, { acknowledge: { auto: false, timeoutSeconds: 0 } });
  (service as unknown as { client(): Promise<unknown> }).client = async () => [{}, connection];
  const plugin = new TextPgoutputPlugin({ protoVersion: 1, publicationNames: ['p'] });
  let ended!: () => void;
  (plugin as unknown as { start(): Promise<void> }).start = () => new Promise<void>((r) => (ended = r));
  const got: [string, string][] = [];
  const keepalives: [string, boolean][] = [];
  const errors: unknown[] = [];
  service.onData = (lsn, msg: Pgoutput.Message) => got.push([lsn, msg.tag]);
  service.onKeepalive = (lsn, reply) => keepalives.push([lsn, reply]);
  service.on('error', (e: Error) => errors.push(e));
  const subscribed = service.subscribe(plugin, 'slot', '0/0');
  await new Promise((r) => setImmediate(r));
  /** XLogData: 'w', start and end of WAL (two int32 each), send time, then the pgoutput message. */
  const xlog = (hi: number, lo: number, msg: Buffer) => Buffer.concat([Buffer.from('w'), int32(hi), int32(lo), Buffer.alloc(16), msg]);
  const keepalive = (hi: number, lo: number, reply: boolean) => Buffer.concat([Buffer.from('k'), int32(hi), int32(lo), Buffer.alloc(8), Buffer.from([reply ? 1 : 0])]);
  connection.emit('copyData', { chunk: xlog(0x1a, 0xb2f0, relationMsg(7, ['id', 'v'])) });
  connection.emit('copyData', { chunk: xlog(0x1a, 0xb300, insertMsg(7, ['1', 'x'])) });
  connection.emit('copyData', { chunk: keepalive(0x1b, 0x10, true) });
  connection.emit('copyData', { chunk: keepalive(0, 0xffffffff | 0, false) });
  assert.deepEqual(got, [['1A/B2F0', 'relation'], ['1A/B300', 'insert']]);
  assert.deepEqual(keepalives, [['1B/10', true], ['0/FFFFFFFF', false]]);
  // A tuple cut short: the stream fails, and what follows (even a good message) is not delivered.
  const bad = insertMsg(7, ['2', 'y']);
  connection.emit('copyData', { chunk: xlog(0x1a, 0xb400, bad.subarray(0, bad.length - 1)) });
  connection.emit('copyData', { chunk: xlog(0x1a, 0xb500, insertMsg(7, ['3', 'z'])) });
  connection.emit('copyData', { chunk: keepalive(0x1c, 0, true) });
  assert.equal(errors.length, 1);
  assert.match(String(errors[0]), /unexpected end of message/);
  assert.deepEqual(got.map(([lsn]) => lsn), ['1A/B2F0', '1A/B300']);
  assert.equal(keepalives.length, 2);
  ended();
  await subscribed;
});
