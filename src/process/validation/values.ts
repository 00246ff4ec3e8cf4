/**
 * Value helpers of the validation rules, on canonical values (src/core/types.ts):
 *  - exact decimals: numeric(p,s) columns arrive as decimal strings ('12.50'), int8 as bigint; min/max,
 *    enum and the arithmetic of cross-field rules compare them exactly (`Dec`: bigint mantissa + scale),
 *    JS numbers (int4, float8) stay numbers on the fast path;
 *  - temporal keys: 'YYYY-MM-DD', 'YYYY-MM-DDTHH:MM:SS.ffffff[Z]' (also ' BC', 'infinity') → a number
 *    of milliseconds since the epoch with the microseconds as fraction (a timestamp without time zone is
 *    read as UTC, as the pipeline carries it);
 *  - ISO-8601 durations (`-P1Y`, `P30D`, `-PT12H`) resolved against a given time, calendar-aware in UTC.
 */
import { civilFromDays as pgCivilFromDays, daysFromCivil } from '../../core/types.js';

// ---------------------------------------------------------------------------------------------
// Exact decimals

/** value = m / 10^s (s ≥ 0). */
export class Dec {
  constructor(
    readonly m: bigint,
    readonly s: number,
  ) {}

  toString(): string {
    const neg = this.m < 0n;
    let digits = (neg ? -this.m : this.m).toString();
    if (this.s > 0) {
      digits = digits.padStart(this.s + 1, '0');
      digits = `${digits.slice(0, -this.s)}.${digits.slice(-this.s)}`.replace(/\.?0+$/, '');
    }
    return (neg ? '-' : '') + digits;
  }
}

const POW10: bigint[] = [1n];
export function pow10(n: number): bigint {
  for (let i = POW10.length; i <= n; i++) POW10.push(POW10[i - 1]! * 10n);
  return POW10[n]!;
}

const DECIMAL = /^([-+])?(\d*)(?:\.(\d*))?(?:[eE]([-+]?\d+))?$/;

/**
 * A decimal string → Dec; 'NaN', 'Infinity', '-Infinity' (numeric's special values) → number;
 * anything else (not a number) → undefined.
 */
export function parseDecimal(s: string): Dec | number | undefined {
  const m = DECIMAL.exec(s);
  if (!m) {
    if (s === 'NaN') return NaN;
    if (s === 'Infinity' || s === '+Infinity') return Infinity;
    if (s === '-Infinity') return -Infinity;
    return undefined;
  }
  const int = m[2] ?? '';
  const frac = m[3] ?? '';
  if (int === '' && frac === '') return undefined;
  const exp = m[4] ? Number(m[4]) : 0;
  if (!Number.isSafeInteger(exp) || Math.abs(exp) > 10000) return undefined;
  let mant = BigInt(int + frac || '0');
  let scale = frac.length - exp;
  if (scale < 0) {
    mant *= pow10(-scale);
    scale = 0;
  }
  return new Dec(m[1] === '-' ? -mant : mant, scale);
}

/**
 * A plain decimal string ('-12.50') with at most 15 significant digits as a double, else undefined.
 * Two such decimals compare exactly as doubles (each round-trips), so bounds and comparisons can skip
 * the exact path for the usual numeric(p,s) values.
 */
export function fastDecimal(s: string): number | undefined {
  const n = s.length;
  if (n === 0 || n > 17) return undefined;
  let i = s.charCodeAt(0) === 45 ? 1 : 0;
  let digits = 0;
  let leading = true;
  let dot = false;
  let any = false;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (dot) return undefined;
      dot = true;
      continue;
    }
    if (c < 48 || c > 57) return undefined;
    any = true;
    if (leading && c === 48) continue;
    leading = false;
    digits++;
  }
  return any && digits <= 15 ? Number(s) : undefined;
}

/** Significant digits of a number's shortest decimal form ≤ 15 (so fastDecimal comparisons with it are exact). */
export function shortDecimal(x: number): boolean {
  if (!Number.isFinite(x)) return false;
  const t = String(x);
  if (t.includes('e')) return false;
  return t.replace(/^-/, '').replace('.', '').replace(/^0+/, '').length <= 15;
}

