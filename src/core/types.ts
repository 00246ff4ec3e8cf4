/**
 * The pipeline's column types and canonical values, the same for every connector: a source maps its
 * columns to a `ColumnType` and its values to these canonical forms (connectors/postgres/pgtypes.ts
 * does it for PostgreSQL), the Avro schemas are built from them (core/avro.ts), and sinks write them.
 *
 * Canonical values (the `Value` of src/core/envelope.ts) by kind:
 *   int        number                     (int2, int4)
 *   long       bigint                     (int8)
 *   decimal    string as the source printed it, e.g. '12.50', 'NaN'  (numeric(p,s))
 *   vdecimal   string as printed, e.g. '0.000000000000000000000000000001', 'NaN', 'Infinity'  (numeric)
 *   float      number, the exact float4 value (Math.fround of the printed text), NaN/±Infinity/-0 kept
 *   double     number, the exact float8 value, NaN/±Infinity/-0 kept
 *   string     string (text, varchar(n), char(n) with its blank padding, name, citext)
 *   bool       boolean
 *   date       'YYYY-MM-DD', 'YYYY-MM-DD BC', years above 9999 with more digits, 'infinity', '-infinity'
 *   timestamp  'YYYY-MM-DDTHH:MM:SS.ffffff' (always 6 fractional digits), ' BC' suffix, 'infinity', '-infinity'
 *   timestamptz 'YYYY-MM-DDTHH:MM:SS.ffffffZ' in UTC (always 6 digits), ' BC' suffix, 'infinity', '-infinity'
 *   uuid       lower-case string
 *   json       string exactly as printed (json keeps the input text, jsonb PostgreSQL's normal form)
 *   bytes      Buffer
 *   array      Value[] (multi-dimensional arrays as nested Value[]); elements by the item type
 *   enum       string (the label)
 *   text       string: the source's text form of any other type (interval, inet, money, time, point,
 *              ranges, composites, …); written back through the type's input function, so it round-trips.
 *
 * `ColumnType.pgType` is the column's type as a PostgreSQL CREATE TABLE would spell it (targets that
 * create tables map it to their own), whatever the source system.
 */
import { poison } from './errors.js';

export type ColumnKind =
  | 'int'
  | 'long'
  | 'decimal'
  | 'vdecimal'
  | 'float'
  | 'double'
  | 'string'
  | 'bool'
  | 'date'
  | 'timestamp'
  | 'timestamptz'
  | 'uuid'
  | 'json'
  | 'bytes'
  | 'array'
  | 'enum'
  | 'text';

export type ColumnType = {
  kind: ColumnKind;
  /** SQL type as it would appear in CREATE TABLE, e.g. 'numeric(12,2)', 'int8', 'text[]', 'public.mood'. */
  pgType: string;
  precision?: number;
  scale?: number;
  items?: ColumnType;
  /**
   * Set on a column whose values field encryption replaced by ciphertexts (src/security/crypto/):
   * the column is then text in the change topics; `pgType` here is the source's own type.
   */
  encrypted?: { pgType: string; plain: ColumnType };
};

// ---------------------------------------------------------------------------------------------------
// Calendar arithmetic (proleptic Gregorian, astronomical years: 1 BC = year 0), as PostgreSQL does it.

/** Days since 1970-01-01 of a civil date (astronomical year). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

/** Civil date (astronomical year) of a day count since 1970-01-01. */
export function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const pad2 = (n: number) => (n < 10 ? '0' : '') + n;

/** 'YYYY-MM-DD' or 'YYYY-MM-DD BC' of an astronomical year. */
function formatDate(y: number, m: number, d: number): { date: string; bc: boolean } {
  const bc = y <= 0;
  return { date: `${String(bc ? 1 - y : y).padStart(4, '0')}-${pad2(m)}-${pad2(d)}`, bc };
}

export const DATE_RE = /^(\d{4,})-(\d\d)-(\d\d)( BC)?$/;

