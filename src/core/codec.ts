/**
 * Avro in the Confluent wire format (magic byte 0, 4-byte schema id, Avro body) through a
 * Confluent-compatible schema registry. Subjects follow TopicNameStrategy: `<topic>-key`,
 * `<topic>-value`, with BACKWARD compatibility. Registration is cached by schema text, so a schema
 * is registered once per process; decoding caches writer schemas by id.
 */
import { audit } from '../security/audit/recorder.js';
import { SchemaRegistry, SchemaType } from '@kafkajs/confluent-schema-registry';
import type avsc from 'avsc';
import { avroOptions, decodeFailurePath } from './avro.js';
import { poison, retriable, fatal, type SynclineError } from './errors.js';
import { tlsFailure } from './errors.js';
import { registryAccess, type FetchLike, type RegistryConnection } from './registry-http.js';

/** Bytes of one slab encodeSync writes messages into. */
const ENCODE_SLAB = 64 * 1024;

export class AvroCodec {
  readonly registry: SchemaRegistry;
  private readonly ids = new Map<string, Promise<number>>();
  /**
   * Parsed Avro types by schema id (those this process registered, and writer schemas it decoded),
   * so encoding and decoding are synchronous: no registry client call, no await per record.
   */
  private readonly types = new Map<number, avsc.Type>();
  /** Where encodeSync writes messages (slabAt: the first free byte). */
  private slab = Buffer.allocUnsafeSlow(ENCODE_SLAB);
  private slabAt = 0;

  readonly url: string;
  /** fetch() with the registry's TLS and credentials (./registry-http.ts). */
  private readonly fetch: FetchLike;

  /** `registry`: the config's schemaRegistry section (https CA, basic auth), or only its URL. */
  constructor(registry: string | RegistryConnection) {
    const access = registryAccess(registry, (msg) => process.emitWarning(msg, { code: 'SYNCLINE_TLS_UNVERIFIED' }));
    this.url = access.url;
    this.fetch = access.fetch;
    this.registry = new SchemaRegistry(
      { host: access.url, retry: { retries: 5, initialRetryTimeInSecs: 0.2, maxRetryTimeInSecs: 3 }, ...(access.agent ? { agent: access.agent } : {}), ...(access.auth ? { auth: access.auth } : {}) },
      { forSchemaOptions: avroOptions } as never,
    );
  }

  /** Register (or look up) a schema under a subject; returns its global id. */
  register(subject: string, schema: object): Promise<number> {
    const text = JSON.stringify(schema);
    const cacheKey = subject + '\u0000' + text;
    let id = this.ids.get(cacheKey);
    if (!id) {
      const register = () => this.registry.register({ type: SchemaType.AVRO, schema: text }, { subject, compatibility: 'BACKWARD' } as never);
      id = register()
        .catch(async (err: unknown) => {
          // The client registers a new subject, then sets its compatibility in a second call. A
          // process killed in between leaves the subject at the registry's default level, and every
          // later registration is refused ("Compatibility does not match the configuration
          // (BACKWARD != NONE)"): the pipeline would never start again. Finish that second call.
          const e = err as { name?: string; message?: string };
          if (e?.name !== 'ConfluentSchemaRegistryCompatibilityError' || !/\(BACKWARD != NONE\)/.test(e.message ?? '')) throw err;
          await (this.registry as unknown as { api: { Subject: { updateConfig(a: object): Promise<unknown> } } }).api.Subject.updateConfig({ subject, body: { compatibility: 'BACKWARD' } });
          return register();
        })
        .then(async (r) => {
          audit.record({ action: 'schema.registered', object: `subject:${subject}`, details: { subject, schemaId: r.id } });
          if (!this.types.has(r.id)) this.types.set(r.id, (await this.registry.getSchema(r.id)) as unknown as avsc.Type);
          return r.id;
        })
        .catch((err: unknown) => {
          this.ids.delete(cacheKey);
          const e = err as { status?: number; message?: string };
          if (e?.status === 409 || /compatib/i.test(e?.message ?? '')) {
            throw fatal('SCHEMA_INCOMPATIBLE', `schema for subject ${subject} is not BACKWARD compatible with the registered one: ${e?.message}`, err);
          }
          const tls = tlsFailure(err);
          if (tls) throw fatal('REGISTRY_TLS', `schema registry at ${this.url} (schemaRegistry.url): cannot register schema for ${subject}: ${tls} (schemaRegistry.caFile)`, err);
          if (e?.status === 401 || e?.status === 403) throw fatal('REGISTRY_AUTH', `schema registry at ${this.url} (schemaRegistry.url) refused the credentials (schemaRegistry.username/password): ${e.status} ${e?.message ?? ''}`, err);
          throw retriable('REGISTRY_UNAVAILABLE', `cannot register schema for ${subject} at ${this.url}: ${e?.message ?? String(err)}`, err);
        });
      this.ids.set(cacheKey, id);
    }
    return id;
  }