/** number | bigint → Dec (a double through its shortest representation); non-finite numbers stay numbers. */
export function toDec(x: number | bigint | Dec): Dec | number {
  if (x instanceof Dec) return x;
  if (typeof x === 'bigint') return new Dec(x, 0);
  if (!Number.isFinite(x)) return x;
  if (Number.isSafeInteger(x)) return new Dec(BigInt(x), 0);
  return parseDecimal(String(x)) as Dec;
}

function align(a: Dec, b: Dec): [bigint, bigint, number] {
  if (a.s === b.s) return [a.m, b.m, a.s];
  if (a.s > b.s) return [a.m, b.m * pow10(a.s - b.s), a.s];
  return [a.m * pow10(b.s - a.s), b.m, b.s];
}

export function decCmp(a: Dec, b: Dec): number {
  const [x, y] = align(a, b);
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Numbers of any representation; undefined for NaN (incomparable). */
export function numCmp(a: number | bigint | Dec, b: number | bigint | Dec): number | undefined {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : a === b ? 0 : undefined;
  const x = toDec(a);
  const y = toDec(b);
  if (typeof x === 'number' || typeof y === 'number') {
    // At least one is NaN or ±Infinity.
    const nx = typeof x === 'number' ? x : 0;
    const ny = typeof y === 'number' ? y : 0;
    if (Number.isNaN(nx) || Number.isNaN(ny)) return undefined;
    if (typeof x === 'number' && typeof y === 'number') return x < y ? -1 : x > y ? 1 : 0;
    return typeof x === 'number' ? Math.sign(x) : -Math.sign(ny);
  }
  return decCmp(x, y);
}

export const DIV_SCALE = 20;

export type Num = number | bigint | Dec;

/** a op b, exact for + - * (division: 20 decimal places, truncated). Integers stay numbers while safe. */
export function arith(op: '+' | '-' | '*' | '/' | '%', a: Num, b: Num): Num | null {
  if (typeof a === 'number' && typeof b === 'number') {
    if (Number.isSafeInteger(a) && Number.isSafeInteger(b)) {
      let r: number;
      if (op === '+') r = a + b;
      else if (op === '-') r = a - b;
      else if (op === '*') r = a * b;
      else if (b === 0) return null;
      else if (op === '%') r = a % b;
      else if (a % b === 0) r = a / b;
      else r = NaN;
      if (Number.isSafeInteger(r)) return r;
    }
    if (!Number.isFinite(a) || !Number.isFinite(b)) {
      if (op === '+') return a + b;
      if (op === '-') return a - b;
      if (op === '*') return a * b;
      return b === 0 ? null : op === '/' ? a / b : a % b;
    }
  }
  const x = toDec(a);
  const y = toDec(b);
  if (typeof x === 'number' || typeof y === 'number') {
    const nx = typeof x === 'number' ? x : Number(x.toString());
    const ny = typeof y === 'number' ? y : Number(y.toString());
    if (op === '+') return nx + ny;
    if (op === '-') return nx - ny;
    if (op === '*') return nx * ny;
    return ny === 0 ? null : op === '/' ? nx / ny : nx % ny;
  }
  if (op === '*') return new Dec(x.m * y.m, x.s + y.s);
  const [p, q, s] = align(x, y);
  if (op === '+') return new Dec(p + q, s);
  if (op === '-') return new Dec(p - q, s);
  if (q === 0n) return null;
  if (op === '%') return new Dec(p % q, s);
  return new Dec((p * pow10(DIV_SCALE)) / q, DIV_SCALE);
}

export function numAbs(a: Num): Num {
  if (typeof a === 'number') return Math.abs(a);
  if (typeof a === 'bigint') return a < 0n ? -a : a;
  return a.m < 0n ? new Dec(-a.m, a.s) : a;
}

/** Canonical text of a number of any representation ('2.50' and 2.5 → '2.5'), for enum sets. */
export function numKey(x: Num): string {
  const d = toDec(x);
  return typeof d === 'number' ? String(d) : d.toString();
}

/**
 * A string that converts to a JS number without losing anything: plain decimal notation with at
 * most 15 significant digits (every such decimal round-trips through a double).
 */
export function cleanNumber(s: string): number | undefined {
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return undefined;
  const mantissa = s.replace(/^[-+]/, '').replace(/[eE].*$/, '').replace('.', '').replace(/^0+/, '').replace(/0+$/, '');
  if (mantissa.length > 15) return undefined;
  const n = Number(s);
  return Number.isFinite(n) ? n : undefined;
}

// ---------------------------------------------------------------------------------------------
// Dates and times

const DAY_MS = 86_400_000;

/** Calendar arithmetic is core/types' (the same proleptic Gregorian calendar PostgreSQL uses). */
export { daysFromCivil };
export function civilFromDays(z: number): { y: number; m: number; d: number } {
  const [y, m, d] = pgCivilFromDays(z);
  return { y, m, d };
}

const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
export function daysInMonth(y: number, m: number): number {
  return m === 2 ? (isLeap(y) ? 29 : 28) : [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1]!;
}

const TEMPORAL = /^(\d{4,})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?)?( BC)?$/;

