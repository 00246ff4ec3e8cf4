/**
 * JSON for canonical row values (see core/hash.ts), with tags for what JSON cannot hold exactly:
 * {"$n":"123"} bigint, {"$b":"base64"} bytes, {"$f":"NaN"} non-finite floats. A canonical Value is
 * never an object, so a one-key object with one of these names is unambiguous. Used by the apply
 * topic, the last-synced rows in Redis and the conflict details of dead letters.
 */
function replacer(this: unknown, k: string, v: unknown): unknown {
  const raw = (this as Record<string, unknown>)[k];
  if (typeof raw === 'bigint') return { $n: raw.toString() };
  if (Buffer.isBuffer(raw)) return { $b: raw.toString('base64') };
  if (typeof raw === 'number' && !Number.isFinite(raw)) return { $f: String(raw) };
  return v;
}

function reviver(_k: string, v: unknown): unknown {
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1) {
      if (typeof o.$n === 'string') return BigInt(o.$n);
      if (typeof o.$b === 'string') return Buffer.from(o.$b, 'base64');
      if (typeof o.$f === 'string') return Number(o.$f);
    }
  }
  return v;
}

export function stringifyTagged(v: unknown, space?: number): string {
  return JSON.stringify(v, replacer, space);
}

export function parseTagged(text: string): unknown {
  return JSON.parse(text, reviver);
}
