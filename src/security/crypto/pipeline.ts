/**
 * Field encryption of one pipeline: which columns are encrypted (tables[].encrypt), and the three
 * places that touch them:
 *  - capture (src/capture/capture.ts) seals every change before it is encoded: the encrypted
 *    columns' values become sl1 ciphertexts (./field-cipher.ts) and their schema type text, so no
 *    change topic, dead letter, replay, log line or report downstream of capture holds the plaintext;
 *  - row hashes (processor and applier) replace each encrypted value by a keyed HMAC of its
 *    plaintext, so equal plaintexts under different nonces hash equal, and a target row holding the
 *    ciphertext or (decrypt: true) the plaintext compares with the change;
 *  - a target with `decrypt: true` gets the plaintext, decrypted by DecryptingSink at the last moment
 *    (inside the write), so a record that fails and is dead-lettered still holds the ciphertext.
 * One instance per pipeline and config (pipelineCrypto() caches it); it holds the keyring in memory.
 */
import type { Logger } from 'pino';
import { setColumn, type ChangeEvent, type Decided, type Row, type Value } from '../../core/envelope.js';
import { fatal, SynclineError } from '../../core/errors.js';
import { rowHash } from '../../core/hash.js';
import type { ColumnType } from '../../core/types.js';
import type { FailedRecord, GuardedWrite, Sink, SinkRecord, TargetRows, WriteResult } from '../../sink/sink.js';
import { decryptValue, encryptValue, isCiphertext, ValueHasher, type FieldContext } from './field-cipher.js';
import { loadKeyring, type Keyring, type KeyringSource } from './keyring.js';

/** The config this module reads (a SynclineConfig has it). */
export interface EncryptionConfigView {
  topicPrefix: string;
  encryption?: KeyringSource;
  pipelines: Record<string, { tables: { source: string; target?: string; key?: string[]; columns?: Record<string, string>; encrypt?: string[]; conflict?: { strategy: string; field: string } }[]; target: unknown }>;
}

interface TargetTable {
  source: string;
  /** target column → source column, for the encrypted ones */
  encrypted: Map<string, string>;
  /** target column → source column, every renamed or not (for key columns) */
  toSource: (c: string) => string;
}

/** The canonical-value type an encrypted column has in the change topics: text, remembering the source's. */
export function sealedType(t: ColumnType): ColumnType {
  return t.encrypted ? t : { kind: 'string', pgType: 'text', encrypted: { pgType: t.pgType, plain: t } };
}

/** The source's own column types again (for reading the source: a backfill's chunks). */
export function unsealColumns<C extends { name: string; type: ColumnType }>(columns: C[]): C[] {
  return columns.some((c) => c.type.encrypted) ? columns.map((c) => (c.type.encrypted ? { ...c, type: c.type.encrypted.plain } : c)) : columns;
}

export class PipelineCrypto {
  private readonly bySource = new Map<string, Set<string>>();
  private readonly byTarget = new Map<string, TargetTable>();
  private readonly hasher: ValueHasher;
  readonly decrypt: boolean;

  /** `scope`: the pipeline's change-topic prefix (the AAD's first part, see FieldContext). */
  constructor(readonly pipeline: string, readonly scope: string, readonly ring: Keyring, tables: EncryptionConfigView['pipelines'][string]['tables'], target: unknown) {
    this.hasher = new ValueHasher(ring);
    this.decrypt = (target as { decrypt?: boolean }).decrypt === true;
    for (const t of tables) {
      if (!t.encrypt || t.encrypt.length === 0) continue;
      const cols = new Set(t.encrypt);
      this.bySource.set(t.source, cols);
      const rename = (c: string) => t.columns?.[c] ?? c;
      const back = new Map(Object.entries(t.columns ?? {}).map(([s, d]) => [d, s]));
      this.byTarget.set(t.target ?? t.source, { source: t.source, encrypted: new Map([...cols].map((c) => [rename(c), c])), toSource: (c) => back.get(c) ?? c });
    }
  }

  /** Encrypted source columns of a source table (canonical name); undefined: none. */
  columnsOf(sourceTable: string): ReadonlySet<string> | undefined {
    return this.bySource.get(sourceTable);
  }

