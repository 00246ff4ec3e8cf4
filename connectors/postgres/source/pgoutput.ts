/**
 * pgoutput decoding that keeps every column value in PostgreSQL's text form, so the one exact
 * parser in ../pgtypes.ts turns it into canonical values (the library's default parsers would
 * turn timestamps into JS Dates and lose microseconds).
 *
 * The library's tuple reader is replaced (readTextTuple): it made a Buffer view of every value and
 * decoded it through a TextDecoder, which also drops a leading U+FEFF from a text value (TextDecoder
 * strips a byte-order mark by default); ours reads each value straight out of the message as UTF-8,
 * every character kept (≈ 4 % of capture's CPU with 25-column rows, and a Buffer less per value).
 */
import { PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

/** The library's BinaryReader: the message and the read position. */
interface Reader {
  _b: Buffer;
  _p: number;
}
type Tuple = Record<string, unknown>;

/**
 * TupleData of pgoutput (protocol-logicalrep-message-formats): int16 column count, then per column
 * 'n' null, 'u' unchanged TOASTed value (taken from `unchanged`, the old row, when there is one),
 * 't' int32 length + text, 'b' int32 length + binary (not asked for; kept as a Buffer, as the library does).
 */
export function readTextTuple(reader: Reader, relation: { columns: { name: string }[] }, unchanged?: Tuple): Tuple {
  const b = reader._b as Buffer & { utf8Slice(start: number, end: number): string };
  const end = b.length;
  let p = reader._p;
  if (p + 2 > end) throw truncated();
  const n = (b[p]! << 8) | b[p + 1]!;
  p += 2;
  const columns = relation.columns;
  if (n > columns.length) throw new Error(`pgoutput: tuple has ${n} columns, its relation ${columns.length}`);
  const make = n === columns.length ? tupleMaker(columns) : null;
  const values: unknown[] = make ? new Array(n) : [];
  const tuple: Tuple = make ? (values as unknown as Tuple) : Object.create(null);
  for (let i = 0; i < n; i++) {
    const name: string | number = make ? i : columns[i]!.name;
    const unchangedName = columns[i]!.name;
    if (p >= end) throw truncated();
    const kind = b[p++];
    if (kind === 0x74 /* t */ || kind === 0x62 /* b */) {
      if (p + 4 > end) throw truncated();
      const len = ((b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!) >>> 0;
      p += 4;
      if (p + len > end) throw truncated();
      tuple[name] = kind === 0x74 ? b.utf8Slice(p, p + len) : b.subarray(p, p + len);
      p += len;
    } else if (kind === 0x6e /* n */) tuple[name] = null;
    else if (kind === 0x75 /* u */) tuple[name] = unchanged?.[unchangedName];
    else throw new Error(`pgoutput: unknown attribute kind ${String.fromCharCode(kind ?? 0)}`);
  }
  reader._p = p;
  return make ? make(values) : tuple;
}

/**
 * The tuple of a relation as an object with fast properties: set one at a time into a dictionary
 * (the library's `Object.create(null)`), a 25-column tuple was a hash table to fill and to read.
 * Made by a constructor per column list whose prototype has no properties and no prototype, so, as
 * the library's, the tuple has nothing but its columns (a column named `__proto__` included).
 */
const tupleMakers = new WeakMap<{ name: string }[], (values: unknown[]) => Tuple>();
function tupleMaker(columns: { name: string }[]): (values: unknown[]) => Tuple {
  let make = tupleMakers.get(columns);
  if (!make) {
    const Ctor = new Function('v', columns.map((c, i) => `this[${JSON.stringify(c.name)}] = v[${i}];`).join('\n')) as unknown as { new (v: unknown[]): Tuple; prototype: object };
    Ctor.prototype = Object.create(null);
    make = (values) => new Ctor(values);
    tupleMakers.set(columns, make);
  }
  return make;
}

const truncated = () => new Error('pgoutput: unexpected end of message in a tuple');

export class TextPgoutputPlugin extends PgoutputPlugin {
  constructor(options: ConstructorParameters<typeof PgoutputPlugin>[0]) {
    super(options);
    (this as unknown as { parser: { readTuple: typeof readTextTuple } }).parser.readTuple = readTextTuple;
  }
}

export type { Pgoutput };