export interface Temporal {
  /** ms since the epoch; the microseconds are the fraction. ±Infinity for 'infinity'. */
  ms: number;
  /** Only a date ('YYYY-MM-DD'). */
  dateOnly: boolean;
}

const digit = (s: string, i: number) => {
  const c = s.charCodeAt(i) - 48;
  return c >= 0 && c <= 9 ? c : -1000;
};
const num2 = (s: string, i: number) => digit(s, i) * 10 + digit(s, i + 1);

/**
 * The canonical forms of src/core/types.ts without a regular expression: 'YYYY-MM-DD',
 * 'YYYY-MM-DDTHH:MM:SS.ffffff' and the same with 'Z'. undefined: not one of those (use the regex).
 */
function parseCanonical(s: string): Temporal | undefined {
  const n = s.length;
  if ((n !== 10 && n !== 26 && n !== 27) || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45) return undefined;
  const y = num2(s, 0) * 100 + num2(s, 2);
  const mo = num2(s, 5);
  const d = num2(s, 8);
  if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return undefined;
  const day = daysFromCivil(y, mo, d) * DAY_MS;
  if (n === 10) return { ms: day, dateOnly: true };
  if (s.charCodeAt(10) !== 84 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58 || s.charCodeAt(19) !== 46 || (n === 27 && s.charCodeAt(26) !== 90)) return undefined;
  const h = num2(s, 11);
  const mi = num2(s, 14);
  const sec = num2(s, 17);
  const us = num2(s, 20) * 10000 + num2(s, 22) * 100 + num2(s, 24);
  if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 || us < 0) return undefined;
  return { ms: day + ((h * 60 + mi) * 60 + sec) * 1000 + us / 1000, dateOnly: false };
}

/** Parse a date or date-time (canonical forms, also with a UTC offset); undefined if it is not one. */
export function parseTemporal(s: string): Temporal | undefined {
  const fast = parseCanonical(s);
  if (fast !== undefined) return fast;
  if (s === 'infinity') return { ms: Infinity, dateOnly: false };
  if (s === '-infinity') return { ms: -Infinity, dateOnly: false };
  const m = TEMPORAL.exec(s);
  if (!m) return undefined;
  let y = Number(m[1]);
  const mo = Number(m[2]);
  const d = Number(m[3]);
  if (m[9]) y = 1 - y; // 1 BC is year 0
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo)) return undefined;
  let ms = daysFromCivil(y, mo, d) * DAY_MS;
  if (m[4] === undefined) return { ms, dateOnly: true };
  const h = Number(m[4]);
  const mi = Number(m[5]);
  const sec = Number(m[6]);
  if (h > 24 || mi > 59 || sec > 59 || (h === 24 && (mi > 0 || sec > 0))) return undefined;
  ms += ((h * 60 + mi) * 60 + sec) * 1000;
  if (m[7]) ms += Number(m[7].padEnd(6, '0')) / 1000;
  const tz = m[8];
  if (tz && tz !== 'Z') {
    const sign = tz[0] === '-' ? -1 : 1;
    const parts = tz.slice(1).replace(/:/g, '');
    const off = (Number(parts.slice(0, 2)) * 3600 + Number(parts.slice(2, 4) || '0') * 60 + Number(parts.slice(4, 6) || '0')) * 1000;
    ms -= sign * off;
  }
  return { ms, dateOnly: false };
}

