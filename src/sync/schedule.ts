/**
 * Cron schedules of scheduled pipelines (croner: six fields with seconds, or five; a time zone).
 * Pure: every function takes the time it is asked about, so tests inject their clock.
 *
 * Daylight saving time (croner's behaviour, tested in schedule.test.ts with Europe/Berlin):
 *  - spring gap: a fire time that does not exist that day (02:30 on the last Sunday of March) fires
 *    once, at the first instant after the gap (03:00 CEST = 01:00 UTC);
 *  - autumn repeat: a fire time that occurs twice (02:30 on the last Sunday of October) fires once,
 *    at its first occurrence (02:30 CEST = 00:30 UTC), not again an hour later.
 */
import { Cron } from 'croner';

/** A cron pattern as a paused croner job (only asked for times, never run by croner). */
export function cronOf(pattern: string, timeZone: string): Cron {
  return new Cron(pattern, { timezone: timeZone, paused: true });
}

/** What is wrong with a cron pattern, or undefined. */
export function cronProblem(pattern: string, timeZone: string): string | undefined {
  try {
    const c = cronOf(pattern, timeZone);
    if (c.nextRun(new Date()) === null) return `cron '${pattern}' never fires`;
    return undefined;
  } catch (err) {
    return `cron '${pattern}': ${(err as Error).message.replace(/^CronPattern: /, '')}`;
  }
}

/** The first fire strictly after `after`. */
export function nextFire(cron: Cron, after: Date): Date | null {
  return cron.nextRun(after);
}

/**
 * After downtime: the schedule fired (once or many times) while nothing ran. Given the time of the
 * last fire handled (persisted with the runs), the one missed fire to run now (the latest of them),
 * or undefined when none was missed. N missed fires give one run: a run syncs everything since the
 * previous one anyway. Without a last fire (the pipeline never ran) nothing was missed.
 */
export function missedFire(cron: Cron, lastFire: Date | undefined, now: Date): { at: Date; missed: number } | undefined {
  if (!lastFire) return undefined;
  let next = cron.nextRun(lastFire);
  let latest: Date | undefined;
  let missed = 0;
  while (next && next.getTime() <= now.getTime()) {
    latest = next;
    missed++;
    if (missed > 100_000) break; // a very fast schedule after a long downtime: the count is a floor
    next = cron.nextRun(next);
  }
  return latest ? { at: latest, missed } : undefined;
}