  /**
   * Start checks of a table as the source describes it: every encrypted column exists and is not a
   * key column (the key is the Kafka key and the AAD's anchor).
   */
  checkTable(sourceTable: string, columns: string[], key: string[]): void {
    const enc = this.bySource.get(sourceTable);
    if (!enc) return;
    for (const c of enc) {
      if (!columns.includes(c)) throw fatal('ENCRYPT_COLUMN_UNKNOWN', `pipeline ${this.pipeline}: tables[${sourceTable}].encrypt names column ${c}, which ${sourceTable} does not have (columns: ${columns.join(', ')})`);
      if (key.includes(c)) throw fatal('ENCRYPT_KEY_COLUMN', `pipeline ${this.pipeline}: tables[${sourceTable}].encrypt names key column ${c}: key columns cannot be encrypted (they are the Kafka key and bind each ciphertext to its row)`);
    }
  }

  /** The table's columns as the change topic carries them (encrypted ones become text). */
  sealColumns<C extends { name: string; type: ColumnType }>(sourceTable: string, columns: C[]): C[] {
    const enc = this.bySource.get(sourceTable);
    if (!enc) return columns;
    return columns.map((c) => (enc.has(c.name) ? { ...c, type: sealedType(c.type) } : c));
  }

  /** The change with its encrypted values replaced by ciphertexts (a new event; the input is left alone). */
  sealEvent(sourceTable: string, key: Row, e: ChangeEvent): ChangeEvent {
    const enc = this.bySource.get(sourceTable);
    if (!enc || (e.after === null && e.before === null)) return e;
    const seal = (row: Row | null): Row | null => {
      if (!row) return row;
      let out: Row | null = null;
      for (const c of enc) {
        const v = row[c];
        if (v === undefined || v === null) continue;
        out ??= { ...row };
        setColumn(out, c, encryptValue(this.ring, { scope: this.scope, table: sourceTable, column: c, key }, v));
      }
      return out ?? row;
    };
    return { ...e, before: seal(e.before), after: seal(e.after) };
  }

  /** `key`: the row's key (target names). */
  private contextOf(t: TargetTable, key: Row, column: string): FieldContext {
    const k: Row = {};
    for (const c of Object.keys(key)) k[t.toSource(c)] = key[c] ?? null;
    return { scope: this.scope, table: t.source, column, key: k };
  }

  /**
   * The row hash of a target table's row (target column names), `key` its key row: each
   * encrypted column's value is replaced by the HMAC of its plaintext (decrypted when it is a
   * ciphertext). strict (a change's values): a ciphertext that does not decrypt throws its poison or
   * fatal error; lenient (a row read from the target): it is hashed as it is (it then differs).
   * undefined when the table has no encrypted column (use rowHash).
   */
  hasherFor(targetTable: string, strict: boolean): ((row: Row, key: Row) => string) | undefined {
    const t = this.byTarget.get(targetTable);
    if (!t) return undefined;
    return (row, key) => {
      const out: Row = { ...row };
      for (const [col, src] of t.encrypted) {
        const v = row[col];
        if (v === undefined || v === null) continue;
        let plain: Value = v;
        if (isCiphertext(v)) {
          try {
            plain = decryptValue(this.ring, this.contextOf(t, key, src), v);
          } catch (err) {
            if (strict || (err as SynclineError).kind === 'fatal') throw err;
            setColumn(out, col, 'x:' + v);
            continue;
          }
        }
        setColumn(out, col, this.hasher.hmac(this.pipeline, t.source, src, plain));
      }
      return rowHash(out);
    };
  }

  /** Encrypted columns of a target table (target names); undefined: none. */
  encryptedColumns(targetTable: string): ReadonlySet<string> | undefined {
    const t = this.byTarget.get(targetTable);
    return t ? new Set(t.encrypted.keys()) : undefined;
  }

  /**
   * A copy of a target table's row with the encrypted values among `columns` (all encrypted ones when
   * absent) decrypted: in memory only, for a decision that needs the plaintext (validation rules,
   * the latest-timestamp comparison), never to be put into a record, message, log line or error.
   * `key`: the row's key (target names). A value that is not a ciphertext (a decrypting target's
   * row) is taken as it is. Errors are decryptValue's (never with the value): a missing or wrong key
   * fatal (naming its id), a moved or altered ciphertext poison (naming table, column and key).
   */
  openRow(targetTable: string, row: Row, key: Row, columns?: Iterable<string>): Row {
    const t = this.byTarget.get(targetTable);
    if (!t) return row;
    let out: Row | null = null;
    for (const col of columns ?? t.encrypted.keys()) {
      const src = t.encrypted.get(col);
      const v = row[col];
      if (src === undefined || !isCiphertext(v)) continue;
      out ??= { ...row };
      setColumn(out, col, decryptValue(this.ring, this.contextOf(t, key, src), v));
    }
    return out ?? row;
  }

