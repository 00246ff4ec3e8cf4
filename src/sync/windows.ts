/**
 * Sync windows: when a pipeline may apply changes ("Mon-Fri 01:00-05:00", "Sat,Sun 00:00-24:00",
 * "22:00-02:00"), read as wall-clock time in the pipeline's time zone. Pure functions: the clock is
 * the caller's.
 *
 * Text: `[DAYS ]HH:MM-HH:MM`. DAYS is a comma list of days (Mon Tue Wed Thu Fri Sat Sun) or day
 * ranges (Mon-Fri, Fri-Mon wraps); without DAYS every day. The end is exclusive; 24:00 is the end of
 * the day; an end at or before the start crosses midnight and belongs to the day it starts on
 * ("Fri 22:00-02:00" is Friday 22:00 to Saturday 02:00).
 *
 * Daylight saving time: the window is compared with the local wall-clock time, so on the spring
 * day a window inside the skipped hour (Europe/Berlin 02:00-03:00) does not occur at all, and a
 * window across it is an hour shorter; on the autumn day a window inside the repeated hour is open
 * during both passes of it (two real hours for 02:00-03:00), and one across it is an hour longer.
 */
const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;

export interface SyncWindow {
  /** The text as written. */
  text: string;
  /** Days (0 = Sunday) the window starts on. */
  days: ReadonlySet<number>;
  /** Minutes after midnight: start inclusive, end exclusive; end <= start crosses midnight. */
  start: number;
  end: number;
}

export class WindowSyntaxError extends Error {}

const TIME = /^([01]?\d|2[0-4]):([0-5]\d)$/;

function minutes(text: string, what: string, whole: string): number {
  const m = TIME.exec(text);
  if (!m) throw new WindowSyntaxError(`window '${whole}': ${what} '${text}' is not HH:MM (00:00 to 24:00)`);
  const v = Number(m[1]) * 60 + Number(m[2]);
  if (v > 24 * 60) throw new WindowSyntaxError(`window '${whole}': ${what} '${text}' is after 24:00`);
  return v;
}

function day(text: string, whole: string): number {
  const i = DAYS.findIndex((d) => d.toLowerCase() === text.toLowerCase());
  if (i < 0) throw new WindowSyntaxError(`window '${whole}': '${text}' is not a day (${DAYS.slice(1).join(', ')}, Sun)`);
  return i;
}

/** Parse one window's text; throws WindowSyntaxError naming what is wrong. */
export function parseWindow(text: string): SyncWindow {
  const parts = text.trim().split(/\s+/);
  if (parts.length === 0 || parts.length > 2 || parts[0] === '') throw new WindowSyntaxError(`window '${text}': expected '[DAYS ]HH:MM-HH:MM' (e.g. 'Mon-Fri 01:00-05:00')`);
  const range = parts[parts.length - 1]!;
  const [from, to, ...rest] = range.split('-');
  if (to === undefined || rest.length > 0) throw new WindowSyntaxError(`window '${text}': '${range}' is not HH:MM-HH:MM`);
  const start = minutes(from!, 'start', text);
  const end = minutes(to, 'end', text);
  if (start === 24 * 60) throw new WindowSyntaxError(`window '${text}': a window cannot start at 24:00`);
  const days = new Set<number>();
  if (parts.length === 1) for (let d = 0; d < 7; d++) days.add(d);
  else {
    for (const item of parts[0]!.split(',')) {
      const [a, b, ...more] = item.split('-');
      if (more.length > 0 || !a) throw new WindowSyntaxError(`window '${text}': '${item}' is not a day or a day range (Mon-Fri)`);
      const first = day(a, text);
      if (b === undefined) days.add(first);
      else for (let d = first, last = day(b, text); ; d = (d + 1) % 7) {
        days.add(d);
        if (d === last) break;
      }
    }
  }
  return { text, days, start, end };
}

/** The local day of week (0 = Sunday) and minute of the day of `at` in `timeZone`. */
export function wallClock(at: Date, timeZone: string): { weekday: number; minute: number } {
  const parts = new Intl.DateTimeFormat('en-US', { timeZone, weekday: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const get = (t: string) => parts.find((p) => p.type === t)!.value;
  return { weekday: day(get('weekday'), ''), minute: Number(get('hour')) * 60 + Number(get('minute')) };
}

/** Is `at` inside one of the windows (no windows: always)? */
export function inWindows(at: Date, windows: readonly SyncWindow[], timeZone: string): boolean {
  if (windows.length === 0) return true;
  const { weekday, minute } = wallClock(at, timeZone);
  const yesterday = (weekday + 6) % 7;
  return windows.some((w) => {
    if (w.end > w.start) return w.days.has(weekday) && minute >= w.start && minute < w.end;
    // Crosses midnight: the evening part on its own day, the morning part on the next.
    return (w.days.has(weekday) && minute >= w.start) || (w.days.has(yesterday) && minute < w.end);
  });
}

/** An IANA time zone name this runtime knows, or an error message. */
export function timeZoneProblem(tz: string): string | undefined {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `unknown time zone '${tz}' (an IANA name such as Europe/Berlin or UTC)`;
  }
}
