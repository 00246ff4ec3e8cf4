/**
 * JSON with exact big integers. Debezium's JsonConverter (and other producers) write int64 values as
 * JSON numbers; JSON.parse turns those beyond 2^53 into the nearest double (9223372036854775807 →
 * 9223372036854775808), which an int8 column then refuses (or a numeric gets wrong). Here integer
 * literals that a double cannot hold exactly are read as bigints; everything else is JSON.parse's.
 * Used by the sources that read JSON: the Kafka-topic source (Debezium's JsonConverter writes int64 as
 * JSON numbers) and the HTTP source (an API's ids beyond 2^53).
 */

const MARK = '\u0000syncline-int:';

/** JSON.parse, but an integer literal beyond Number's exact integers becomes a bigint. Throws as JSON.parse does. */
export function parseJsonExact(text: string): unknown {
  // A text that already holds the mark (as an escape: raw control characters are not JSON) is parsed plainly.
  if (text.includes('\\u0000syncline-int:')) return JSON.parse(text);
  let out = '';
  let last = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: skip to its closing quote
      for (i++; i < n && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      continue;
    }
    if (c !== 0x2d && (c < 0x30 || c > 0x39)) continue;
    let j = c === 0x2d ? i + 1 : i;
    while (j < n && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x39) j++;
    const next = text[j];
    if (next === '.' || next === 'e' || next === 'E') {
      while (j < n && /[0-9eE+.-]/.test(text[j]!)) j++;
    } else if (j - i > 15 && !Number.isSafeInteger(Number(text.slice(i, j)))) {
      out += text.slice(last, i) + `"\\u0000syncline-int:${text.slice(i, j)}"`; // MARK, as a JSON escape
      last = j;
    }
    i = j - 1;
  }
  if (last === 0) return JSON.parse(text);
  out += text.slice(last);
  return JSON.parse(out, (_k, v: unknown) => (typeof v === 'string' && v.startsWith(MARK) ? BigInt(v.slice(MARK.length)) : v));
}

/** JSON.stringify writing bigints as their exact integer literals. */
export function stringifyJsonExact(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? `${MARK}${x}` : x)).replace(/"\\u0000syncline-int:(-?\d+)"/g, '$1');
}