  /**
   * openRow for a comparison that must not fail on a foreign value (the manual-conflict diff): every
   * encrypted value decrypted; one that does not decrypt (poison: a ciphertext of another row) stays
   * as it is. A missing or wrong key still throws (fatal, naming its id).
   */
  openRowLenient(targetTable: string, row: Row, key: Row): Row {
    const t = this.byTarget.get(targetTable);
    if (!t) return row;
    let out: Row | null = null;
    for (const [col, src] of t.encrypted) {
      const v = row[col];
      if (!isCiphertext(v)) continue;
      try {
        const plain = decryptValue(this.ring, this.contextOf(t, key, src), v);
        out ??= { ...row };
        setColumn(out, col, plain);
      } catch (err) {
        if ((err as SynclineError).kind === 'fatal') throw err;
      }
    }
    return out ?? row;
  }

  /**
   * A copy of a target table's row with the plaintext values of its encrypted columns sealed (under
   * the active key, for its row); ciphertexts and nulls stay. For rows read back from a `decrypt:
   * true` target before they go where only ciphertexts may be: a conflict dead letter, the
   * last-synced row in Redis, the merged row of a resolve in the actions topic.
   */
  sealRow(targetTable: string, row: Row, key: Row): Row {
    const t = this.byTarget.get(targetTable);
    if (!t) return row;
    let out: Row | null = null;
    for (const [col, src] of t.encrypted) {
      const v = row[col];
      if (v === undefined || v === null || isCiphertext(v)) continue;
      out ??= { ...row };
      setColumn(out, col, encryptValue(this.ring, this.contextOf(t, key, src), v));
    }
    return out ?? row;
  }

  /** A value of an encrypted target column encrypted again (under the active key) for its row: a value validation coerced. */
  sealValue(targetTable: string, column: string, value: Value, key: Row): Value {
    const t = this.byTarget.get(targetTable);
    const src = t?.encrypted.get(column);
    if (!t || src === undefined || value === null) return value;
    return encryptValue(this.ring, this.contextOf(t, key, src), value);
  }

  /** Row hash (lenient) for the applier: any target table; `key` the row's key (target names). */
  rowHash(targetTable: string, row: Row, key: Row): string {
    const h = this.hasherFor(targetTable, false);
    return h ? h(row, key) : rowHash(row);
  }

  /** A copy of the record with its encrypted values decrypted (the record itself when it has none). */
  decryptRecord(r: SinkRecord): SinkRecord {
    const t = this.byTarget.get(r.table);
    if (!t || !r.values) return r;
    let values: Row | null = null;
    for (const [col, src] of t.encrypted) {
      const v = r.values[col];
      if (!isCiphertext(v)) continue;
      values ??= { ...r.values };
      values[col] = decryptValue(this.ring, this.contextOf(t, r.key, src), v);
    }
    return values ? { ...r, values } : r;
  }
}

const cache = new WeakMap<object, Map<string, PipelineCrypto | null>>();

/**
 * The pipeline's field encryption, or undefined when none of its tables encrypts a column. The
 * keyring is loaded once per config (a missing or malformed key is a fatal error naming it).
 */
export function pipelineCrypto(config: EncryptionConfigView, name: string, env: NodeJS.ProcessEnv = process.env): PipelineCrypto | undefined {
  let m = cache.get(config);
  if (!m) cache.set(config, (m = new Map()));
  if (m.has(name)) return m.get(name) ?? undefined;
  const p = config.pipelines[name];
  const wants = p?.tables.some((t) => (t.encrypt?.length ?? 0) > 0) === true;
  if (!p || !wants) {
    m.set(name, null);
    return undefined;
  }
  if (!config.encryption) throw fatal('ENCRYPTION_NOT_CONFIGURED', `pipeline ${name}: tables encrypt columns but the config has no encryption section (encryption: { activeKey: <id> }, keys in SYNCLINE_ENCRYPTION_KEYS)`);
  const pc = new PipelineCrypto(name, (p as { changeTopicPrefix?: string }).changeTopicPrefix ?? config.topicPrefix, keyringOf(config), p.tables, p.target);
  m.set(name, pc);
  return pc;
}

/**
 * What the audit trail records of a config's field encryption with every `config.loaded` (ids only,
 * never a key): the active and hash key ids and, when a pipeline encrypts columns (the keyring is
 * loaded then anyway), the ids in the keyring. A key rotation shows as a new `activeKey` (or a new id
 * in `keyIds`) between two entries. undefined: no encryption section.
 */