  /**
   * The registry's verdict on `schema` as the next version of `subject` under the subject's
   * compatibility rule (BACKWARD): POST /compatibility/subjects/{subject}/versions/latest (Apicurio's
   * ccompat API answers it). A subject with no version yet is compatible.
   */
  async compatible(subject: string, schema: object): Promise<{ compatible: boolean; reason?: string }> {
    const url = `${this.url.replace(/\/+$/, '')}/compatibility/subjects/${encodeURIComponent(subject)}/versions/latest?verbose=true`;
    let res: Response;
    try {
      res = await this.fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ schema: JSON.stringify(schema) }) });
    } catch (err) {
      const tls = tlsFailure(err);
      if (tls) throw fatal('REGISTRY_TLS', `schema registry at ${this.url} (schemaRegistry.url): cannot check the compatibility of ${subject}: ${tls} (schemaRegistry.caFile)`, err);
      throw retriable('REGISTRY_UNAVAILABLE', `cannot check the compatibility of ${subject} at ${this.url}: ${(err as Error).message}`, err);
    }
    const text = await res.text();
    if (res.status === 404) return { compatible: true };
    if (!res.ok) throw retriable('REGISTRY_UNAVAILABLE', `registry answered ${res.status} to the compatibility check of ${subject}: ${text.slice(0, 300)}`);
    const body = JSON.parse(text) as { is_compatible?: boolean; reason?: string | null; messages?: string[] };
    const reason = body.reason ?? body.messages?.join('; ') ?? undefined;
    return body.is_compatible === false ? { compatible: false, ...(reason ? { reason } : {}) } : { compatible: true };
  }

  /**
   * Register a schema the subject's BACKWARD rule refuses (a breaking change an operator will
   * decide on: the changes must still reach Kafka, nothing is lost): the subject's rule is set to
   * NONE for this one registration and back to BACKWARD after it.
   */
  async registerBreaking(subject: string, schema: object): Promise<number> {
    const config = (level: string) => this.fetch(`${this.url.replace(/\/+$/, '')}/config/${encodeURIComponent(subject)}`, {
      method: 'PUT', headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ compatibility: level }),
    }).then(async (r) => {
      if (!r.ok) throw retriable('REGISTRY_UNAVAILABLE', `registry answered ${r.status} setting the compatibility of ${subject} to ${level}: ${(await r.text()).slice(0, 300)}`);
    }, (err: unknown) => {
      throw retriable('REGISTRY_UNAVAILABLE', `cannot set the compatibility of ${subject} at ${this.url}: ${(err as Error).message}`, err);
    });
    await config('NONE');
    try {
      // Straight to the REST API: the client's register() refuses a subject whose level is not the one it asks for.
      const res = await this.fetch(`${this.url.replace(/\/+$/, '')}/subjects/${encodeURIComponent(subject)}/versions`, {
        method: 'POST', headers: { 'Content-Type': 'application/vnd.schemaregistry.v1+json' }, body: JSON.stringify({ schema: JSON.stringify(schema) }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`registry answered ${res.status}: ${text.slice(0, 300)}`);
      const r = JSON.parse(text) as { id: number };
      if (!this.types.has(r.id)) this.types.set(r.id, (await this.registry.getSchema(r.id)) as unknown as avsc.Type);
      this.ids.set(subject + '\u0000' + JSON.stringify(schema), Promise.resolve(r.id));
      return r.id;
    } catch (err) {
      throw retriable('REGISTRY_UNAVAILABLE', `cannot register schema for ${subject} at ${this.url}: ${(err as Error).message}`, err);
    } finally {
      await config('BACKWARD');
    }
  }

  /**
   * Encode synchronously with a schema registered by this codec (the capture hot path): the
   * Confluent header and the Avro body are written straight into a slab of ENCODE_SLAB bytes, and
   * the message is a view of its part of the slab (no copy out of a scratch buffer, no allocation
   * per message). Messages are short-lived (produced, then dropped), so a slab lives as long as its
   * last message; a value larger than a slab gets a slab of its own.
   */
  encodeSync(id: number, value: unknown): Buffer {
    const type = this.types.get(id);
    if (!type) throw poison('AVRO_ENCODE', `schema ${id} was not registered by this process`);
    let start = this.slabAt;
    let end: number;
    try {
      while ((end = type.encode(value, this.slab, start + 5)) < 0) {
        // Negative: how many bytes were missing. A new slab, big enough, and the value written again at its start.
        this.slab = Buffer.allocUnsafeSlow(Math.max(ENCODE_SLAB, 2 * (this.slab.length - start - end)));
        this.slabAt = start = 0;
      }
    } catch (err) {
      throw poison('AVRO_ENCODE', `value does not match schema ${id}: ${(err as Error).message}`, err);
    }
    this.slab[start] = 0;
    this.slab.writeInt32BE(id, start + 1);
    this.slabAt = end;
    return this.slab.subarray(start, end);
  }

  async encode(id: number, value: unknown): Promise<Buffer> {
    if (this.types.has(id)) return this.encodeSync(id, value);
    try {
      return await this.registry.encode(id, value);
    } catch (err) {
      throw poison('AVRO_ENCODE', `value does not match schema ${id}: ${(err as Error).message}`, err);
    }
  }

  /** The parsed Avro type of a schema id this process registered or decoded before (undefined otherwise). */
  knownType(id: number): avsc.Type | undefined {
    return this.types.get(id);
  }

  /**
   * decode() without a promise when the schema id is already known; undefined when it is not (then
   * call decode(), which asks the registry). Throws what decode() throws for undecodable input.
   */
  decodeKnown<T = unknown>(buf: Buffer | null): T | undefined {
    if (!buf || buf.length < 5) throw poison('DECODE_FAILED', `message of ${buf?.length ?? 0} bytes is not in the Confluent wire format`);
    if (buf[0] !== 0) throw poison('DECODE_FAILED', `message starts with magic byte ${buf[0]}, expected 0 (Confluent wire format)`);
    const known = this.types.get(buf.readInt32BE(1));
    if (!known) return undefined;
    try {
      return known.fromBuffer(buf.subarray(5)) as T;
    } catch (err) {
      throw undecodable(known, buf, err);
    }
  }

  /**
   * The latest schema registered under `subject`, parsed (undefined: no such subject). Capture reads
   * it once per table at start to keep what an earlier run widened (see Capture.setColumns).
   */
  async latestType(subject: string): Promise<avsc.Type | undefined> {
    return (await this.latest(subject))?.type;
  }

  /** The latest schema registered under `subject`: its id and parsed type (undefined: no such subject). */
  async latest(subject: string): Promise<{ id: number; type: avsc.Type } | undefined> {
    let id: number;
    try {
      id = await this.registry.getLatestSchemaId(subject);
    } catch (err) {
      const e = err as { status?: number; message?: string };
      if (e?.status === 404) return undefined;
      throw retriable('REGISTRY_UNAVAILABLE', `cannot read the latest schema of ${subject} at ${this.url}: ${e?.message ?? String(err)}`, err);
    }
    let type = this.types.get(id);
    if (!type) {
      type = (await this.registry.getSchema(id)) as unknown as avsc.Type;
      this.types.set(id, type);
    }
    return { id, type };
  }

  /** Decode a Confluent-framed message; undecodable input (bad magic byte, unknown id, bad body) is poison. */
  async decode<T = unknown>(buf: Buffer | null): Promise<T> {
    const known = this.decodeKnown<T>(buf);
    if (known !== undefined) return known;
    const b = buf!; // decodeKnown threw for anything shorter than the header
    try {
      const id = b.readInt32BE(1);
      const type = (await this.registry.getSchema(id)) as unknown as avsc.Type;
      if (!this.types.has(id)) this.types.set(id, type);
      try {
        return type.fromBuffer(b.subarray(5)) as T;
      } catch (err) {
        throw undecodable(type, b, err);
      }
    } catch (err) {
      if ((err as SynclineError).code === 'DECODE_FAILED') throw err;
      const e = err as { status?: number; message?: string; name?: string };
      if (e?.status === 404) throw poison('SCHEMA_UNKNOWN', `schema id ${b.readInt32BE(1)} is not in the registry`, err);
      if (e?.status && e.status >= 500) throw retriable('REGISTRY_UNAVAILABLE', `registry error ${e.status}: ${e.message}`, err);
      if (/ECONNREFUSED|ETIMEDOUT|ECONNRESET|socket hang up/i.test(e?.message ?? '')) throw retriable('REGISTRY_UNAVAILABLE', `registry unreachable: ${e.message}`, err);
      throw poison('DECODE_FAILED', `cannot decode message with schema id ${b.readInt32BE(1)}: ${e?.message ?? String(err)}`, err);
    }
  }
}

/**
 * A body its writer schema cannot decode: poison DECODE_FAILED, naming the column where decoding
 * broke when there is one (error path only: the body is walked field by field to find it).
 */
function undecodable(type: avsc.Type, buf: Buffer, err: unknown): SynclineError {
  const path = decodeFailurePath(type, buf, 5);
  // An envelope's columns are those of its before/after rows; a key's are its fields.
  const envelope = ((type as unknown as { fields?: { name: string }[] }).fields ?? []).some((f) => f.name === 'source');
  const row = path[0] === 'before' || path[0] === 'after' ? path[0] : undefined;
  const column = envelope ? (row ? path[1] : undefined) : path[0];
  const where = column !== undefined ? ` in column ${column}${row ? ` (${row})` : ''}` : path.length > 0 ? ` in field ${path.join('.')}` : '';
  const e = poison('DECODE_FAILED', `cannot decode message with schema id ${buf.readInt32BE(1)}${where}: ${(err as Error).message}`, err);
  if (column !== undefined) e.column = column;
  return e;
}