export function isDateString(s: string): boolean {
  const t = parseTemporal(s);
  return t !== undefined && (t.dateOnly || !Number.isFinite(t.ms));
}

export function isDateTimeString(s: string): boolean {
  const t = parseTemporal(s);
  return t !== undefined && !t.dateOnly;
}

/**
 * Canonical date/timestamp strings of the same shape sort like their times: same length and the
 * '-' of 'YYYY-MM-DD' in place, no ' BC'. Used as a fast path before parsing.
 */
export function sameCanonicalShape(a: string, b: string): boolean {
  const n = a.length;
  return (
    n === b.length &&
    (n === 10 || n === 26 || n === 27) &&
    a.charCodeAt(4) === 45 &&
    b.charCodeAt(4) === 45 &&
    a.charCodeAt(7) === 45 &&
    b.charCodeAt(7) === 45 &&
    (n === 10 || (a.charCodeAt(10) === 84 && b.charCodeAt(10) === 84))
  );
}

/** Looks like a date or date-time at a glance ('dddd-dd-dd…' or ±infinity); confirm with parseTemporal. */
export function looksTemporal(s: string): boolean {
  if (s.length < 10) return false;
  const c0 = s.charCodeAt(0);
  if (c0 === 105 || c0 === 45) return s === 'infinity' || s === '-infinity';
  return c0 >= 48 && c0 <= 57 && s.charCodeAt(4) === 45;
}

export function formatTime(ms: number): string {
  if (ms === Infinity) return 'infinity';
  if (ms === -Infinity) return '-infinity';
  const days = Math.floor(ms / DAY_MS);
  const { y, m, d } = civilFromDays(days);
  const rest = ms - days * DAY_MS;
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const bc = y <= 0;
  const date = `${pad(bc ? 1 - y : y, 4)}-${pad(m)}-${pad(d)}`;
  const secs = Math.floor(rest / 1000);
  const time = `${pad(Math.floor(secs / 3600))}:${pad(Math.floor(secs / 60) % 60)}:${pad(secs % 60)}`;
  const frac = Math.round((rest - secs * 1000) * 1000);
  return `${date}T${time}${frac ? `.${pad(frac, 6).replace(/0+$/, '')}` : ''}Z${bc ? ' BC' : ''}`;
}

export function formatDate(ms: number): string {
  return formatTime(ms).slice(0, 10);
}

// ---------------------------------------------------------------------------------------------
// ISO-8601 durations

export interface Duration {
  sign: 1 | -1;
  years: number;
  months: number;
  days: number;
  /** Hours, minutes and seconds, in ms. */
  timeMs: number;
  text: string;
}

const DURATION = /^([-+])?P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/;

/** `-P1Y`, `P30D`, `-PT12H`, `P1Y2M3DT4H5M6.5S`, `P2W`; undefined if not a duration. */
export function parseDuration(s: string): Duration | undefined {
  const m = DURATION.exec(s);
  if (!m || s.endsWith('T') || m.slice(2, 9).every((g) => g === undefined)) return undefined;
  const n = (i: number) => Number(m[i] ?? 0);
  return {
    sign: m[1] === '-' ? -1 : 1,
    years: n(2),
    months: n(3),
    days: n(4) * 7 + n(5),
    timeMs: ((n(6) * 60 + n(7)) * 60 + n(8)) * 1000,
    text: s,
  };
}

/** now + duration (years and months by the calendar, day of month clamped: Jan 31 + P1M = Feb 28/29). */
export function addDuration(nowMs: number, d: Duration): number {
  const days = Math.floor(nowMs / DAY_MS);
  const timeOfDay = nowMs - days * DAY_MS;
  let { y, m, d: day } = civilFromDays(days);
  const months = y * 12 + (m - 1) + d.sign * (d.years * 12 + d.months);
  y = Math.floor(months / 12);
  m = months - y * 12 + 1;
  day = Math.min(day, daysInMonth(y, m));
  return (daysFromCivil(y, m, day) + d.sign * d.days) * DAY_MS + timeOfDay + d.sign * d.timeMs;
}

export const startOfDay = (ms: number) => (Number.isFinite(ms) ? Math.floor(ms / DAY_MS) * DAY_MS : ms);

/** Length in Unicode code points (what a user means by "characters"), not UTF-16 units. */
export function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}