export function encryptionAudit(config: EncryptionConfigView): { activeKey: string; hashKey: string; keyIds: string[] | null } | undefined {
  const e = config.encryption as (KeyringSource & { activeKey?: string; hashKey?: string }) | undefined;
  if (!e) return undefined;
  const used = Object.values(config.pipelines).some((p) => p.tables.some((t) => (t.encrypt?.length ?? 0) > 0));
  const ring = used ? keyringOf(config) : undefined;
  return { activeKey: ring?.activeId ?? String(e.activeKey), hashKey: ring?.hashId ?? String(e.hashKey ?? e.activeKey), keyIds: ring ? [...ring.ids].sort() : null };
}

const rings = new WeakMap<object, Keyring>();
function keyringOf(config: EncryptionConfigView): Keyring {
  let r = rings.get(config);
  if (!r) rings.set(config, (r = loadKeyring(config.encryption!)));
  return r;
}

/**
 * A target with `decrypt: true`: every record is decrypted just before the inner sink writes it. A
 * record that cannot be (moved or altered ciphertext: poison) is reported failed, naming table,
 * column and key, and the rest is written; a missing or wrong key (fatal) stops the stage.
 */
export class DecryptingSink implements Sink {
  writeGuarded?: (g: GuardedWrite) => Promise<WriteResult>;
  republish?: (table: string, keys: Row[], over: Decided) => Promise<void>;
  republishDelete?: (table: string, rows: { key: Row; guard: Row }[], tsMs: number) => Promise<Row[]>;
  ensureTable?: (record: SinkRecord) => Promise<void>;
  historyInTx?: Sink['historyInTx'];
  historyBaseline?: Sink['historyBaseline'];

  constructor(readonly inner: Sink, private readonly crypto: PipelineCrypto, private readonly log?: Logger) {
    if (inner.writeGuarded) {
      this.writeGuarded = async (g) => {
        let failed: FailedRecord[] = [];
        let back = new Map<SinkRecord, SinkRecord>();
        const decide = async (rows: TargetRows) => {
          const out = this.open(await g.decide(rows));
          failed = out.failed;
          back = out.back;
          return out.plain;
        };
        const res = await this.inner.writeGuarded!({ ...g, decide });
        return { failed: [...failed, ...res.failed.map((f) => ({ ...f, record: back.get(f.record) ?? f.record }))] };
      };
    }
    if (inner.republish) this.republish = (table, keys, over) => this.inner.republish!(table, keys, over);
    if (inner.republishDelete) this.republishDelete = (table, rows, tsMs) => this.inner.republishDelete!(table, rows, tsMs);
    if (inner.ensureTable) this.ensureTable = (record) => this.inner.ensureTable!(record);
    if (inner.historyInTx) this.historyInTx = (h) => this.inner.historyInTx!(h);
    if (inner.historyBaseline) this.historyBaseline = (table, keyColumns, statements) => this.inner.historyBaseline!(table, keyColumns, statements);
  }

  /** Decrypted copies; `back` maps each copy to the record it was made from (the applier knows those). */
  private open(batch: SinkRecord[]): { plain: SinkRecord[]; failed: FailedRecord[]; back: Map<SinkRecord, SinkRecord> } {
    const plain: SinkRecord[] = [];
    const failed: FailedRecord[] = [];
    const back = new Map<SinkRecord, SinkRecord>();
    for (const r of batch) {
      try {
        const p = this.crypto.decryptRecord(r);
        back.set(p, r);
        plain.push(p);
      } catch (err) {
        if (!(err instanceof SynclineError) || err.kind !== 'poison') throw err;
        this.log?.warn({ table: r.table, column: err.column, code: err.code, position: r.position }, 'sink.decrypt.failed: record dead-lettered (its ciphertext does not belong to its row)');
        failed.push({ record: r, error: err });
      }
    }
    return { plain, failed, back };
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  async writeBatch(batch: SinkRecord[]): Promise<WriteResult> {
    const { plain, failed, back } = this.open(batch);
    const res = plain.length > 0 ? await this.inner.writeBatch(plain) : { failed: [] };
    return { failed: [...failed, ...res.failed.map((f) => ({ ...f, record: back.get(f.record) ?? f.record }))] };
  }

  readRows(table: string, keys: Row[]): Promise<Map<string, Row>> {
    return this.inner.readRows(table, keys);
  }

  ping(): Promise<void> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
