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
import { LogicalReplicationService, PgoutputPlugin, type Pgoutput } from 'pg-logical-replication';

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

/** What ReplicationService uses of the library's service (JS fields its typings call private). */
interface ServiceInternals {
  client(): Promise<[unknown, ReplicationConnection]>;
  _lastLsn: string | null;
  _stop: boolean;
  checkStandbyStatus(enable: boolean): void;
}
interface ReplicationConnection {
  once(event: 'replicationStart', fn: () => void): void;
  on(event: 'copyData', fn: (msg: { chunk: Buffer }) => void): void;
}

const hex = (n: number) => n.toString(16).toUpperCase();

/**
 * The library's replication service with its own handler of the stream's CopyData messages (its
 * subscribe(), the same start and stop, the same 'X/Y' positions): the library emits every
 * XLogData message through an EventEmitter2 event and an acknowledgement promise per message even
 * with automatic acknowledgement off (≈ 2 % of capture's CPU with 25-column rows). Ours calls
 * `onData` and `onKeepalive` directly, and a message it cannot parse fails the stream ('error'
 * event, nothing after it delivered) instead of throwing out of the connection's socket handler.
 */
export class ReplicationService extends LogicalReplicationService {
  /** XLogData: the WAL position of its start and the parsed message. */
  onData: (lsn: string, msg: Pgoutput.Message) => void = () => undefined;
  /** Primary keepalive: the server's end of WAL and whether it asks for a reply now. */
  onKeepalive: (lsn: string, reply: boolean) => void = () => undefined;
  /**
   * Set when a message could not be parsed or handled: no later message of this subscription is
   * delivered (a change after a lost one must not reach Kafka, whose positions say what was produced).
   */
  private broken = false;

  override async subscribe(plugin: TextPgoutputPlugin, slotName: string, uptoLsn?: string): Promise<this> {
    const self = this as unknown as ServiceInternals;
    const [client, connection] = await self.client();
    this.broken = false;
    self._lastLsn = uptoLsn || self._lastLsn;
    connection.once('replicationStart', () => {
      self._stop = false;
      this.emit('start');
      self.checkStandbyStatus(true);
    });
    connection.on('copyData', ({ chunk }) => {
      if (this.broken) return;
      const tag = chunk[0];
      if (tag !== 0x77 && tag !== 0x6b) return; // neither XLogData nor keepalive: nothing PostgreSQL sends here
      const lsn = hex(chunk.readUInt32BE(1)) + '/' + hex(chunk.readUInt32BE(5));
      try {
        if (tag === 0x77) this.onData(lsn, plugin.parse(chunk.subarray(25)) as Pgoutput.Message);
        else this.onKeepalive(lsn, chunk[17] !== 0);
      } catch (err) {
        this.broken = true;
        this.emit('error', err);
        return;
      }
      self._lastLsn = lsn;
    });
    return (plugin.start(client as never, slotName, self._lastLsn || '0/00000000') as Promise<this>).catch((e: unknown) => {
      if (!self._stop || !/Connection\s+terminated/i.test(String(e))) throw e;
      return this;
    });
  }
}

export type { Pgoutput };