/** Parse a canonical/ISO date into days since 1970-01-01 (not for 'infinity'). */
export function dateToDays(s: string): number {
  const m = DATE_RE.exec(s);
  if (!m) throw poison('BAD_DATE', `'${s}' is not an ISO date`);
  const year = Number(m[1]);
  return daysFromCivil(m[4] ? 1 - year : year, Number(m[2]), Number(m[3]));
}

export function daysToDate(days: number): string {
  const [y, m, d] = civilFromDays(days);
  const f = formatDate(y, m, d);
  return f.bc ? f.date + ' BC' : f.date;
}

const TS_RE = /^(\d{4,})-(\d\d)-(\d\d)[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?(Z|[+-]\d\d(?::?\d\d(?::?\d\d)?)?)?( BC)?$/;
const US_PER_DAY = 86_400_000_000;
const BIG_US_PER_DAY = 86_400_000_000n;
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

export interface TsParts {
  days: number;
  /** Microseconds of the day (0 <= us < 86400e6). */
  us: number;
}

/** Digit value of s[i], or -1. */
function digitAt(s: string, i: number): number {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1;
}

/** Two digits at i as a number, or -1. */
function twoDigits(s: string, i: number): number {
  const a = digitAt(s, i);
  const b = digitAt(s, i + 1);
  return a < 0 || b < 0 ? -1 : a * 10 + b;
}

/**
 * The common shapes, read by position without a regex (capture parses one or more timestamps per
 * change): `YYYY-MM-DD[ T]HH:MM:SS[.f{1,6}][Z|±HH|±HH:MM|±HHMM]`. Anything else (a 5-digit year,
 * BC, an offset with seconds, garbage) returns undefined and takes the regex. Same result as the
 * regex for every string it accepts (connectors/postgres/pgtypes.test.ts compares them).
 */
function parseTimestampFast(s: string, withZone: boolean): TsParts | undefined {
  const n = s.length;
  if (n < 19 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const sep = s.charCodeAt(10);
  if (sep !== 32 && sep !== 84) return undefined;
  const y1 = twoDigits(s, 0);
  const y2 = twoDigits(s, 2);
  const mo = twoDigits(s, 5);
  const d = twoDigits(s, 8);
  const h = twoDigits(s, 11);
  const mi = twoDigits(s, 14);
  const sec = twoDigits(s, 17);
  if (y1 < 0 || y2 < 0 || mo < 0 || d < 0 || h < 0 || mi < 0 || sec < 0) return undefined;
  let i = 19;
  let frac = 0;
  if (i < n && s.charCodeAt(i) === 46) {
    i++;
    let digits = 0;
    for (; i < n && digits < 7; i++, digits++) {
      const c = digitAt(s, i);
      if (c < 0) break;
      frac = frac * 10 + c;
    }
    if (digits === 0 || digits > 6) return undefined;
    for (let k = digits; k < 6; k++) frac *= 10;
  }
  let offSec = 0;
  if (i < n) {
    const z = s.charCodeAt(i);
    if (z === 90 && i + 1 === n) i++;
    else if (z === 43 || z === 45) {
      const oh = twoDigits(s, i + 1);
      if (oh < 0) return undefined;
      let om = 0;
      const rest = n - (i + 3);
      if (rest === 2) om = twoDigits(s, i + 3);
      else if (rest === 3 && s.charCodeAt(i + 3) === 58) om = twoDigits(s, i + 4);
      else if (rest !== 0) return undefined;
      if (om < 0) return undefined;
      if (!withZone) return undefined; // the regex path says what is wrong
      offSec = (z === 45 ? -1 : 1) * (oh * 3600 + om * 60);
      i = n;
    } else return undefined;
  }
  if (i !== n) return undefined;
  return dayParts(daysFromCivil(y1 * 100 + y2, mo, d), ((h * 60 + mi) * 60 + sec) * 1_000_000 + frac - offSec * 1_000_000);
}

/** Parse timestamp text into days + microseconds of day, shifted to UTC by the offset if any. */
export function parseTimestampParts(s: string, withZone: boolean): TsParts {
  return parseTimestampFast(s, withZone) ?? parseTimestampPartsRe(s, withZone);
}

/** The same with the regex (every accepted shape); exported for the test that compares the two. */
export function parseTimestampPartsRe(s: string, withZone: boolean): TsParts {
  const m = TS_RE.exec(s);
  if (!m) throw poison('BAD_TIMESTAMP', `'${s}' is not an ISO timestamp${withZone ? ' with time zone' : ''}`);
  const year = Number(m[1]);
  const days = daysFromCivil(m[9] ? 1 - year : year, Number(m[2]), Number(m[3]));
  const frac = m[7] ? Number(m[7].padEnd(6, '0')) : 0;
  let us = ((Number(m[4]) * 60 + Number(m[5])) * 60 + Number(m[6])) * 1_000_000 + frac;
  const zone = m[8];
  if (zone && zone !== 'Z') {
    if (!withZone) throw poison('BAD_TIMESTAMP', `'${s}': timestamp without time zone has an offset`);
    const sign = zone[0] === '-' ? -1 : 1;
    const digits = zone.slice(1).replace(/:/g, '');
    const offSec = Number(digits.slice(0, 2)) * 3600 + Number(digits.slice(2, 4) || '0') * 60 + Number(digits.slice(4, 6) || '0');
    us -= sign * offSec * 1_000_000;
  }
  return dayParts(days, us);
}

/** Days + microseconds brought into 0 <= us < one day: 24:00:00 is valid PostgreSQL input; offsets move across midnight. */
function dayParts(days: number, us: number): TsParts {
  while (us < 0) {
    us += US_PER_DAY;
    days -= 1;
  }
  while (us >= US_PER_DAY) {
    us -= US_PER_DAY;
    days += 1;
  }
  return { days, us };
}

/** '00' … '59' */
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => (i < 10 ? '0' : '') + i);
/** The date part of the last day formatted (timestamps of a batch are mostly of one or two days). */
let lastDay = NaN;
let lastDate = { date: '', bc: false };

function formatTimestampParts(p: TsParts, withZone: boolean): string {
  if (p.days !== lastDay) {
    const [y, mo, d] = civilFromDays(p.days);
    lastDate = formatDate(y, mo, d);
    lastDay = p.days;
  }
  const f = lastDate;
  let rest = p.us;
  const micros = rest % 1_000_000;
  rest = (rest - micros) / 1_000_000;
  const sec = rest % 60;
  rest = (rest - sec) / 60;
  const min = rest % 60;
  const hour = (rest - min) / 60;
  const us = String(micros);
  let s = f.date + 'T' + TWO_DIGITS[hour]! + ':' + TWO_DIGITS[min]! + ':' + TWO_DIGITS[sec]! + '.' + '000000'.slice(us.length) + us;
  if (withZone) s += 'Z';
  return f.bc ? s + ' BC' : s;
}

/** Normalise timestamp text (PostgreSQL ISO output or canonical) to the canonical form. */
export function canonicalTimestamp(s: string, withZone: boolean): string {
  if (s === 'infinity' || s === '-infinity') return s;
  return formatTimestampParts(parseTimestampParts(s, withZone), withZone);
}

/** Microseconds since 1970-01-01T00:00:00 (UTC for timestamptz) of a timestamp (not for 'infinity'). */
export function timestampToMicros(s: string, withZone: boolean): bigint {
  const p = parseTimestampParts(s, withZone);
  return BigInt(p.days) * BIG_US_PER_DAY + BigInt(p.us);
}

export function microsToTimestamp(us: bigint, withZone: boolean): string {
  // Within ±2^53 (every year from −283,000 to 287,000) the arithmetic is exact in doubles.
  if (us > -MAX_SAFE_BIG && us < MAX_SAFE_BIG) {
    const n = Number(us);
    const d = Math.floor(n / US_PER_DAY);
    return formatTimestampParts({ days: d, us: n - d * US_PER_DAY }, withZone);
  }
  let days = us / BIG_US_PER_DAY;
  let rem = us - days * BIG_US_PER_DAY;
  if (rem < 0n) {
    rem += BIG_US_PER_DAY;
    days -= 1n;
  }
  return formatTimestampParts({ days: Number(days), us: Number(rem) }, withZone);
}

